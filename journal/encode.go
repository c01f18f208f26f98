package journal

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// The record encoders below write the bytes json.Marshal writes for Event
// and State (field order, omitempty/omitzero, HTML-safe string escapes,
// base64 for []byte, RFC 3339 times), without reflection: a 32-slot group
// commit encodes about 28 events and 28 states, and encoding/json's
// reflection would be the largest item of its CPU. What they cannot reproduce cheaply (a non-empty
// json.RawMessage, which json.Marshal validates and compacts, and times
// json.Marshal refuses) goes to json.Marshal, so the output is always
// json.Marshal's, errors included. TestEncodeMatchesJSON and
// FuzzEncodeMatchesJSON compare both encoders; decoding uses encoding/json.

// encodeEvent is the record encoder: compact JSON, byte for byte
// json.Marshal(e).
func encodeEvent(e Event) ([]byte, error) {
	if len(e.Report) > 0 || !plainTime(e.Time) {
		return json.Marshal(e)
	}
	b := make([]byte, 0, 160+len(e.Progress)+len(e.Reason)+len(e.URL)+len(e.Token)+
		len(e.DisplayName)+len(e.Nickname)+4*len(e.Checkpoint)/3+strLen(e.Input)+strLen(e.Output))
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(e.Version), 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"time":`...)
	b = appendTime(b, e.Time)
	b = append(b, `,"slot":`...)
	b = appendJSONString(b, e.Slot)
	b = append(b, `,"kind":`...)
	b = appendJSONString(b, string(e.Kind))
	b = appendStringField(b, `,"url":`, e.URL)
	b = appendStringField(b, `,"stage":`, e.Stage)
	b = appendStringField(b, `,"nickname":`, e.Nickname)
	b = appendStringField(b, `,"token":`, e.Token)
	b = appendStringField(b, `,"display_name":`, e.DisplayName)
	b = appendStringField(b, `,"project":`, e.Project)
	b = appendStringField(b, `,"stage_name":`, e.StageName)
	if e.Job != 0 {
		b = append(b, `,"job":`...)
		b = strconv.AppendInt(b, int64(e.Job), 10)
	}
	if e.Input != nil {
		b = append(b, `,"input":`...)
		b = appendJSONString(b, *e.Input)
	}
	if e.Output != nil {
		b = append(b, `,"output":`...)
		b = appendJSONString(b, *e.Output)
	}
	b = appendStringField(b, `,"progress":`, e.Progress)
	if len(e.Checkpoint) > 0 {
		b = append(b, `,"checkpoint":`...)
		b = appendBase64(b, e.Checkpoint)
	}
	b = appendStringField(b, `,"outcome":`, e.Outcome)
	b = appendStringField(b, `,"reason":`, e.Reason)
	if e.OrphanSeq != 0 {
		b = append(b, `,"orphan_seq":`...)
		b = strconv.AppendUint(b, e.OrphanSeq, 10)
	}
	b = append(b, '}')
	return b, nil
}

// encodeState is the state record encoder: byte for byte json.Marshal(s).
func encodeState(s State) ([]byte, error) {
	if len(s.LastReport) > 0 || !plainTime(s.LastTime) ||
		(s.Session != nil && !plainTime(s.Session.Since)) ||
		(s.Job != nil && !plainTime(s.Job.Since)) ||
		(s.Completion != nil && (!plainTime(s.Completion.Since) || !plainTime(s.Completion.Job.Since))) {
		return json.Marshal(s)
	}
	n := 96 + len(s.Slot) + len(s.Progress)
	if s.Session != nil {
		n += 160 + len(s.Session.URL) + len(s.Session.Token) + len(s.Session.Nickname) + len(s.Session.DisplayName)
	}
	if s.Job != nil {
		n += 80 + strLen(s.Job.Input) + 4*len(s.Job.Checkpoint)/3
	}
	if s.Completion != nil {
		n += 140 + strLen(s.Completion.Job.Input) + 4*len(s.Completion.Job.Checkpoint)/3 + quotedLen(s.Completion.Output)
	}
	b := make([]byte, 0, n)
	b = append(b, `{"slot":`...)
	b = appendJSONString(b, s.Slot)
	if ss := s.Session; ss != nil {
		b = append(b, `,"session":{`...)
		mark := len(b)
		b = appendStringField(b, `,"url":`, ss.URL)
		b = appendStringField(b, `,"stage":`, ss.Stage)
		b = appendStringField(b, `,"nickname":`, ss.Nickname)
		b = appendStringField(b, `,"token":`, ss.Token)
		b = appendStringField(b, `,"display_name":`, ss.DisplayName)
		b = appendStringField(b, `,"project":`, ss.Project)
		b = appendStringField(b, `,"stage_name":`, ss.StageName)
		if !ss.Since.IsZero() {
			b = append(b, `,"since":`...)
			b = appendTime(b, ss.Since)
		}
		if len(b) > mark {
			// Drop the comma before the object's first field.
			b = append(b[:mark], b[mark+1:]...)
		}
		b = append(b, '}')
	}
	if s.Job != nil {
		b = append(b, `,"job":`...)
		b = appendJob(b, s.Job)
	}
	if c := s.Completion; c != nil {
		b = append(b, `,"completion":{"job":`...)
		b = appendJob(b, &c.Job)
		b = append(b, `,"output":`...)
		b = appendJSONString(b, c.Output)
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, c.Seq, 10)
		if !c.Since.IsZero() {
			b = append(b, `,"since":`...)
			b = appendTime(b, c.Since)
		}
		b = append(b, '}')
	}
	if s.FlagPending {
		b = append(b, `,"flag_pending":true`...)
	}
	if s.ByePending {
		b = append(b, `,"bye_pending":true`...)
	}
	if s.Closed {
		b = append(b, `,"closed":true`...)
	}
	b = appendStringField(b, `,"progress":`, s.Progress)
	if s.LastSeq != 0 {
		b = append(b, `,"last_seq":`...)
		b = strconv.AppendUint(b, s.LastSeq, 10)
	}
	if !s.LastTime.IsZero() {
		b = append(b, `,"last_time":`...)
		b = appendTime(b, s.LastTime)
	}
	b = append(b, '}')
	return b, nil
}

// appendJob appends the JSON object of a Job (its times already checked
// by plainTime).
func appendJob(b []byte, j *Job) []byte {
	b = append(b, `{"number":`...)
	b = strconv.AppendInt(b, int64(j.Number), 10)
	b = appendStringField(b, `,"stage":`, j.Stage)
	if j.Input != nil {
		b = append(b, `,"input":`...)
		b = appendJSONString(b, *j.Input)
	}
	if !j.Since.IsZero() {
		b = append(b, `,"since":`...)
		b = appendTime(b, j.Since)
	}
	if len(j.Checkpoint) > 0 {
		b = append(b, `,"checkpoint":`...)
		b = appendBase64(b, j.Checkpoint)
	}
	return append(b, '}')
}

func strLen(p *string) int {
	if p == nil {
		return 0
	}
	return quotedLen(*p)
}

// bigString is the length from which quotedLen counts the escapes: a job's
// input or output of a megabyte with a few escapes would otherwise regrow
// the record's buffer (a copy of the whole record) for a few bytes.
const bigString = 64 << 10

// quotedLen returns a length that appendJSONString does not exceed for s:
// exact (escapes counted) for a string of bigString bytes or more, len(s)
// for shorter ones, whose regrowth costs little.
func quotedLen(s string) int {
	if len(s) < bigString {
		return len(s)
	}
	n := len(s) + 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t':
				n++
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				n += 5
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			n += 5 // \ufffd for one byte
		case r == '\u2028' || r == '\u2029':
			n += 3 // \u2028 for three bytes
		}
		i += size
	}
	return n
}

// appendStringField appends key (`,"name":`) and the string, unless the
// string is empty (omitempty).
func appendStringField(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	b = append(b, key...)
	return appendJSONString(b, s)
}

// plainTime reports whether t is a time Time.MarshalJSON accepts: a
// four-digit year and a zone offset under 24 hours. Others (which
// json.Marshal refuses) are left to json.Marshal, for its error.
func plainTime(t time.Time) bool {
	if y := t.Year(); y < 0 || y > 9999 {
		return false
	}
	_, off := t.Zone()
	return off > -24*3600 && off < 24*3600
}

// appendTime appends t as Time.MarshalJSON does (RFC 3339 with nanoseconds,
// quoted); the caller has checked plainTime(t).
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendBase64 appends src as a quoted standard base64 string, as
// encoding/json encodes a []byte.
func appendBase64(b []byte, src []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, src)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json does with HTML
// escaping on (json.Marshal's default): ", \ and control characters
// escaped (\b \f \n \r \t by name, others as \u00XX), <, > and & as
// \u003c, \u003e, \u0026, U+2028 and U+2029 as \u2028 and \u2029, and each
// byte of invalid UTF-8 replaced by \ufffd.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
