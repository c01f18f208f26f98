package session_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/distcompute/distcompute-go/session"
)

// captured is one request as the fake tracker saw it.
type captured struct {
	method, path, rawQuery, contentType, userAgent string
	query                                          map[string][]string
	body                                           map[string]any
	rawBody                                        string
}

// capture starts a server that records requests and answers okBody, and
// returns a base URL with the given path prefix.
func capture(t *testing.T, prefix, okBody string) (string, func() []captured) {
	var mu sync.Mutex
	var got []captured
	srv, _ := server(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c := captured{method: r.Method, path: r.URL.Path, rawQuery: r.URL.RawQuery, query: r.URL.Query(),
			contentType: r.Header.Get("Content-Type"), userAgent: r.Header.Get("User-Agent"), rawBody: string(b)}
		if len(b) > 0 {
			if err := json.Unmarshal(b, &c.body); err != nil {
				t.Errorf("request body %q is not a JSON object: %v", b, err)
			}
		}
		mu.Lock()
		got = append(got, c)
		mu.Unlock()
		answer(w, 200, okBody)
	})
	return srv.URL + prefix, func() []captured {
		mu.Lock()
		defer mu.Unlock()
		return append([]captured(nil), got...)
	}
}

func TestRequests(t *testing.T) {
	long := strings.Repeat("é", 300)
	tests := []struct {
		name      string
		okBody    string
		call      func(context.Context, *session.Conn) error
		wantMeth  string
		wantPath  string
		wantQuery map[string]string
		wantBody  map[string]any
	}{
		{"register", bodyRegister, func(ctx context.Context, c *session.Conn) error {
			_, err := c.Register(ctx, "Zoë ✓ & co", "B")
			return err
		}, "GET", "/api/new", map[string]string{"nickname": "Zoë ✓ & co", "stage": "b"}, nil},
		{"jobCount", "0", func(ctx context.Context, c *session.Conn) error {
			_, err := c.JobCount(ctx, "E")
			return err
		}, "GET", "/api/jobCount", map[string]string{"stage": "e"}, nil},
		{"validateWorker", "False", func(ctx context.Context, c *session.Conn) error {
			_, err := c.IsAlive(ctx, testToken)
			return err
		}, "POST", "/api/validateWorker", nil, map[string]any{"token": testToken}},
		{"updateProgress", bodyOK, func(ctx context.Context, c *session.Conn) error {
			return c.UpdateProgress(ctx, testToken, "<50%> & rising")
		}, "POST", "/api/updateProgress", nil, map[string]any{"token": testToken, "progress": "<50%> & rising"}},
		{"updateProgress cut to 255 runes", bodyOK, func(ctx context.Context, c *session.Conn) error {
			return c.UpdateProgress(ctx, testToken, long)
		}, "POST", "/api/updateProgress", nil, map[string]any{"token": testToken, "progress": strings.Repeat("é", 255)}},
		{"updateProgress drops NUL, fixes invalid UTF-8", bodyOK, func(ctx context.Context, c *session.Conn) error {
			return c.UpdateProgress(ctx, testToken, "a\x00b\xffc")
		}, "POST", "/api/updateProgress", nil, map[string]any{"token": testToken, "progress": "ab\uFFFDc"}},
		{"newJob", bodyNewJob, func(ctx context.Context, c *session.Conn) error {
			_, err := c.NewJob(ctx, testToken)
			return err
		}, "POST", "/api/newJob", nil, map[string]any{"token": testToken}},
		{"completeJob string", bodyOK, func(ctx context.Context, c *session.Conn) error {
			return c.CompleteJob(ctx, testToken, session.String("<b>plain</b>"))
		}, "POST", "/api/completeJob", nil, map[string]any{"token": testToken, "data": "<b>plain</b>"}},
		{"completeJob JSON", bodyOK, func(ctx context.Context, c *session.Conn) error {
			p, err := session.JSON(map[string]any{"n": 1, "s": "<&>"})
			if err != nil {
				return err
			}
			return c.CompleteJob(ctx, testToken, p)
		}, "POST", "/api/completeJob", nil, map[string]any{"token": testToken, "data": `<!json!>{"n":1,"s":"<&>"}`}},
		{"flagInvalidData", bodyOK, func(ctx context.Context, c *session.Conn) error {
			return c.FlagInvalidData(ctx, testToken)
		}, "POST", "/api/flagInvalidData", nil, map[string]any{"token": testToken}},
		{"bye", bodyOK, func(ctx context.Context, c *session.Conn) error {
			return c.Bye(ctx, testToken)
		}, "POST", "/api/bye", nil, map[string]any{"token": testToken}},
	}
	for _, prefix := range []string{"", "/", "/tracker", "/tracker/"} {
		for _, tt := range tests {
			t.Run(tt.name+"/base "+prefix, func(t *testing.T) {
				base, reqs := capture(t, prefix, tt.okBody)
				c, _ := newConn(t, base, nil)
				if err := tt.call(context.Background(), c); err != nil {
					t.Fatalf("err = %v", err)
				}
				got := reqs()
				if len(got) != 1 {
					t.Fatalf("requests = %d, want 1", len(got))
				}
				r := got[0]
				wantPath := strings.TrimSuffix(prefix, "/") + tt.wantPath
				if r.method != tt.wantMeth || r.path != wantPath {
					t.Errorf("request = %s %s, want %s %s", r.method, r.path, tt.wantMeth, wantPath)
				}
				if r.userAgent != session.UserAgent {
					t.Errorf("User-Agent = %q, want %q", r.userAgent, session.UserAgent)
				}
				if len(r.query) != len(tt.wantQuery) {
					t.Errorf("query = %v, want %v", r.query, tt.wantQuery)
				}
				for k, v := range tt.wantQuery {
					if got := r.query[k]; len(got) != 1 || got[0] != v {
						t.Errorf("query %s = %q, want %q", k, got, v)
					}
				}
				if tt.wantBody == nil {
					if r.rawBody != "" || r.contentType != "" {
						t.Errorf("GET with body %q, Content-Type %q", r.rawBody, r.contentType)
					}
					return
				}
				if r.contentType != "application/json" {
					t.Errorf("Content-Type = %q, want application/json", r.contentType)
				}
				if len(r.body) != len(tt.wantBody) {
					t.Errorf("body = %v, want %v", r.body, tt.wantBody)
				}
				for k, v := range tt.wantBody {
					if r.body[k] != v {
						t.Errorf("body %s = %q, want %q", k, r.body[k], v)
					}
				}
				if strings.Contains(r.rawBody, `\u003c`) {
					t.Errorf("body %q escapes HTML characters", r.rawBody)
				}
			})
		}
	}
}

