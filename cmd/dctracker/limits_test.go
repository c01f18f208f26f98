package main

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// A body of 600,000 "[" (which once overflowed the decoder's stack and
// killed the process) is answered 400, and the tracker goes on serving.
func TestDeepNestingAnswers400(t *testing.T) {
	url, _, stop := startRun(t)
	for _, ep := range []string{"validateWorker", "newJob", "completeJob", "updateProgress", "flagInvalidData", "bye"} {
		resp, err := http.Post(url+"/api/"+ep, "application/json", strings.NewReader(strings.Repeat("[", 600_000)))
		if err != nil {
			t.Fatalf("%s: %v", ep, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s with 600,000 [: %d %s, want 400", ep, resp.StatusCode, b)
		}
	}
	// Nesting within the limit is still decoded (and refused as a dict).
	resp, err := http.Post(url+"/api/validateWorker", "application/json", strings.NewReader(strings.Repeat("[", 900)+strings.Repeat("]", 900)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("900 nested lists: %d, want 422", resp.StatusCode)
	}
	if got := get(t, url+"/api/jobCount?stage=a"); got != "200 0" {
		t.Errorf("after the deep bodies, jobCount answers %q", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// bodyReader streams n bytes of a completeJob body without holding them:
// {"token":"x","data":"aaaa...
type bodyReader struct{ left int64 }

func (r *bodyReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	n := min(int64(len(p)), r.left)
	for i := range p[:n] {
		p[i] = 'a'
	}
	if r.left == int64(oversize) { // the first bytes
		n = int64(copy(p, `{"token":"x","data":"`))
	}
	r.left -= n
	return int(n), nil
}

const oversize = 40 << 20 // over the default 32 MiB limit

// memoryBound is what 40 concurrent oversized bodies may allocate in all,
// server and test clients together (TotalAlloc, an upper bound of the
// heap's growth that does not depend on when the GC runs): those that
// announce their length are refused unread, the chunked ones after 1 MiB.
// Before the limits, such bodies took 6.7 GB.
const memoryBound = 160 << 20

// 40 concurrent bodies of 40 MiB, half announcing their length and half
// chunked: every one is refused (413), less than memoryBound is allocated,
// and the tracker goes on serving.
func TestConcurrentOversizedBodies(t *testing.T) {
	url, _, stop := startRun(t)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]int{}
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var body io.Reader = &bodyReader{left: oversize}
			req, _ := http.NewRequest(http.MethodPost, url+"/api/completeJob", body)
			req.Header.Set("Content-Type", "application/json")
			if i%2 == 0 {
				req.ContentLength = oversize
			} else {
				req.ContentLength = -1 // chunked
			}
			resp, err := http.DefaultTransport.RoundTrip(req)
			key := "error (connection closed while sending)"
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				key = fmt.Sprint(resp.StatusCode)
			}
			mu.Lock()
			codes[key]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapSys) - int64(before.HeapSys)
	t.Logf("answers: %v; heap grew by %d MiB (HeapSys %d -> %d MiB), bound %d MiB; %d MiB allocated in all",
		codes, grew>>20, before.HeapSys>>20, after.HeapSys>>20, memoryBound>>20, (after.TotalAlloc-before.TotalAlloc)>>20)
	for k := range codes {
		if k != "413" && !strings.HasPrefix(k, "error") {
			t.Errorf("an oversized body was answered %s", k)
		}
	}
	if codes["413"] == 0 {
		t.Errorf("no oversized body was answered 413: %v", codes)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > memoryBound {
		t.Errorf("%d MiB allocated, over the bound of %d MiB", alloc>>20, memoryBound>>20)
	}
	if got := get(t, url+"/api/jobCount?stage=a"); got != "200 0" {
		t.Errorf("after the oversized bodies, jobCount answers %q", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// dripReader sends one byte per tick until closed.
type dripReader struct {
	tick <-chan time.Time
	done <-chan struct{}
	sent bool
}

func (r *dripReader) Read(p []byte) (int, error) {
	if !r.sent {
		r.sent = true
		return copy(p, `{"token":"`), nil
	}
	select {
	case <-r.tick:
		p[0] = 'a'
		return 1, nil
	case <-r.done:
		return 0, io.EOF
	}
}

// A body dripped a byte at a time is cut off at --read-timeout; the
// tracker goes on serving.
func TestDripBodyCutOff(t *testing.T) {
	url, _, stop := startRun(t, "--read-timeout", "300ms")
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	done := make(chan struct{})
	defer close(done)
	req, _ := http.NewRequest(http.MethodPost, url+"/api/validateWorker", &dripReader{tick: tick.C, done: done})
	req.ContentLength = -1
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("a dripped body was answered 200 %s", b)
		}
		t.Logf("dripped body answered %d %s", resp.StatusCode, b)
	} else {
		t.Logf("dripped body cut off: %v", err)
	}
	if got := get(t, url+"/api/jobCount?stage=a"); got != "200 0" {
		t.Errorf("after the drip, jobCount answers %q", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
