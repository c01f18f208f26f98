package trackertest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// This file reproduces the two JSON dialects the upstream tracker speaks:
//
//   - Python's json.loads, including its error messages and character positions, because
//     FastAPI copies them into the 422 detail of a malformed body;
//   - Python's json.dumps, in two flavours: the one the upstream loader used to store list and
//     object jobs ("<!json!>" + json.dumps(job): ", " and ": " separators, ASCII only), and the
//     one Starlette's JSONResponse uses for answers (compact, UTF-8 kept as is).
//
// Decoded values are: nil, bool, string, pyNumber, []any and *pyObject.

// pyNumber is a JSON number as Python holds it: an int (exact digits) or a float.
type pyNumber struct {
	lit     string // the literal as written (for ints)
	isFloat bool
	f       float64
}

// str is Python's str() of the number (pydantic v1 coerces numbers to strings this way).
func (n pyNumber) str() string {
	if !n.isFloat {
		if n.lit == "-0" {
			return "0"
		}
		return n.lit
	}
	return pyFloatRepr(n.f)
}

// pyObject is a decoded JSON object: keys in first-seen order, last value wins (a Python dict).
type pyObject struct {
	keys []string
	vals map[string]any
}

func (o *pyObject) get(k string) (any, bool) {
	v, ok := o.vals[k]
	return v, ok
}

func (o *pyObject) set(k string, v any) {
	if o.vals == nil {
		o.vals = map[string]any{}
	}
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
}

// pyJSONError is Python's json.JSONDecodeError. Pos, Line and Col count characters (runes).
type pyJSONError struct {
	Msg  string
	Doc  string
	Pos  int
	Line int
	Col  int
}

func (e *pyJSONError) Error() string {
	return fmt.Sprintf("%s: line %d column %d (char %d)", e.Msg, e.Line, e.Col, e.Pos)
}

// pyLoads decodes doc like Python's json.loads(str). Positions in errors are rune indexes.
func pyLoads(doc string) (any, error) {
	d := &pyDecoder{s: doc, doc: doc}
	i := d.ws(0)
	v, end, err := d.value(i)
	if err != nil {
		return nil, err
	}
	end = d.ws(end)
	if end != len(d.s) {
		return nil, d.errAt("Extra data", end)
	}
	return v, nil
}

// pyDecoder reads doc byte by byte (every byte of JSON's syntax is ASCII,
// which no byte of a multi-byte UTF-8 sequence is) and converts byte
// positions to the character positions Python reports only in errors: a
// body is not copied into runes (four bytes a character).
type pyDecoder struct {
	s   string
	doc string
}

// errAt returns the error msg at byte position pos, reported in characters
// (an invalid byte counts as one, as in the []rune of the document).
func (d *pyDecoder) errAt(msg string, pos int) error {
	prefix := d.s[:min(pos, len(d.s))]
	rpos := utf8.RuneCountInString(prefix) + max(0, pos-len(d.s))
	line := 1 + strings.Count(prefix, "\n")
	last := -1 // character index of the last newline before pos
	if i := strings.LastIndexByte(prefix, '\n'); i >= 0 {
		last = utf8.RuneCountInString(prefix[:i])
	}
	return &pyJSONError{Msg: msg, Doc: d.doc, Pos: rpos, Line: line, Col: rpos - last}
}