func TestProgressCutKeepsRunes(t *testing.T) {
	inputs := []string{
		strings.Repeat("a", 254) + "€€",
		strings.Repeat("😀", 256),
		strings.Repeat("a", 255),
		strings.Repeat("a", 256),
		"",
	}
	for _, in := range inputs {
		base, reqs := capture(t, "", bodyOK)
		c, _ := newConn(t, base, nil)
		if err := c.UpdateProgress(context.Background(), testToken, in); err != nil {
			t.Fatal(err)
		}
		got, _ := reqs()[0].body["progress"].(string)
		wantLen := min(utf8.RuneCountInString(in), session.MaxProgressLen)
		if utf8.RuneCountInString(got) != wantLen || !utf8.ValidString(got) || !strings.HasPrefix(in, got) {
			t.Errorf("progress of %d runes sent as %d runes (valid %v), want the first %d", utf8.RuneCountInString(in), utf8.RuneCountInString(got), utf8.ValidString(got), wantLen)
		}
	}
}

// TestLocalValidation checks the arguments refused before anything is sent.
func TestLocalValidation(t *testing.T) {
	tests := []struct {
		name string
		call func(context.Context, *session.Conn) error
		want error
	}{
		{"stage GPU", func(ctx context.Context, c *session.Conn) error { _, err := c.Register(ctx, "x", "GPU"); return err }, session.ErrInvalidStage},
		{"stage empty", func(ctx context.Context, c *session.Conn) error { _, err := c.Register(ctx, "x", ""); return err }, session.ErrInvalidStage},
		{"stage f", func(ctx context.Context, c *session.Conn) error { _, err := c.Register(ctx, "x", "f"); return err }, session.ErrInvalidStage},
		{"stage z jobCount", func(ctx context.Context, c *session.Conn) error { _, err := c.JobCount(ctx, "z"); return err }, session.ErrInvalidStage},
		{"nickname 129", func(ctx context.Context, c *session.Conn) error {
			_, err := c.Register(ctx, strings.Repeat("n", 129), "a")
			return err
		}, session.ErrInvalidArgument},
		{"nickname 129 runes", func(ctx context.Context, c *session.Conn) error {
			_, err := c.Register(ctx, strings.Repeat("ñ", 129), "a")
			return err
		}, session.ErrInvalidArgument},
		{"nickname invalid UTF-8", func(ctx context.Context, c *session.Conn) error { _, err := c.Register(ctx, "a\xff", "a"); return err }, session.ErrInvalidArgument},
		{"nickname NUL", func(ctx context.Context, c *session.Conn) error { _, err := c.Register(ctx, "a\x00", "a"); return err }, session.ErrInvalidArgument},
		{"null output", func(ctx context.Context, c *session.Conn) error {
			return c.CompleteJob(ctx, testToken, session.Null())
		}, session.ErrInvalidArgument},
		{"empty token isAlive", func(ctx context.Context, c *session.Conn) error { _, err := c.IsAlive(ctx, ""); return err }, session.ErrInvalidArgument},
		{"empty token progress", func(ctx context.Context, c *session.Conn) error { return c.UpdateProgress(ctx, "", "x") }, session.ErrInvalidArgument},
		{"empty token newJob", func(ctx context.Context, c *session.Conn) error { _, err := c.NewJob(ctx, ""); return err }, session.ErrInvalidArgument},
		{"empty token complete", func(ctx context.Context, c *session.Conn) error {
			return c.CompleteJob(ctx, "", session.String("x"))
		}, session.ErrInvalidArgument},
		{"empty token flag", func(ctx context.Context, c *session.Conn) error { return c.FlagInvalidData(ctx, "") }, session.ErrInvalidArgument},
		{"empty token bye", func(ctx context.Context, c *session.Conn) error { return c.Bye(ctx, "") }, session.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, hits := server(t, func(_ int, w http.ResponseWriter, _ *http.Request) { answer(w, 200, bodyOK) })
			c, _ := newConn(t, srv.URL, nil)
			err := tt.call(context.Background(), c)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "session: ") || strings.Count(err.Error(), "session: ") != 1 {
				t.Errorf("err = %q, want one \"session: <endpoint>: \" prefix", err)
			}
			if hits.Load() != 0 {
				t.Errorf("%d requests sent, want none", hits.Load())
			}
		})
	}
	t.Run("nickname 128 accepted", func(t *testing.T) {
		base, reqs := capture(t, "", bodyRegister)
		c, _ := newConn(t, base, nil)
		if _, err := c.Register(context.Background(), strings.Repeat("ñ", 128), "a"); err != nil {
			t.Fatal(err)
		}
		if len(reqs()) != 1 {
			t.Fatal("no request sent")
		}
	})
}

