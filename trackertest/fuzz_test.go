package trackertest_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/distcompute/distcompute-go/trackertest"
)

// The fuzz targets below, one per handler, send arbitrary bodies (or query
// strings) to a tracker that has a worker holding a job: whatever comes,
// the handler answers (no panic, no crash), with a status the protocol
// uses, and a JSON answer is valid JSON. "TOKEN" in the input stands for
// the worker's token, so that the fuzzer reaches the paths past the token
// check. Run one with, for example:
//
//	go test ./trackertest -run XXX -fuzz FuzzCompleteJob -fuzztime 30s

var fuzzStatuses = map[int]bool{200: true, 307: true, 400: true, 403: true, 404: true, 405: true, 413: true, 422: true, 500: true, 503: true}

func fuzzTracker(tb testing.TB) (*trackertest.Tracker, string) {
	tb.Helper()
	tr := trackertest.New(trackertest.Options{Seed: 1, Stages: map[string]string{"a": "CPU", "b": "GPU"}, Jobs: []any{"job one", []any{"two"}}})
	rec := httptest.NewRecorder()
	tr.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/new?nickname=fuzz&stage=a", nil))
	var reg struct{ Token string }
	if err := json.Unmarshal(rec.Body.Bytes(), &reg); err != nil || reg.Token == "" {
		tb.Fatalf("register: %d %s", rec.Code, rec.Body.String())
	}
	rec = httptest.NewRecorder()
	tr.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/newJob", strings.NewReader(`{"token":"`+reg.Token+`"}`)))
	if rec.Code != http.StatusOK {
		tb.Fatalf("newJob: %d %s", rec.Code, rec.Body.String())
	}
	return tr, reg.Token
}

func fuzzBody(f *testing.F, endpoint string, seeds ...string) {
	for _, s := range append(seeds, `{"token":"TOKEN"}`, `{}`, `null`, `[]`, `[["token","TOKEN"]]`, "\ufeff{\"token\":\"TOKEN\"}",
		`{"token":1}`, `{"token":"TOKEN","token":"x"}`, strings.Repeat("[", 2000), `{"token":"\ud800"}`, "{\"token\":\"\xff\"}", `NaN`) {
		f.Add(s, "application/json")
	}
	f.Add(`{"token":"TOKEN"}`, "text/plain")
	f.Fuzz(func(t *testing.T, body, ctype string) {
		tr, token := fuzzTracker(t)
		req := httptest.NewRequest(http.MethodPost, "/api/"+endpoint, strings.NewReader(strings.ReplaceAll(body, "TOKEN", token)))
		req.Header.Set("Content-Type", ctype)
		checkAnswer(t, tr, req)
	})
}

func fuzzQuery(f *testing.F, endpoint string, seeds ...string) {
	for _, s := range append(seeds, "", "stage=a", "stage=A", "stage=", "stage=a&stage=b", "stage=%ff", "nickname=%00&stage=a") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		tr, _ := fuzzTracker(t)
		req := httptest.NewRequest(http.MethodGet, "/api/"+endpoint, nil)
		req.URL.RawQuery = query
		checkAnswer(t, tr, req)
	})
}

func checkAnswer(t *testing.T, tr *trackertest.Tracker, req *http.Request) {
	t.Helper()
	rec := httptest.NewRecorder()
	tr.ServeHTTP(rec, req)
	if !fuzzStatuses[rec.Code] {
		t.Fatalf("%s %s: status %d %q", req.Method, req.URL, rec.Code, rec.Body.String())
	}
	if rec.Header().Get("Content-Type") == "application/json" && !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("%s %s: invalid JSON answer %q", req.Method, req.URL, rec.Body.String())
	}
	// The tracker still answers afterwards.
	rec = httptest.NewRecorder()
	tr.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/jobCount?stage=a", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("jobCount after the request: %d %q", rec.Code, rec.Body.String())
	}
}

func FuzzRegister(f *testing.F) {
	fuzzQuery(f, "new", "nickname=bob&stage=a", "nickname="+strings.Repeat("x", 200)+"&stage=b", "nickname=bob&stage=c")
}
func FuzzJobCount(f *testing.F) { fuzzQuery(f, "jobCount", "stage=b", "stage=z") }
func FuzzValidateWorker(f *testing.F) {
	fuzzBody(f, "validateWorker", `{"token":"nope"}`)
}
func FuzzUpdateProgress(f *testing.F) {
	fuzzBody(f, "updateProgress", `{"token":"TOKEN","progress":"half"}`, `{"token":"TOKEN","progress":"`+strings.Repeat("p", 300)+`"}`,
		`{"token":"TOKEN","progress":null}`)
}
func FuzzNewJob(f *testing.F) { fuzzBody(f, "newJob") }
func FuzzCompleteJob(f *testing.F) {
	fuzzBody(f, "completeJob", `{"token":"TOKEN","data":"done"}`, `{"token":"TOKEN","data":{"a":1}}`, `{"token":"TOKEN","data":12}`,
		`{"token":"TOKEN","data":"<!json!>[1,2]"}`)
}
func FuzzFlagInvalidData(f *testing.F) { fuzzBody(f, "flagInvalidData") }
func FuzzBye(f *testing.F)             { fuzzBody(f, "bye") }