func (d *pyDecoder) ws(i int) int {
	for i < len(d.s) {
		switch d.s[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

func (d *pyDecoder) hasPrefix(i int, p string) bool { return strings.HasPrefix(d.s[i:], p) }

func (d *pyDecoder) value(i int) (any, int, error) {
	if i >= len(d.s) {
		return nil, i, d.errAt("Expecting value", i)
	}
	switch c := d.s[i]; {
	case c == '"':
		return d.str(i + 1)
	case c == '{':
		return d.object(i + 1)
	case c == '[':
		return d.array(i + 1)
	case c == 'n' && d.hasPrefix(i, "null"):
		return nil, i + 4, nil
	case c == 't' && d.hasPrefix(i, "true"):
		return true, i + 4, nil
	case c == 'f' && d.hasPrefix(i, "false"):
		return false, i + 5, nil
	case c == 'N' && d.hasPrefix(i, "NaN"):
		return pyNumber{isFloat: true, f: math.NaN()}, i + 3, nil
	case c == 'I' && d.hasPrefix(i, "Infinity"):
		return pyNumber{isFloat: true, f: math.Inf(1)}, i + 8, nil
	case c == '-' && d.hasPrefix(i, "-Infinity"):
		return pyNumber{isFloat: true, f: math.Inf(-1)}, i + 9, nil
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number(i)
	}
	return nil, i, d.errAt("Expecting value", i)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number follows Python's NUMBER_RE: (-?(?:0|[1-9]\d*))(\.\d+)?([eE][-+]?\d+)?
func (d *pyDecoder) number(i int) (any, int, error) {
	start := i
	if d.s[i] == '-' {
		i++
	}
	if i >= len(d.s) || !isDigit(d.s[i]) {
		return nil, start, d.errAt("Expecting value", start)
	}
	if d.s[i] == '0' {
		i++
	} else {
		for i < len(d.s) && isDigit(d.s[i]) {
			i++
		}
	}
	isFloat := false
	if i+1 < len(d.s) && d.s[i] == '.' && isDigit(d.s[i+1]) {
		isFloat = true
		i += 2
		for i < len(d.s) && isDigit(d.s[i]) {
			i++
		}
	}
	if i < len(d.s) && (d.s[i] == 'e' || d.s[i] == 'E') {
		j := i + 1
		if j < len(d.s) && (d.s[j] == '+' || d.s[j] == '-') {
			j++
		}
		if j < len(d.s) && isDigit(d.s[j]) {
			for j < len(d.s) && isDigit(d.s[j]) {
				j++
			}
			isFloat = true
			i = j
		}
	}
	lit := d.s[start:i]
	n := pyNumber{lit: lit, isFloat: isFloat}
	if isFloat {
		f, err := strconv.ParseFloat(lit, 64)
		if err != nil { // out of range: Python gives inf
			if f == 0 {
				f = math.Inf(1)
				if lit[0] == '-' {
					f = math.Inf(-1)
				}
			}
		}
		n.f = f
	}
	return n, i, nil
}

func hexVal(r byte) (int, bool) {
	switch {
	case r >= '0' && r <= '9':
		return int(r - '0'), true
	case r >= 'a' && r <= 'f':
		return int(r-'a') + 10, true
	case r >= 'A' && r <= 'F':
		return int(r-'A') + 10, true
	}
	return 0, false
}

// u4 reads 4 hex digits after the 'u' at position u.
func (d *pyDecoder) u4(u int) (rune, bool) {
	if u+4 >= len(d.s) {
		return 0, false
	}
	var v int
	for k := 1; k <= 4; k++ {
		h, ok := hexVal(d.s[u+k])
		if !ok {
			return 0, false
		}
		v = v<<4 | h
	}
	return rune(v), true
}

// str scans a string whose opening quote is at i-1.
func (d *pyDecoder) str(i int) (any, int, error) {
	begin := i - 1
	// Most strings have no escape: they are a piece of the document,
	// taken as it is (a 16 MiB output is not copied byte by byte).
	j := i
	for j < len(d.s) && d.s[j] != '"' && d.s[j] != '\\' && d.s[j] >= 0x20 {
		j++
	}
	if j < len(d.s) && d.s[j] == '"' && utf8.ValidString(d.s[i:j]) {
		return d.s[i:j], j + 1, nil
	}
	// The string's end, to size the builder once (unescaping only
	// shortens; an invalid byte becomes 3).
	for j < len(d.s) && d.s[j] != '"' {
		if d.s[j] == '\\' {
			j++
		}
		j++
	}
	var b strings.Builder
	b.Grow(min(j, len(d.s)) - i + 16)
	for {
		if i >= len(d.s) {
			return nil, i, d.errAt("Unterminated string starting at", begin)
		}
		c := d.s[i]
		switch {
		case c == '"':
			return b.String(), i + 1, nil
		case c < 0x20:
			return nil, i, d.errAt("Invalid control character at", i)
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(d.s[i:]) // an invalid byte: U+FFFD, as []rune gives
			b.WriteRune(r)
			i += size
			continue
		case c != '\\':
			b.WriteByte(c)
			i++
			continue
		}
		// backslash at i
		if i+1 >= len(d.s) {
			return nil, i, d.errAt("Unterminated string starting at", begin)
		}
		e := d.s[i+1]
		switch e {
		case '"', '\\', '/':
			b.WriteByte(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, ok := d.u4(i + 1)
			if !ok {
				return nil, i, d.errAt("Invalid \\uXXXX escape", i+1)
			}
			next := i + 6
			if utf16.IsSurrogate(r) && r < 0xdc00 && next+1 < len(d.s) && d.s[next] == '\\' && d.s[next+1] == 'u' {
				r2, ok := d.u4(next + 1)
				if !ok {
					return nil, i, d.errAt("Invalid \\uXXXX escape", next+1)
				}
				if r2 >= 0xdc00 && r2 <= 0xdfff {
					r = utf16.DecodeRune(r, r2)
					next += 6
				}
			}
			if utf16.IsSurrogate(r) { // a lone surrogate: Python keeps it, Go cannot
				r = utf8.RuneError
			}
			b.WriteRune(r)
			i = next
			continue
		default:
			return nil, i, d.errAt("Invalid \\escape", i)
		}
		i += 2
	}
}

func (d *pyDecoder) object(i int) (any, int, error) {
	obj := &pyObject{vals: map[string]any{}}
	i = d.ws(i)
	if i < len(d.s) && d.s[i] == '}' {
		return obj, i + 1, nil
	}
	for {
		if i >= len(d.s) || d.s[i] != '"' {
			return nil, i, d.errAt("Expecting property name enclosed in double quotes", i)
		}
		k, end, err := d.str(i + 1)
		if err != nil {
			return nil, end, err
		}
		i = d.ws(end)
		if i >= len(d.s) || d.s[i] != ':' {
			return nil, i, d.errAt("Expecting ':' delimiter", i)
		}
		i = d.ws(i + 1)
		v, end, err := d.value(i)
		if err != nil {
			return nil, end, err
		}
		obj.set(k.(string), v)
		i = d.ws(end)
		if i < len(d.s) && d.s[i] == '}' {
			return obj, i + 1, nil
		}
		if i >= len(d.s) || d.s[i] != ',' {
			return nil, i, d.errAt("Expecting ',' delimiter", i)
		}
		i = d.ws(i + 1)
	}
}

func (d *pyDecoder) array(i int) (any, int, error) {
	arr := []any{}
	i = d.ws(i)
	if i < len(d.s) && d.s[i] == ']' {
		return arr, i + 1, nil
	}
	for {
		v, end, err := d.value(i)
		if err != nil {
			return nil, end, err
		}
		arr = append(arr, v)
		i = d.ws(end)
		if i < len(d.s) && d.s[i] == ']' {
			return arr, i + 1, nil
		}
		if i >= len(d.s) || d.s[i] != ',' {
			return nil, i, d.errAt("Expecting ',' delimiter", i)
		}
		i = d.ws(i + 1)
	}
}

// pyFloatRepr is Python's repr(float).
func pyFloatRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // -d.ddde±XX
	neg := strings.HasPrefix(e, "-")
	e = strings.TrimPrefix(e, "-")
	mant, expStr, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expStr)
	digits := strings.Replace(mant, ".", "", 1)
	var out string
	if exp < -4 || exp >= 16 {
		m := digits[:1]
		if len(digits) > 1 {
			m += "." + digits[1:]
		}
		sign := "+"
		if exp < 0 {
			sign = "-"
			exp = -exp
		}
		out = fmt.Sprintf("%se%s%02d", m, sign, exp)
	} else if exp < 0 {
		out = "0." + strings.Repeat("0", -exp-1) + digits
	} else if len(digits) <= exp+1 {
		out = digits + strings.Repeat("0", exp+1-len(digits)) + ".0"
	} else {
		out = digits[:exp+1] + "." + digits[exp+1:]
	}
	if neg {
		out = "-" + out
	}
	return out
}

// pyDumper writes JSON like Python's json.dumps.
type pyDumper struct {
	ascii   bool // ensure_ascii
	compact bool // separators (",", ":") instead of (", ", ": ")
	buf     bytes.Buffer
}

// pyDumps encodes v as the upstream loader stored jobs: json.dumps(v) with default options.
func pyDumps(v any) (string, error) {
	d := &pyDumper{ascii: true}
	if err := d.value(v); err != nil {
		return "", err
	}
	return d.buf.String(), nil
}

// pyCompact encodes v as Starlette's JSONResponse does: compact, non-ASCII kept.
func pyCompact(v any) []byte {
	d := &pyDumper{compact: true}
	if err := d.value(v); err != nil {
		panic(err) // only our own well-formed values reach here
	}
	return d.buf.Bytes()
}

func (d *pyDumper) sep() (item, kv string) {
	if d.compact {
		return ",", ":"
	}
	return ", ", ": "
}

func (d *pyDumper) value(v any) error {
	switch x := v.(type) {
	case nil:
		d.buf.WriteString("null")
	case bool:
		if x {
			d.buf.WriteString("true")
		} else {
			d.buf.WriteString("false")
		}
	case string:
		d.str(x)
	case *string:
		if x == nil {
			d.buf.WriteString("null")
		} else {
			d.str(*x)
		}
	case int:
		d.buf.WriteString(strconv.Itoa(x))
	case int64:
		d.buf.WriteString(strconv.FormatInt(x, 10))
	case float64:
		d.float(x)
	case pyNumber:
		if x.isFloat {
			d.float(x.f)
		} else {
			d.buf.WriteString(x.str())
		}
	case json.Number:
		return d.number(string(x))
	case json.RawMessage:
		return d.raw(x)
	case []any:
		item, _ := d.sep()
		d.buf.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				d.buf.WriteString(item)
			}
			if err := d.value(e); err != nil {
				return err
			}
		}
		d.buf.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return d.object(keys, func(k string) any { return x[k] })
	case *pyObject:
		return d.object(x.keys, func(k string) any { return x.vals[k] })
	case orderedObject:
		return d.objectPairs(x)
	default:
		// Any other Go value: through encoding/json, keeping number literals.
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return d.raw(b)
	}
	return nil
}

func (d *pyDumper) object(keys []string, get func(string) any) error {
	pairs := make(orderedObject, len(keys))
	for i, k := range keys {
		pairs[i] = keyValue{k, get(k)}
	}
	return d.objectPairs(pairs)
}

func (d *pyDumper) objectPairs(pairs orderedObject) error {
	item, kv := d.sep()
	d.buf.WriteByte('{')
	for i, p := range pairs {
		if i > 0 {
			d.buf.WriteString(item)
		}
		d.str(p.Key)
		d.buf.WriteString(kv)
		if err := d.value(p.Value); err != nil {
			return err
		}
	}
	d.buf.WriteByte('}')
	return nil
}

// keyValue and orderedObject carry an object whose key order matters (the 422 detail).
type keyValue struct {
	Key   string
	Value any
}
type orderedObject []keyValue

func (d *pyDumper) float(f float64) {
	switch {
	case math.IsNaN(f):
		d.buf.WriteString("NaN")
	case math.IsInf(f, 1):
		d.buf.WriteString("Infinity")
	case math.IsInf(f, -1):
		d.buf.WriteString("-Infinity")
	default:
		d.buf.WriteString(pyFloatRepr(f))
	}
}

// number writes a JSON number literal as Python would after loading it.
func (d *pyDumper) number(lit string) error {
	if !strings.ContainsAny(lit, ".eE") {
		if _, err := strconv.ParseInt(strings.TrimPrefix(lit, "-"), 10, 64); err != nil && !isIntLiteral(lit) {
			return fmt.Errorf("invalid number %q", lit)
		}
		if lit == "-0" {
			lit = "0"
		}
		d.buf.WriteString(lit)
		return nil
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil && !math.IsInf(f, 0) {
		return fmt.Errorf("invalid number %q", lit)
	}
	d.float(f)
	return nil
}

func isIntLiteral(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// raw re-encodes JSON text, keeping the key order it was written in.
func (d *pyDumper) raw(b []byte) error {
	v, err := pyLoads(string(b))
	if err != nil {
		return err
	}
	return d.value(v)
}

func (d *pyDumper) str(s string) {
	d.buf.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			d.buf.WriteString(`\"`)
		case '\\':
			d.buf.WriteString(`\\`)
		case '\n':
			d.buf.WriteString(`\n`)
		case '\r':
			d.buf.WriteString(`\r`)
		case '\t':
			d.buf.WriteString(`\t`)
		case '\b':
			d.buf.WriteString(`\b`)
		case '\f':
			d.buf.WriteString(`\f`)
		default:
			switch {
			case r < 0x20:
				fmt.Fprintf(&d.buf, `\u%04x`, r)
			case d.ascii && r >= 0x7f:
				if r > 0xffff {
					r1, r2 := utf16.EncodeRune(r)
					fmt.Fprintf(&d.buf, `\u%04x\u%04x`, r1, r2)
				} else {
					fmt.Fprintf(&d.buf, `\u%04x`, r)
				}
			default:
				d.buf.WriteRune(r)
			}
		}
	}
	d.buf.WriteByte('"')
}
