package session_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/session"
)

// TestTokenNeverShown triggers every error path of every endpoint against
// a server that echoes the request (token included) in its answers, and
// checks that the token appears neither in the error nor in the logs.
func TestTokenNeverShown(t *testing.T) {
	echo := func(status int, wrap func(string) string) func(int, http.ResponseWriter, *http.Request) {
		return func(_ int, w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			answer(w, status, wrap(string(b)+" "+r.URL.String()))
		}
	}
	plain := func(s string) string { return s }
	html := func(s string) string { return "<html><body>" + s + "</body></html>" }
	detail := func(s string) string {
		return fmt.Sprintf(`{"detail":[{"loc":["body",%q],"msg":%q,"type":"value_error","ctx":{"doc":%q}}]}`, s, s, s)
	}
	register := func(s string) string {
		return `{"token":"` + testToken + `","display_name":5,"echo":` + fmt.Sprintf("%q", s) + `}`
	}
	modes := []struct {
		name    string
		handler func(int, http.ResponseWriter, *http.Request)
		adjust  func(*session.Options)
	}{
		{"500 echo", echo(500, plain), nil},
		{"502 HTML echo", echo(502, html), nil},
		{"429 echo", echo(429, plain), nil},
		{"422 detail echo", echo(422, detail), nil},
		{"403 echo", echo(403, plain), nil},
		{"404 echo", echo(404, plain), nil},
		{"400 echo", echo(400, plain), nil},
		{"401 echo", echo(401, plain), nil},
		{"200 HTML echo", echo(200, html), nil},
		{"200 bad register answer", echo(200, register), nil},
		{"200 over the limit", echo(200, func(s string) string { return s + strings.Repeat(" "+s, 50) }), func(o *session.Options) { o.MaxResponseBytes = 2048 }},
		{"redirect", func(_ int, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", "/x?token="+testToken)
			w.WriteHeader(302)
			_, _ = io.WriteString(w, testToken)
		}, nil},
		{"dropped", func(_ int, w http.ResponseWriter, r *http.Request) { dropMidAnswer(t, w) }, nil},
		{"timeout", func(_ int, _ http.ResponseWriter, r *http.Request) {
			_, _ = io.ReadAll(r.Body)
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, func(o *session.Options) { o.Retry.AttemptTimeout = 20 * time.Millisecond; o.Retry.MaxRetries = 1 }},
	}
	for _, m := range modes {
		for _, ep := range endpoints() {
			if (ep.name == "new" || ep.name == "jobCount") && (m.name == "redirect" || m.name == "200 bad register answer") &&
				!(ep.name == "new" && m.name == "200 bad register answer") {
				// The server would show a token this call never sent.
				continue
			}
			t.Run(m.name+"/"+ep.name, func(t *testing.T) {
				t.Parallel()
				srv, _ := server(t, m.handler)
				c, logs := newConn(t, srv.URL, m.adjust)
				err := ep.call(context.Background(), c)
				if err == nil {
					if m.name == "403 echo" || m.name == "404 echo" || m.name == "400 echo" {
						return // not an error path for every endpoint
					}
					t.Fatal("err = nil, want an error")
				}
				if strings.Contains(err.Error(), testToken) {
					t.Errorf("err holds the token: %v", err)
				}
				if strings.Contains(fmt.Sprintf("%+v", err), testToken) {
					t.Errorf("err %%+v holds the token")
				}
				if strings.Contains(logs.String(), testToken) {
					t.Errorf("logs hold the token:\n%s", logs)
				}
			})
		}
	}
	t.Run("cancelled", func(t *testing.T) {
		srv, _ := server(t, echo(500, plain))
		c, logs := newConn(t, srv.URL, func(o *session.Options) { o.Retry.InitialInterval = time.Hour; o.Retry.MaxInterval = time.Hour })
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err := c.CompleteJob(ctx, testToken, session.String("x"))
		if err == nil || strings.Contains(err.Error(), testToken) || strings.Contains(logs.String(), testToken) {
			t.Errorf("err = %v; token shown or no error", err)
		}
	})
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"ea25c273-19a1-4c84-a904-7be689284ce3", "ea25c273…"},
		{"abcd", "ab…"},
		{"a", "…"},
		{"ñññññññññññññññññññ", "ñññññññññ"[:16] + "…"},
	}
	for _, tt := range tests {
		if got := session.Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
