package session

import (
	"encoding/json"
	"testing"
)

// FuzzUnquote checks unquote against encoding/json on every valid JSON
// string token.
func FuzzUnquote(f *testing.F) {
	for _, s := range []string{`""`, `"abc"`, `"a\"b\\c\/d\b\f\n\r\t"`, `"\u00e9\ud83d\ude00"`, `"\ud800"`, `"\ud800\u0041"`,
		`"\udc00\ud800"`, "\"\xff\xfe\"", `"é日本"`, `"<!json!>{\"a\":[1,2]}"`, `"\u0000"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, q []byte) {
		var want string
		if json.Unmarshal(q, &want) != nil {
			return
		}
		got, ok := unquote(q)
		if !ok {
			// Tokens that json accepts with surrounding space.
			var raw json.RawMessage
			if json.Unmarshal(q, &raw) == nil && len(raw) > 0 && raw[0] == '"' {
				if got, ok = unquote(raw); !ok {
					t.Fatalf("unquote(%q) refused a valid string", raw)
				}
			} else {
				return
			}
		}
		if got != want {
			t.Fatalf("unquote(%q) = %q, json says %q", q, got, want)
		}
	})
}
