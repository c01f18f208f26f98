package journal

import (
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// decodeEventFast decodes an event record in the form encodeEvent writes:
// compact JSON, keys in Event's field order, UTC times as RFC 3339. It
// reports false for anything else (other key orders, unknown or repeated
// keys, null, checkpoints, reports, times in other zones, whitespace,
// numbers out of range, escapes of surrogates), which DecodeEvent leaves
// to encoding/json. What it accepts decodes to the
// Event encoding/json makes of the same bytes (FuzzDecodeEventFast):
// pruning decodes every event once, and encoding/json's reflection was
// most of its CPU.
func decodeEventFast(data []byte) (Event, bool) {
	d := fastDecoder{data: data}
	var e Event
	if !d.lit(`{"v":`) || !d.int(&e.Version) ||
		!d.lit(`,"seq":`) || !d.uint(&e.Seq) ||
		!d.lit(`,"time":`) || !d.time(&e.Time) ||
		!d.lit(`,"slot":`) || !d.str(&e.Slot) ||
		!d.lit(`,"kind":`) || !d.kind(&e.Kind) {
		return Event{}, false
	}
	next := 0 // index in fastFields of the first key still allowed
	for d.p < len(d.data) && d.data[d.p] == ',' {
		key, ok := d.key()
		if !ok {
			return Event{}, false
		}
		i := next
		for i < len(fastFields) && fastFields[i] != key {
			i++
		}
		if i == len(fastFields) {
			return Event{}, false // unknown, repeated or out of order
		}
		next = i + 1
		switch key {
		case "url":
			ok = d.str(&e.URL)
		case "stage":
			ok = d.str(&e.Stage)
		case "nickname":
			ok = d.str(&e.Nickname)
		case "token":
			ok = d.str(&e.Token)
		case "display_name":
			ok = d.str(&e.DisplayName)
		case "project":
			ok = d.str(&e.Project)
		case "stage_name":
			ok = d.str(&e.StageName)
		case "job":
			ok = d.int(&e.Job)
		case "input":
			var s string
			if ok = d.str(&s); ok {
				e.Input = &s
			}
		case "output":
			var s string
			if ok = d.str(&s); ok {
				e.Output = &s
			}
		case "progress":
			ok = d.str(&e.Progress)
		case "outcome":
			ok = d.str(&e.Outcome)
		case "reason":
			ok = d.str(&e.Reason)
		case "orphan_seq":
			ok = d.uint(&e.OrphanSeq)
		}
		if !ok {
			return Event{}, false
		}
	}
	if !d.lit("}") || d.p != len(d.data) {
		return Event{}, false
	}
	return e, true
}

// fastFields are the optional keys decodeEventFast reads, in the order
// encodeEvent writes them (checkpoint and report are left to
// encoding/json).
var fastFields = [...]string{"url", "stage", "nickname", "token", "display_name", "project",
	"stage_name", "job", "input", "output", "progress", "outcome", "reason", "orphan_seq"}

// fastDecoder reads data from p on; each method reports false, and leaves
// p anywhere, when what follows is not what it reads.
type fastDecoder struct {
	data []byte
	p    int
}

// lit reads s.
func (d *fastDecoder) lit(s string) bool {
	if len(d.data)-d.p < len(s) || string(d.data[d.p:d.p+len(s)]) != s {
		return false
	}
	d.p += len(s)
	return true
}

// key reads `,"name":` and returns name (no escapes).
func (d *fastDecoder) key() (string, bool) {
	if !d.lit(`,"`) {
		return "", false
	}
	start := d.p
	for d.p < len(d.data) && d.data[d.p] != '"' {
		if c := d.data[d.p]; c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			return "", false
		}
		d.p++
	}
	key := d.data[start:d.p]
	if !d.lit(`":`) {
		return "", false
	}
	for _, f := range fastFields {
		if f == string(key) {
			return f, true // the constant: no allocation
		}
	}
	return "", false
}

