package session

import (
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// rawRef is a json.RawMessage that keeps a reference to the decoded input
// instead of a copy. Only for input the caller owns and never changes: a
// newJob answer's data field, so that a 15 MB job is not copied on its way
// from the answer to its string.
type rawRef []byte

// UnmarshalJSON keeps b.
func (r *rawRef) UnmarshalJSON(b []byte) error {
	*r = b
	return nil
}

// unquote returns the string of the valid JSON string token q (quotes
// included), as json.Unmarshal would decode it, in one allocation of at
// most len(q) bytes: invalid UTF-8 and lone surrogates become U+FFFD. ok is
// false if q is not a string token (the caller checked validity first).
func unquote(q []byte) (s string, ok bool) {
	if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' {
		return "", false
	}
	q = q[1 : len(q)-1]
	plain := true
	for _, c := range q {
		if c == '\\' || c == '"' || c < 0x20 || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain {
		return string(q), true
	}
	var b strings.Builder
	b.Grow(len(q) + 2*utf8.UTFMax) // a few U+FFFD for bad bytes
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '\\':
			if i+1 >= len(q) {
				return "", false
			}
			switch q[i+1] {
			case '"', '\\', '/':
				b.WriteByte(q[i+1])
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
				r := hex4(q[i+2:])
				if r < 0 {
					return "", false
				}
				i += 6
				if utf16.IsSurrogate(r) {
					if r2 := hex4(q[min(i+2, len(q)):]); i+1 < len(q) && q[i] == '\\' && q[i+1] == 'u' && r2 >= 0 {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							b.WriteRune(dec)
							i += 6
							continue
						}
					}
					r = utf8.RuneError
				}
				b.WriteRune(r)
				continue
			default:
				return "", false
			}
			i += 2
		case c == '"' || c < 0x20:
			return "", false
		case c < utf8.RuneSelf:
			b.WriteByte(c)
			i++
		default:
			r, size := utf8.DecodeRune(q[i:])
			if r == utf8.RuneError && size == 1 {
				b.WriteRune(utf8.RuneError)
			} else {
				b.Write(q[i : i+size])
			}
			i += size
		}
	}
	return b.String(), true
}

// hex4 reads the 4 hex digits at the start of b; -1 if there are none.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}
