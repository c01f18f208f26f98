package session_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/session"
)

// fuzzToken is the worker's token in FuzzAnswer; a body's "TOKEN" stands
// for it, so that the fuzzer can make the tracker echo it anywhere.
const fuzzToken = "ea25c273-19a1-4c84-a904-7be689284ce3"

// answerer answers every request from memory: the registration with a
// valid answer (unless it is the endpoint under test), the endpoint under
// test with the fuzzed one. A 3xx answer after the registration carries a
// Location that holds the token.
type answerer struct {
	path   string
	status int
	body   string
}

func (a answerer) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	status, body := http.StatusOK, bodyRegister
	if r.URL.Path == a.path {
		status, body = a.status, a.body
	}
	h := http.Header{"Content-Type": {"application/json"}}
	if status >= 300 && status < 400 && a.path != "/api/new" {
		h.Set("Location", "http://elsewhere.invalid/api/x?token="+fuzzToken)
	}
	return &http.Response{StatusCode: status, Status: strconv.Itoa(status) + " X", Header: h, Request: r,
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), ProtoMajor: 1, ProtoMinor: 1}, nil
}

var fuzzEndpoints = []string{"new", "jobCount", "validateWorker", "updateProgress", "newJob", "completeJob", "flagInvalidData", "bye"}

// FuzzAnswer gives one endpoint any answer (status, body) and checks what
// the Conn makes of it: it does not panic; a call either succeeds with a
// value the protocol allows or fails with an error; and neither the error
// nor the log quotes the worker's token, wherever the answer echoes it
// (the body, a redirect's Location). The seeds are the answers the
// upstream tracker gives (see docs/PROTOCOL.md) and the hostile ones the
// other tests use.
func FuzzAnswer(f *testing.F) {
	seeds := []struct {
		status int
		body   string
	}{
		{200, bodyRegister},
		{200, bodyNewJob},
		{200, `{"data":"<!json!>{\"a\": TOKEN}","number":1}`},
		{200, `{"data":null,"number":3}`},
		{200, `{"number":0,"data":"x"}`},
		{200, `{"number":"TOKEN"}`},
		{200, "7"},
		{200, "-1"},
		{200, "True"},
		{200, "False"},
		{200, `"200 OK"`},
		{200, "TOKEN"},
		{400, `{"detail":"The worker stage 'z' is invalid."}`},
		{403, `{"detail":"You either have no job or your token TOKEN is invalid."}`},
		{403, `{"detail":"No new jobs available."}`},
		{404, `{"detail":"Not Found"}`},
		{422, `{"detail":[{"loc":["body","token"],"msg":"field required","type":"value_error.missing","input":"TOKEN"}]}`},
		{429, `{"detail":"slow down, TOKEN"}`},
		{500, "Internal Server Error"},
		{502, htmlPage},
		{302, ""},
		{200, `{"token":"TOKEN","display_name":"d","project":"p","stage_name":"s"}`},
		{200, `{"token":""}`},
		{400, `{"token":"TOKEN","detail":"The worker stage 'a' is disabled."}`},
		{503, `{"token":"TOKEN"}`},
		{200, "{\"data\":\"<!json!>\\u0000TOKEN\",\"number\":2}"},
	}
	for i := range fuzzEndpoints {
		for _, s := range seeds {
			f.Add(uint8(i), uint16(s.status), s.body)
		}
	}
	f.Fuzz(func(t *testing.T, ep uint8, status uint16, body string) {
		endpoint := fuzzEndpoints[int(ep)%len(fuzzEndpoints)]
		code := int(status)
		if code < 200 || code > 599 {
			code = 200 + code%400 // what a tracker, or a proxy in front of it, may say
		}
		body = strings.ReplaceAll(body, "TOKEN", fuzzToken)
		var logs bytes.Buffer
		c, err := session.New("http://tracker.invalid", &session.Options{
			HTTPClient: &http.Client{Transport: answerer{path: "/api/" + endpoint, status: code, body: body}},
			Logger:     slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			Retry: &session.RetryPolicy{InitialInterval: time.Microsecond, MaxInterval: time.Microsecond, Multiplier: 1,
				MaxRetries: 1, AttemptTimeout: 5 * time.Second, MaxRetryAfter: time.Microsecond},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		reg, err := c.Register(ctx, "n", "a")
		if endpoint == "new" {
			// The registration's own answer: a failure does not quote the
			// token it names (its "token" field, read or not).
			if err == nil && reg.Token == "" {
				t.Fatalf("registered without a token: %+v", reg)
			}
			if err != nil && strings.Contains(body, `"token":"`+fuzzToken) && strings.Contains(err.Error(), fuzzToken) {
				t.Fatalf("register answered %d %q: the error quotes the answer's token: %v", code, body, err)
			}
			return
		}
		if err != nil || reg.Token != fuzzToken {
			t.Fatalf("register: %+v, %v", reg, err)
		}
		tok := reg.Token
		switch endpoint {
		case "jobCount":
			_, err = c.JobCount(ctx, "a")
		case "validateWorker":
			_, err = c.IsAlive(ctx, tok)
		case "updateProgress":
			err = c.UpdateProgress(ctx, tok, "half done")
		case "newJob":
			var job session.Job
			job, err = c.NewJob(ctx, tok)
			if err == nil && job.Number < 1 {
				t.Fatalf("newJob answered %d %q: job %d accepted", code, body, job.Number)
			}
		case "completeJob":
			err = c.CompleteJob(ctx, tok, session.String("out"))
		case "flagInvalidData":
			err = c.FlagInvalidData(ctx, tok)
		case "bye":
			err = c.Bye(ctx, tok)
		}
		if err != nil && strings.Contains(err.Error(), tok) {
			t.Fatalf("%s answered %d %q: the error quotes the token: %v", endpoint, code, body, err)
		}
		var se *session.ServerError
		if errors.As(err, &se) && strings.Contains(se.Body, tok) {
			t.Fatalf("%s answered %d %q: ServerError.Body quotes the token: %q", endpoint, code, body, se.Body)
		}
		if strings.Contains(logs.String(), tok) {
			t.Fatalf("%s answered %d %q: the log quotes the token:\n%s", endpoint, code, body, logs.String())
		}
	})
}