// raw reads a JSON string in valid UTF-8 (encoding/json would replace
// invalid bytes) without control characters, and returns its bytes as
// they stand (esc: with escapes, see unescape).
func (d *fastDecoder) raw() (s []byte, esc, ok bool) {
	if !d.lit(`"`) {
		return nil, false, false
	}
	start, high := d.p, false
	for ; d.p < len(d.data); d.p++ {
		switch c := d.data[d.p]; {
		case c == '"':
			s := d.data[start:d.p]
			d.p++
			if high && !utf8.Valid(s) {
				return nil, false, false
			}
			return s, esc, true
		case c == '\\':
			esc = true
			d.p++ // the escaped byte is never the closing quote
		case c < 0x20:
			return nil, false, false
		case c >= utf8.RuneSelf:
			high = true
		}
	}
	return nil, false, false
}

// unescape returns the string s (raw's bytes) stands for. It reads the
// escapes appendJSONString writes: \" \\ \/ \b \f \n \r \t and \uXXXX of a
// code point that is not a surrogate; false for others (left to
// encoding/json, which replaces unpaired surrogates).
func unescape(s []byte) (string, bool) {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b = append(b, c)
			continue
		}
		if i++; i == len(s) {
			return "", false
		}
		switch s[i] {
		case '"', '\\', '/':
			b = append(b, s[i])
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			if len(s)-i < 5 {
				return "", false
			}
			var r rune
			for _, h := range s[i+1 : i+5] {
				switch {
				case h >= '0' && h <= '9':
					h -= '0'
				case h >= 'a' && h <= 'f':
					h -= 'a' - 10
				case h >= 'A' && h <= 'F':
					h -= 'A' - 10
				default:
					return "", false
				}
				r = r<<4 | rune(h)
			}
			if utf16.IsSurrogate(r) {
				return "", false
			}
			b = utf8.AppendRune(b, r)
			i += 4
		default:
			return "", false
		}
	}
	return string(b), true
}

func (d *fastDecoder) str(v *string) bool {
	s, esc, ok := d.raw()
	switch {
	case !ok:
		return false
	case esc:
		*v, ok = unescape(s)
		return ok
	}
	*v = string(s)
	return true
}

// kind reads a string; the kinds this version knows come without an
// allocation.
func (d *fastDecoder) kind(v *Kind) bool {
	s, esc, ok := d.raw()
	if !ok || esc {
		return false
	}
	for _, k := range kindCodes {
		if string(k) == string(s) {
			*v = k
			return true
		}
	}
	*v = Kind(s)
	return true
}

// time reads a UTC time as Time.MarshalJSON writes it (RFC 3339 with
// nanoseconds, trailing zeros cut, "Z"). Time.UnmarshalJSON reads such a
// string to the same Time (time.Date in UTC).
func (d *fastDecoder) time(v *time.Time) bool {
	s, esc, ok := d.raw()
	if !ok || esc || len(s) < len("2006-01-02T15:04:05Z") || s[len(s)-1] != 'Z' {
		return false
	}
	t, err := time.Parse(time.RFC3339Nano, string(s))
	if err != nil {
		return false
	}
	var buf [40]byte
	if string(t.AppendFormat(buf[:0], time.RFC3339Nano)) != string(s) {
		return false // not the canonical form
	}
	*v = t
	return true
}

// digits reads a decimal number of at most 18 digits without leading
// zeros (so that it fits an int64).
func (d *fastDecoder) digits() (uint64, bool) {
	start := d.p
	var n uint64
	for d.p < len(d.data) && d.data[d.p] >= '0' && d.data[d.p] <= '9' {
		n = n*10 + uint64(d.data[d.p]-'0')
		d.p++
	}
	switch l := d.p - start; {
	case l == 0 || l > 18:
		return 0, false
	case l > 1 && d.data[start] == '0':
		return 0, false
	}
	return n, true
}

func (d *fastDecoder) uint(v *uint64) bool {
	n, ok := d.digits()
	if ok {
		*v = n
	}
	return ok
}

// int reads an int, negative ones included (not -0).
func (d *fastDecoder) int(v *int) bool {
	neg := d.p < len(d.data) && d.data[d.p] == '-'
	if neg {
		d.p++
	}
	n, ok := d.digits()
	if !ok || (neg && n == 0) || int64(n) > int64(^uint(0)>>1) {
		return false
	}
	if neg {
		*v = -int(n)
	} else {
		*v = int(n)
	}
	return true
}
