package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"mime"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/distcompute/distcompute-go/internal/pyrepr"
)

// parseBody reads the named fields of a request body as the tracker's
// models do (FastAPI, pydantic v1 string fields, Python's json): a string
// as it is, a number or a boolean as Python's str() writes it ("1.0",
// "1e+16", "True", "nan" for a NaN). The body is a JSON object, or a list
// of key/value pairs (pydantic makes a dict of it: 2-element lists, or
// 2-character strings; a pair whose key is not a string names no field).
// ok is false for anything else; the proxy then passes the body to the
// tracker for its exact answer (a 422 for a field that is null, a list or
// an object).
func parseBody(ctype string, body []byte, names []string) ([]string, bool) {
	if !jsonContentType(ctype) || !utf8.Valid(body) {
		return nil, false // the tracker answers 422 or 400
	}
	body = bytes.TrimPrefix(body, []byte("\ufeff")) // Python's json reads past a BOM
	body = markPyLiterals(body)
	var top json.RawMessage
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(&top); err != nil || len(bytes.Trim(body[d.InputOffset():], " \t\n\r")) > 0 {
		return nil, false // not one JSON value, with Python's whitespace around it only
	}
	obj, ok := asDict(top)
	if !ok {
		return nil, false
	}
	vals := make([]string, len(names))
	for i, n := range names {
		raw, ok := obj[n]
		if !ok {
			return nil, false
		}
		v, ok := pyStr(raw)
		if !ok {
			return nil, false
		}
		vals[i] = v
	}
	return vals, true
}

// jsonContentType is how the tracker (FastAPI) tells a JSON body: no
// Content-Type at all, application/json or application/*+json.
func jsonContentType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt, _, _ = strings.Cut(ct, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
	}
	main, sub, ok := strings.Cut(mt, "/")
	return ok && main == "application" && (sub == "json" || strings.HasSuffix(sub, "+json"))
}

// Python's json reads three literals that JSON has not: NaN, Infinity and
// -Infinity (json.dumps writes them for such floats: a program that posts
// json.dumps(body) sends one, and so did requests before 2.27). markPyLiterals replaces each, where a value
// may stand, by one of these strings, which no body can hold as they are:
// parseBody refuses a body that is not UTF-8, and they are not.
const (
	markNaN    = "\"\xffNaN\""
	markInf    = "\"\xffInfinity\""
	markNegInf = "\"\xff-Infinity\""
)

// markPyLiterals returns body with Python's NaN, Infinity and -Infinity
// literals replaced by their marks (body itself when it has none). A
// literal is replaced only where Python's json reads it: where a value
// stands (the document, an array's element, an object's value; not a key,
// not after a minus sign, not inside a string). Anything else is left to
// the JSON decoder, which refuses what Python refuses: the marks change no
// body's structure.
func markPyLiterals(body []byte) []byte {
	if !bytes.Contains(body, []byte("NaN")) && !bytes.Contains(body, []byte("Infinity")) {
		return body
	}
	var (
		out       []byte
		done      int    // body[:done] is in out
		stack     []byte // '{' or '[' per open container
		wantValue = true // a value may start here
	)
	for i := 0; i < len(body); {
		c := body[i]
		switch c {
		case ' ', '\t', '\n', '\r':
			i++
			continue
		case '"':
			i = stringEnd(body, i+1)
			wantValue = false
			continue
		case '{', '[':
			stack = append(stack, c)
			wantValue = c == '['
		case '}', ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			wantValue = false
		case ':':
			wantValue = true
		case ',':
			wantValue = len(stack) > 0 && stack[len(stack)-1] == '['
		default:
			if lit, mark := pyLiteral(body[i:]); wantValue && lit > 0 {
				out = append(append(out, body[done:i]...), mark...)
				i += lit
				done = i
				wantValue = false
				continue
			}
			wantValue = false
		}
		i++
	}
	if out == nil {
		return body
	}
	return append(out, body[done:]...)
}

// pyLiteral returns the length of the Python literal b starts with (0 if
// none) and its mark.
func pyLiteral(b []byte) (int, string) {
	for _, l := range [...]struct{ lit, mark string }{{"NaN", markNaN}, {"Infinity", markInf}, {"-Infinity", markNegInf}} {
		if bytes.HasPrefix(b, []byte(l.lit)) {
			return len(l.lit), l.mark
		}
	}
	return 0, ""
}

// stringEnd returns the index after the string whose contents start at i
// (len(b) if it does not end).
func stringEnd(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case '\\':
			i += 2
		case '"':
			return i + 1
		default:
			i++
		}
	}
	return len(b)
}

// asDict is pydantic v1's dict(value) for a model: an object as it is
// (the last of a repeated key wins, as in Python), or a list of key/value
// pairs, each a 2-element list or a 2-character string. A pair whose key
// is a list or an object is refused (Python cannot hash it); one whose key
// is a number, a boolean or null names no field and is skipped.
func asDict(top json.RawMessage) (map[string]json.RawMessage, bool) {
	switch top[0] {
	case '{':
		var obj map[string]json.RawMessage
		return obj, json.Unmarshal(top, &obj) == nil
	case '[':
	default:
		return nil, false
	}
	var elems []json.RawMessage
	if json.Unmarshal(top, &elems) != nil {
		return nil, false
	}
	obj := map[string]json.RawMessage{}
	for _, e := range elems {
		switch e[0] {
		case '[':
			var kv []json.RawMessage
			if json.Unmarshal(e, &kv) != nil || len(kv) != 2 {
				return nil, false
			}
			switch kv[0][0] {
			case '[', '{':
				return nil, false
			case '"':
				if isMark(kv[0]) {
					continue // a float key
				}
				var k string
				if json.Unmarshal(kv[0], &k) != nil {
					return nil, false
				}
				obj[k] = kv[1]
			}
		case '"':
			var s string
			if isMark(e) || json.Unmarshal(e, &s) != nil || utf8.RuneCountInString(s) != 2 {
				return nil, false
			}
			_, n := utf8.DecodeRuneInString(s)
			v, _ := json.Marshal(s[n:])
			obj[s[:n]] = v
		default:
			return nil, false
		}
	}
	return obj, true
}

func isMark(raw json.RawMessage) bool {
	s := string(raw)
	return s == markNaN || s == markInf || s == markNegInf
}

// pyStr is Python's str() of a JSON string, number or boolean, as pydantic
// v1 coerces it into a string field; ok is false for anything else.
func pyStr(raw json.RawMessage) (string, bool) {
	t := strings.TrimSpace(string(raw))
	switch t {
	case markNaN:
		return pyrepr.Float(math.NaN()), true
	case markInf:
		return pyrepr.Float(math.Inf(1)), true
	case markNegInf:
		return pyrepr.Float(math.Inf(-1)), true
	}
	var s string
	if t != "null" && json.Unmarshal(raw, &s) == nil { // null would leave s empty
		return s, true
	}
	switch t {
	case "true":
		return "True", true
	case "false":
		return "False", true
	}
	if !json.Valid([]byte(t)) || t == "" || t[0] != '-' && (t[0] < '0' || t[0] > '9') {
		return "", false
	}
	if !strings.ContainsAny(t, ".eE") {
		if t == "-0" {
			return "0", true // a Python int
		}
		return t, true // a Python int: exact, whatever its size
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return "", false
	}
	return pyrepr.Float(f), true // 1e400 is inf, as Python reads it
}
