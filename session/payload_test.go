package session_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/distcompute/distcompute-go/session"
)

func ptr(s string) *string { return &s }

func TestDecode(t *testing.T) {
	tests := []struct {
		name     string
		wire     *string
		wantKind session.Kind
		wantText string
		wantErr  bool
	}{
		{"null (stage b data)", nil, session.KindNull, "", false},
		{"plain URL", ptr("https://example.invalid/shards/shard-00003.tar"), session.KindString, "https://example.invalid/shards/shard-00003.tar", false},
		{"empty string", ptr(""), session.KindString, "", false},
		{"JSON object as recorded", ptr(`<!json!>{"shard": 2, "url": "s3://bucket/shard-00002.tar"}`), session.KindJSON, `{"shard": 2, "url": "s3://bucket/shard-00002.tar"}`, false},
		{"JSON list as recorded", ptr(`<!json!>[4, "shard-00004.tar", true]`), session.KindJSON, `[4, "shard-00004.tar", true]`, false},
		{"JSON scalar", ptr(`<!json!>5`), session.KindJSON, `5`, false},
		{"prefix not at start", ptr(` <!json!>{}`), session.KindString, ` <!json!>{}`, false},
		{"upper-case prefix is plain", ptr(`<!JSON!>{}`), session.KindString, `<!JSON!>{}`, false},
		{"invalid JSON after prefix", ptr(`<!json!>{"a":`), 0, "", true},
		{"nothing after prefix", ptr(`<!json!>`), 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := session.Decode(tt.wire)
			if tt.wantErr {
				if !errors.Is(err, session.ErrInvalidPayload) {
					t.Fatalf("Decode err = %v, want ErrInvalidPayload", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode err = %v", err)
			}
			if p.Kind() != tt.wantKind || p.Text() != tt.wantText {
				t.Errorf("Decode = %v %q, want %v %q", p.Kind(), p.Text(), tt.wantKind, tt.wantText)
			}
			if p.IsNull() != (tt.wantKind == session.KindNull) {
				t.Errorf("IsNull = %v", p.IsNull())
			}
			w := p.Wire()
			if (w == nil) != (tt.wire == nil) || (w != nil && *w != *tt.wire) {
				t.Errorf("Wire() = %v, want the input back", w)
			}
			if got := fmt.Sprint(p); got != tt.wantText {
				t.Errorf("Sprint = %q, want %q", got, tt.wantText)
			}
		})
	}
}

func TestEncode(t *testing.T) {
	type shard struct {
		Shard int    `json:"shard"`
		URL   string `json:"url"`
	}
	tests := []struct {
		name     string
		make     func() (session.Payload, error)
		wantWire *string
		wantErr  bool
	}{
		{"null", func() (session.Payload, error) { return session.Null(), nil }, nil, false},
		{"zero value is null", func() (session.Payload, error) { return session.Payload{}, nil }, nil, false},
		{"string", func() (session.Payload, error) { return session.String("done"), nil }, ptr("done"), false},
		{"JSON struct", func() (session.Payload, error) { return session.JSON(shard{2, "s3://b/<2>&"}) }, ptr(`<!json!>{"shard":2,"url":"s3://b/<2>&"}`), false},
		{"JSON list", func() (session.Payload, error) { return session.JSON([]any{4, "x", true}) }, ptr(`<!json!>[4,"x",true]`), false},
		{"JSON empty map", func() (session.Payload, error) { return session.JSON(map[string]int{}) }, ptr(`<!json!>{}`), false},
		{"JSON nil slice is null", func() (session.Payload, error) { return session.JSON([]int(nil)) }, nil, true},
		{"JSON string refused", func() (session.Payload, error) { return session.JSON("x") }, nil, true},
		{"JSON number refused", func() (session.Payload, error) { return session.JSON(5) }, nil, true},
		{"JSON unmarshalable", func() (session.Payload, error) { return session.JSON(make(chan int)) }, nil, true},
		{"RawJSON kept verbatim", func() (session.Payload, error) { return session.RawJSON([]byte(`{"a": 1}`)) }, ptr(`<!json!>{"a": 1}`), false},
		{"RawJSON leading space", func() (session.Payload, error) { return session.RawJSON([]byte(` [1]`)) }, ptr(`<!json!> [1]`), false},
		{"RawJSON invalid", func() (session.Payload, error) { return session.RawJSON([]byte(`{`)) }, nil, true},
		{"RawJSON scalar", func() (session.Payload, error) { return session.RawJSON([]byte(`"s"`)) }, nil, true},
		{"RawJSON empty", func() (session.Payload, error) { return session.RawJSON(nil) }, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.make()
			if tt.wantErr {
				if !errors.Is(err, session.ErrInvalidPayload) {
					t.Fatalf("err = %v, want ErrInvalidPayload", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			w := p.Wire()
			if (w == nil) != (tt.wantWire == nil) || (w != nil && *w != *tt.wantWire) {
				t.Fatalf("Wire() = %v, want %v", deref(w), deref(tt.wantWire))
			}
			back, err := session.Decode(w)
			if err != nil || back != p {
				t.Errorf("Decode(Wire()) = %v, %v; want %v", back, err, p)
			}
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%q", *s)
}

func TestUnmarshal(t *testing.T) {
	p, err := session.Decode(ptr(`<!json!>{"shard": 2, "url": "s3://bucket/shard-00002.tar"}`))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Shard int
		URL   string
	}
	if err := p.Unmarshal(&v); err != nil || v.Shard != 2 || v.URL != "s3://bucket/shard-00002.tar" {
		t.Errorf("Unmarshal = %+v, %v", v, err)
	}
	if err := p.Unmarshal(&[]int{}); err == nil {
		t.Error("Unmarshal of an object into a slice: err = nil")
	}
	for _, q := range []session.Payload{session.String(`{"a":1}`), session.Null()} {
		if err := q.Unmarshal(&v); !errors.Is(err, session.ErrInvalidPayload) {
			t.Errorf("%v payload: Unmarshal err = %v, want ErrInvalidPayload", q.Kind(), err)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[session.Kind]string{session.KindNull: "null", session.KindString: "string", session.KindJSON: "json", 7: "Kind(7)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

// FuzzDecode checks that Decode never panics and that every payload it
// returns comes back unchanged through Wire and Decode.
func FuzzDecode(f *testing.F) {
	seeds := []string{
		"https://example.invalid/shards/shard-00003.tar",
		`<!json!>{"shard": 2, "url": "s3://bucket/shard-00002.tar"}`,
		`<!json!>[4, "shard-00004.tar", true]`,
		`<!json!>`, `<!json!>{`, `<!json!>5`, `<!json!>"s"`, `<!json!><!json!>[]`,
		"stage-a-output-plain", "", "\xff\xfe", "concurrent-3", `<!json!>1e400`,
	}
	for _, s := range seeds {
		f.Add(s, false)
	}
	f.Add("", true)
	f.Fuzz(func(t *testing.T, s string, null bool) {
		wire := &s
		if null {
			wire = nil
		}
		p, err := session.Decode(wire)
		if err != nil {
			if !errors.Is(err, session.ErrInvalidPayload) {
				t.Fatalf("Decode error %v does not wrap ErrInvalidPayload", err)
			}
			return
		}
		w := p.Wire()
		if (w == nil) != (wire == nil) || (w != nil && *w != *wire) {
			t.Fatalf("Wire() = %v, want the input %v back", deref(w), deref(wire))
		}
		back, err := session.Decode(w)
		if err != nil || back != p {
			t.Fatalf("Decode(Wire()) = %v, %v; want %v", back, err, p)
		}
		if p.Kind() == session.KindJSON {
			var v json.RawMessage
			if err := p.Unmarshal(&v); err != nil {
				t.Fatalf("Unmarshal of decoded JSON: %v", err)
			}
			if q, err := session.RawJSON([]byte(p.Text())); err == nil && q != p {
				t.Fatalf("RawJSON(Text()) = %v, want %v", q, p)
			}
		}
	})
}
