package trackertest

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
)

// A large body beyond MaxLargeBodies read at once is answered 503 with
// Retry-After, unread; a small one is served meanwhile.
func TestLargeBodiesBounded(t *testing.T) {
	tr := New(Options{Seed: 1, MaxLargeBodies: 2})
	for range 2 {
		tr.largeBodies <- struct{}{} // two large bodies being read
	}
	big := `{"token":"` + strings.Repeat("a", LargeBodyBytes) + `"}`
	rec := httptest.NewRecorder()
	tr.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/validateWorker", strings.NewReader(big)))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("a third large body: %d (Retry-After %q), want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	rec = httptest.NewRecorder()
	tr.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/validateWorker", strings.NewReader(`{"token":"x"}`)))
	if rec.Code != http.StatusOK || rec.Body.String() != "False" {
		t.Fatalf("a small body meanwhile: %d %q, want 200 False", rec.Code, rec.Body.String())
	}
	<-tr.largeBodies
	rec = httptest.NewRecorder()
	tr.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/validateWorker", strings.NewReader(big)))
	if rec.Code != http.StatusOK {
		t.Fatalf("a large body with a slot free: %d %q, want 200", rec.Code, rec.Body.String())
	}
	if len(tr.largeBodies) != 1 {
		t.Fatalf("the slot was not given back: %d in use, want 1", len(tr.largeBodies))
	}
}

func TestBodyOverLimitAnswers413(t *testing.T) {
	tr := New(Options{Seed: 1, MaxBodyBytes: 100})
	for _, tc := range []struct {
		name    string
		length  int64
		chunked bool
	}{{"announced", 200, false}, {"chunked", 200, true}} {
		req := httptest.NewRequest(http.MethodPost, "/api/validateWorker", strings.NewReader(`{"token":"`+strings.Repeat("a", int(tc.length))+`"}`))
		if tc.chunked {
			req.ContentLength = -1
		}
		rec := httptest.NewRecorder()
		tr.ServeHTTP(rec, req)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("%s body over the limit: %d %q, want 413", tc.name, rec.Code, rec.Body.String())
		}
	}
}

func TestJSONDepth(t *testing.T) {
	for doc, want := range map[string]int{
		`{"a":[1,[2]]}`:          3,
		`"[[[[["`:                0,
		`["\"[[[", {"k": "]]"}]`: 2,
		`[[[[[[[[[[`:             6, // stops past the limit of 5
	} {
		if got := jsonDepth(doc, 5); got != want {
			t.Errorf("jsonDepth(%q) = %d, want %d", doc, got, want)
		}
	}
}

// A large body costs at most 4 times its size to read and decode, so that
// MaxLargeBodies bodies at once cost at most 4*MaxLargeBodies*MaxBodyBytes
// (2 * 4 * 32 MiB by default), whatever the number of clients.
func TestLargeBodyCost(t *testing.T) {
	tr := New(Options{Seed: 1})
	for name, data := range map[string]string{
		"plain":   strings.Repeat("a", 16<<20),
		"escaped": strings.Repeat(`a\"\n\u00e9`, 2<<20),
	} {
		body := `{"token":"x","data":"` + data + `"}`
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		rec := httptest.NewRecorder()
		tr.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/completeJob", strings.NewReader(body)))
		runtime.ReadMemStats(&after)
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s body of %d MiB: %d, %d MiB allocated", name, len(body)>>20, rec.Code, alloc>>20)
		if rec.Code != http.StatusNotFound {
			t.Errorf("%s body: %d %q, want 404 (unknown worker)", name, rec.Code, rec.Body.String())
		}
		if alloc > 4*uint64(len(body)) {
			t.Errorf("%s body of %d MiB: %d MiB allocated, over 4 times its size", name, len(body)>>20, alloc>>20)
		}
	}
}
