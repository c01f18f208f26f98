package session

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unsafe"
)

// JSONPrefix marks job data or output that carries JSON text: the wire string
// is JSONPrefix followed by the JSON text. Every other string is plain.
const JSONPrefix = "<!json!>"

// Kind tells the three kinds of payload apart.
type Kind int

const (
	// KindNull is the absence of data: a JSON null on the wire. The upstream
	// tracker serves it to every worker of stage b and later.
	KindNull Kind = iota
	// KindString is a plain string, sent and received as is.
	KindString
	// KindJSON is JSON text, sent as JSONPrefix followed by the text.
	KindJSON
)

// String returns "null", "string" or "json".
func (k Kind) String() string {
	switch k {
	case KindNull:
		return "null"
	case KindString:
		return "string"
	case KindJSON:
		return "json"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Payload is job data (what NewJob receives) or job output (what CompleteJob
// sends). It is a small immutable value; the zero Payload is Null.
//
// On the wire a payload is a JSON string or null. A string that starts with
// JSONPrefix is JSON; any other string is plain. Decode reads the wire form and
// Wire writes it back, so Decode(p.Wire()) gives p again for every p that
// Decode returned.
type Payload struct {
	kind Kind
	text string
	// wire is the wire form of a JSON payload (JSONPrefix + text); text is
	// a substring of it, so that a large job is held once, not twice. Every
	// constructor of a JSON payload sets it, so == still compares payloads.
	wire string
}

// Null returns the null payload (no data).
func Null() Payload { return Payload{} }

// String returns a plain string payload; s is sent as is. A string that
// itself starts with JSONPrefix is not rejected, but every reader of it
// (Decode, the upstream Python client) will take it for JSON.
func String(s string) Payload { return Payload{kind: KindString, text: s} }

// JSON marshals v and returns it as a JSON payload. v must marshal to a JSON
// array or object, the only values the upstream client encodes as JSON;
// anything else is an error wrapping ErrInvalidPayload. HTML characters are
// not escaped.
func JSON(v any) (Payload, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return Payload{}, fmt.Errorf("session: JSON payload: %w: %v", ErrInvalidPayload, err)
	}
	return RawJSON(bytes.TrimRight(buf.Bytes(), "\n"))
}

// RawJSON returns the JSON text b as a JSON payload, kept byte for byte. b
// must be valid JSON whose value is an array or object; otherwise the error
// wraps ErrInvalidPayload.
func RawJSON(b []byte) (Payload, error) {
	if !json.Valid(b) {
		return Payload{}, fmt.Errorf("session: JSON payload: %w: not valid JSON", ErrInvalidPayload)
	}
	t := bytes.TrimLeft(b, " \t\r\n")
	if len(t) == 0 || (t[0] != '[' && t[0] != '{') {
		return Payload{}, fmt.Errorf("session: JSON payload: %w: not a JSON array or object", ErrInvalidPayload)
	}
	w := JSONPrefix + string(b)
	return Payload{kind: KindJSON, text: w[len(JSONPrefix):], wire: w}, nil
}

// Decode reads a payload from its wire form: nil is Null; a string starting
// with JSONPrefix is JSON (the rest must be valid JSON, else the error wraps
// ErrInvalidPayload); any other string is a plain String. Like the upstream
// Python client, Decode accepts any JSON value after the prefix, scalars
// included. The JSON text is kept byte for byte.
func Decode(wire *string) (Payload, error) {
	if wire == nil {
		return Null(), nil
	}
	rest, ok := strings.CutPrefix(*wire, JSONPrefix)
	if !ok {
		return String(*wire), nil
	}
	if !json.Valid(stringBytes(rest)) {
		return Payload{}, fmt.Errorf("session: decode payload: %w: invalid JSON after %s", ErrInvalidPayload, JSONPrefix)
	}
	return Payload{kind: KindJSON, text: rest, wire: *wire}, nil
}

// Kind reports the kind of the payload.
func (p Payload) Kind() Kind { return p.kind }

// IsNull reports whether p is the null payload.
func (p Payload) IsNull() bool { return p.kind == KindNull }

// Text returns the string of a String payload, the JSON text (without
// JSONPrefix) of a JSON payload, and "" for Null.
func (p Payload) Text() string { return p.text }

// Wire returns the wire form: nil for Null, JSONPrefix followed by the JSON
// text for JSON, the string itself for String.
func (p Payload) Wire() *string {
	switch p.kind {
	case KindJSON:
		s := p.wire
		return &s
	case KindString:
		s := p.text
		return &s
	}
	return nil
}

// Unmarshal decodes the JSON text of a JSON payload into v, as
// json.Unmarshal does. For a String or Null payload it returns an error
// wrapping ErrInvalidPayload.
func (p Payload) Unmarshal(v any) error {
	if p.kind != KindJSON {
		return fmt.Errorf("session: unmarshal payload: %w: kind is %s, not json", ErrInvalidPayload, p.kind)
	}
	if err := json.Unmarshal([]byte(p.text), v); err != nil { // copied: v's UnmarshalJSON may write to its argument
		return fmt.Errorf("session: unmarshal payload: %w", err)
	}
	return nil
}

// String returns p.Text(), so that %v prints the payload's text.
func (p Payload) String() string { return p.text }

// stringBytes returns the bytes of s without copying them, for functions
// that only read their argument (json.Valid): a job of
// 15 MB is not copied to be checked. The bytes must never be written.
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
