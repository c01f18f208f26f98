package preempt_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/distcompute/distcompute-go/internal/preempt"
)

// metadataAfter answers the first bad requests with the fuzzed answer
// (status, body, ETag), then as a healthy metadata service of provider p
// that announces a preemption. It answers in memory: nothing is dialled.
type metadataAfter struct {
	p      preempt.Provider
	status int
	body   string
	etag   string

	mu      sync.Mutex
	bad     int    // fuzzed answers left
	sent    string // the ETag last given (GCP)
	echoErr string // a long-poll that did not send back that ETag exactly
}

func (m *metadataAfter) RoundTrip(r *http.Request) (*http.Response, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// What http.Transport refuses before sending: a header value with a
	// control character.
	for k, vs := range r.Header {
		for _, v := range vs {
			if strings.ContainsFunc(v, func(c rune) bool { return c < ' ' && c != '\t' || c == 0x7f }) {
				return nil, errors.New("net/http: invalid header field value for " + strconv.Quote(k))
			}
		}
	}
	answer := func(status int, body string, h http.Header) (*http.Response, error) {
		if h == nil {
			h = http.Header{}
		}
		return &http.Response{StatusCode: status, Status: strconv.Itoa(status) + " X", Header: h, Request: r,
			Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), ProtoMajor: 1, ProtoMinor: 1}, nil
	}
	if m.p == preempt.GCP && r.URL.Query().Get("wait_for_change") == "true" {
		if got := r.URL.Query().Get("last_etag"); got != m.sent && m.echoErr == "" {
			m.echoErr = "sent back last_etag " + strconv.Quote(got) + ", was given " + strconv.Quote(m.sent)
		}
	}
	if m.bad > 0 {
		m.bad--
		m.sent = m.etag
		return answer(m.status, m.body, http.Header{"Etag": {m.etag}})
	}
	m.sent = ""
	switch {
	case m.p == preempt.AWS && r.Method == http.MethodPut:
		return answer(http.StatusOK, "good-token", nil)
	case m.p == preempt.AWS && r.Header.Get("X-Aws-Ec2-Metadata-Token") != "good-token":
		return answer(http.StatusUnauthorized, "", nil)
	case m.p == preempt.AWS:
		return answer(http.StatusOK, `{"action":"terminate","time":"2026-11-26T23:59:00Z"}`, nil)
	case m.p == preempt.GCP:
		return answer(http.StatusOK, "TRUE", nil)
	default:
		return answer(http.StatusOK, `{"Events":[{"EventId":"e","EventType":"Preempt","NotBefore":"Thu, 26 Nov 2026 23:59:00 GMT"}]}`, nil)
	}
}

// FuzzWatch gives the watcher any answers (status, body, ETag) for its first
// three requests, then a healthy metadata service that announces a
// preemption: whatever it was told first, the watcher must not panic, must
// hear the notice (a bad answer must not leave it deaf: a token it cannot
// send, an ETag it cannot send back), must send back an ETag exactly as
// given, and keeps at most 1 KiB of the answer in the notice, cut at a
// character.
func FuzzWatch(f *testing.F) {
	for p := range 3 {
		for _, s := range []struct {
			status     int
			body, etag string
		}{
			{200, "tok", ""},
			{200, "a\nb", ""},
			{200, " \x00bad", ""},
			{200, strings.Repeat("é", 600), ""},
			{200, `{"action":"terminate","x":"` + strings.Repeat("é", 600) + `"}`, ""},
			{200, "FALSE", "etag-1"},
			{200, "FALSE", "a b&c=d#e"},
			{200, "FALSE", "\"quoted\"+plus%25"},
			{200, "TRUE", ""},
			{200, `{"action":"","time":"x"}`, ""},
			{200, `{"Events":[{"EventType":"Preempt","NotBefore":"never"}]}`, ""},
			{200, `{"Events":null}`, ""},
			{401, "", ""},
			{404, "Not Found", ""},
			{500, "<html>", ""},
		} {
			f.Add(uint8(p), uint16(s.status), s.body, s.etag)
		}
	}
	providers := []preempt.Provider{preempt.AWS, preempt.GCP, preempt.Azure}
	f.Fuzz(func(t *testing.T, pi uint8, status uint16, body, etag string) {
		p := providers[int(pi)%len(providers)]
		code := int(status)
		if code < 200 || code > 599 {
			code = 200 + code%400
		}
		m := &metadataAfter{p: p, status: code, body: body, etag: etag, bad: 3}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n, err := preempt.Watch(ctx, p, &preempt.Options{
			HTTPClient: &http.Client{Transport: m}, Interval: time.Millisecond, RequestTimeout: time.Second,
		})
		if err != nil {
			t.Fatalf("%s, first answers %d %q ETag %q: no notice from the healthy service after them: %v", p, code, body, etag, err)
		}
		if n.Action == "" || n.Provider != p {
			t.Fatalf("%s: notice %+v", p, n)
		}
		if len(n.Detail) > 1024 || !utf8.ValidString(n.Detail) && utf8.ValidString(body) {
			t.Fatalf("%s: notice detail of %d bytes (valid UTF-8: %v) from an answer of %d", p, len(n.Detail), utf8.ValidString(n.Detail), len(body))
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.echoErr != "" {
			t.Fatalf("%s: %s", p, m.echoErr)
		}
	})
}