func TestNormalizeStage(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"a", "a", true}, {"A", "a", true}, {"c", "c", true}, {"E", "e", true},
		{"GPU", "", false}, {"CPU", "", false}, {"f", "", false}, {"F", "", false}, {"", "", false},
		{" a", "", false}, {"aa", "", false}, {"!", "", false}, {"\x01", "", false}, {"é", "", false},
	}
	for _, tt := range tests {
		got, err := session.NormalizeStage(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("NormalizeStage(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil {
			if !errors.Is(err, session.ErrInvalidStage) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.in)) {
				t.Errorf("NormalizeStage(%q) error = %v, want ErrInvalidStage quoting the value", tt.in, err)
			}
		}
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		url     string
		wantURL string
		ok      bool
	}{
		{"http://tracker.example:8080", "http://tracker.example:8080", true},
		{"http://tracker.example:8080/", "http://tracker.example:8080", true},
		{"https://tracker.example/sub/", "https://tracker.example/sub", true},
		{"HTTPS://tracker.example", "https://tracker.example", true},
		{"ftp://tracker.example", "", false},
		{"tracker.example", "", false},
		{"http://", "", false},
		{"http://tracker.example/?x=1", "", false},
		{"http://tracker.example/#frag", "", false},
		{"http://[::1", "", false},
		{"", "", false},
		{"mailto:a@b", "", false},
	}
	for _, tt := range tests {
		c, err := session.New(tt.url, nil)
		if (err == nil) != tt.ok {
			t.Errorf("New(%q) err = %v, want ok=%v", tt.url, err, tt.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, session.ErrInvalidArgument) {
				t.Errorf("New(%q) err = %v, want ErrInvalidArgument", tt.url, err)
			}
			continue
		}
		if got := c.URL(); got != tt.wantURL {
			t.Errorf("New(%q).URL() = %q, want %q", tt.url, got, tt.wantURL)
		}
	}
	bad := []session.RetryPolicy{
		{InitialInterval: -1},
		{Multiplier: 0.5},
		{RandomizationFactor: 2},
		{MaxRetries: -1},
	}
	for _, p := range bad {
		if _, err := session.New("http://x", &session.Options{Retry: &p}); !errors.Is(err, session.ErrInvalidArgument) {
			t.Errorf("New with policy %+v: err = %v, want ErrInvalidArgument", p, err)
		}
	}
	if _, err := session.New("http://x", &session.Options{MaxResponseBytes: -1}); !errors.Is(err, session.ErrInvalidArgument) {
		t.Errorf("New with negative MaxResponseBytes: err = %v, want ErrInvalidArgument", err)
	}
}

// TestCallerClientUnchanged checks that a caller's client is copied, not
// modified, and that redirects are not followed even when it would.
func TestCallerClientUnchanged(t *testing.T) {
	var followed bool
	srv, _ := server(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed = true
			answer(w, 200, bodyOK)
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	})
	hc := &http.Client{}
	c, _ := newConn(t, srv.URL, func(o *session.Options) { o.HTTPClient = hc })
	err := c.Bye(context.Background(), testToken)
	wantServerError(t, err, 307)
	if followed {
		t.Error("redirect followed")
	}
	if hc.CheckRedirect != nil {
		t.Error("caller's client modified")
	}
}
