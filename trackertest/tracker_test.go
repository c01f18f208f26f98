package trackertest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/trackertest"
)

// api is a minimal client for the tests: it speaks the wire protocol directly.
type api struct {
	tb  testing.TB
	url string
	hc  *http.Client
}

func newAPI(tb testing.TB, s *trackertest.Server) *api {
	return &api{tb: tb, url: s.URL, hc: &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// do sends a request; body, if not nil, is sent as JSON. It returns the status and body.
func (a *api) do(method, path string, body any) (int, string, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			a.tb.Fatal(err)
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	if err != nil {
		a.tb.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func (a *api) must(method, path string, body any) (int, string) {
	a.tb.Helper()
	st, b, err := a.do(method, path, body)
	if err != nil {
		a.tb.Fatalf("%s %s: %v", method, path, err)
	}
	return st, b
}

func (a *api) register(nick, stage string) (token, name string) {
	a.tb.Helper()
	st, b := a.must("GET", "/api/new?"+url.Values{"nickname": {nick}, "stage": {stage}}.Encode(), nil)
	if st != 200 {
		a.tb.Fatalf("register %s at %s: %d %s", nick, stage, st, b)
	}
	var r struct {
		Token       string `json:"token"`
		DisplayName string `json:"display_name"`
	}
	if err := json.Unmarshal([]byte(b), &r); err != nil {
		a.tb.Fatal(err)
	}
	return r.Token, r.DisplayName
}

type claimed struct {
	Data   *string `json:"data"`
	Number int     `json:"number"`
}

func (a *api) newJob(token string) (claimed, int) {
	a.tb.Helper()
	st, b := a.must("POST", "/api/newJob", map[string]string{"token": token})
	var c claimed
	if st == 200 {
		if err := json.Unmarshal([]byte(b), &c); err != nil {
			a.tb.Fatalf("newJob answer %q: %v", b, err)
		}
	}
	return c, st
}

func (a *api) post(path string, body map[string]string) (int, string) {
	a.tb.Helper()
	return a.must("POST", path, body)
}

func (a *api) jobCount(stage string) string {
	a.tb.Helper()
	_, b := a.must("GET", "/api/jobCount?stage="+stage, nil)
	return b
}

func wantAnswer(tb testing.TB, what string, st int, body string, wantSt int, wantBody string) {
	tb.Helper()
	if st != wantSt || body != wantBody {
		tb.Fatalf("%s: got %d %q, want %d %q", what, st, body, wantSt, wantBody)
	}
}

func ptr(s string) *string { return &s }

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%q", *p)
}

func TestContractPipeline(t *testing.T) {
	s := trackertest.Start(t, trackertest.Options{
		Stages: map[string]string{"a": "CPU", "b": "GPU"},
		Jobs:   []any{map[string]any{"url": "u1", "n": 1}},
		Seed:   1,
	})
	c := newAPI(t, s)
	ta, _ := c.register("alice", "a")
	tb, nameB := c.register("bob", "b")

	j, st := c.newJob(ta)
	if st != 200 || j.Number != 1 || str(j.Data) != `"<!json!>{\"n\": 1, \"url\": \"u1\"}"` {
		t.Fatalf("stage a claim: %d %+v data %s", st, j, str(j.Data))
	}
	out := `<!json!>{"caption": "a cat"}`
	st, b := c.post("/api/completeJob", map[string]string{"token": ta, "data": out})
	wantAnswer(t, "complete a", st, b, 200, "200 OK")
	if got := c.jobCount("a") + "/" + c.jobCount("b"); got != "0/1" {
		t.Fatalf("job counts a/b after stage a: %s, want 0/1", got)
	}

	j, st = c.newJob(tb)
	if st != 200 || j.Number != 1 || str(j.Data) != str(&out) {
		t.Fatalf("stage b claim: %d number %d data %s, want stage a's output %q", st, j.Number, str(j.Data), out)
	}
	if v, _ := s.Tracker.Job(1); v.State != trackertest.JobHeld || v.Holder != nameB || v.Stage != "b" {
		t.Fatalf("job while held at b: %+v", v)
	}
	st, b = c.post("/api/completeJob", map[string]string{"token": tb, "data": "final"})
	wantAnswer(t, "complete b", st, b, 200, "200 OK")

	v, _ := s.Tracker.Job(1)
	if v.State != trackertest.JobClosed || v.Holder != "" {
		t.Fatalf("job after last stage: state %s holder %q, want closed", v.State, v.Holder)
	}
	if str(v.Data["a"]) != `"<!json!>{\"n\": 1, \"url\": \"u1\"}"` || str(v.Data["b"]) != str(&out) {
		t.Errorf("data per stage: a=%s b=%s", str(v.Data["a"]), str(v.Data["b"]))
	}
	if str(v.Outputs["a"]) != str(&out) || str(v.Outputs["b"]) != `"final"` {
		t.Errorf("outputs per stage: a=%s b=%s", str(v.Outputs["a"]), str(v.Outputs["b"]))
	}
	if v.Completions["a"] != 1 || v.Completions["b"] != 1 {
		t.Errorf("completions %v, want a:1 b:1", v.Completions)
	}
	if got := c.jobCount("b"); got != "0" {
		t.Errorf("jobCount b after close = %s", got)
	}
	ws := s.Tracker.Workers()
	if len(ws) != 2 || ws[0].Completed != 1 || ws[0].Progress != "Completed Job" || ws[1].Job != 0 {
		t.Errorf("workers after pipeline: %+v", ws)
	}
	if lb := s.Tracker.Leaderboard(); lb["alice"] != 1 || lb["bob"] != 1 {
		t.Errorf("leaderboard %v", lb)
	}
}

// flagToLimit makes 5 fresh stage-b workers claim and flag the only stage-b job and returns
// the answers of the flags.
func flagToLimit(t *testing.T, c *api, n int) (answers []string, last string) {
	t.Helper()
	for i := 0; i < n; i++ {
		tok, _ := c.register(fmt.Sprintf("flagger%d", i), "b")
		if _, st := c.newJob(tok); st != 200 {
			t.Fatalf("flagger %d: newJob %d", i, st)
		}
		st, b := c.post("/api/flagInvalidData", map[string]string{"token": tok})
		answers = append(answers, fmt.Sprintf("%d %s", st, b))
		last = tok
	}
	return answers, last
}

func TestContractFlagRollback(t *testing.T) {
	s := trackertest.Start(t, trackertest.Options{Stages: map[string]string{"a": "CPU", "b": "GPU"}, Jobs: []any{"input-1"}})
	c := newAPI(t, s)
	ta, _ := c.register("alice", "a")
	c.newJob(ta)
	c.post("/api/completeJob", map[string]string{"token": ta, "data": "bad-output"})

	answers, _ := flagToLimit(t, c, 4)
	for i, a := range answers {
		if a != "200 200 OK" {
			t.Fatalf("flag %d: %s", i+1, a)
		}
	}
	if v, _ := s.Tracker.Job(1); v.Stage != "b" || v.State != trackertest.JobOpen || v.Flags["b"] != 4 {
		t.Fatalf("after 4 flags: %+v, want open at b with 4 flags", v)
	}
	if a, _ := flagToLimit(t, c, 1); a[0] != "200 200 OK" {
		t.Fatalf("5th flag: %s", a[0])
	}
	v, _ := s.Tracker.Job(1)
	if v.Stage != "a" || v.State != trackertest.JobOpen || v.Flags["b"] != 0 || v.Data["b"] != nil {
		t.Fatalf("after 5th flag: %+v, want open at a, stage b's input and flags cleared", v)
	}
	if got := c.jobCount("a") + "/" + c.jobCount("b"); got != "1/0" {
		t.Fatalf("counts a/b = %s, want 1/0", got)
	}
	j, _ := c.newJob(ta)
	if str(j.Data) != `"input-1"` {
		t.Fatalf("stage a served %s after rollback, want its input", str(j.Data))
	}
}

func TestQuirks(t *testing.T) {
	s := trackertest.Start(t, trackertest.Options{Stages: map[string]string{"a": "CPU", "b": "GPU"}, Jobs: []any{"input-1"}, Quirks: true})
	c := newAPI(t, s)
	ta, _ := c.register("alice", "a")
	c.newJob(ta)
	c.post("/api/completeJob", map[string]string{"token": ta, "data": "out-a"})
	v, _ := s.Tracker.Job(1)
	if str(v.Data["a"]) != `"out-a"` || v.Data["b"] != nil {
		t.Fatalf("quirks storage after stage a: a=%s b=%s, want the output over the input", str(v.Data["a"]), str(v.Data["b"]))
	}

	answers, holder := flagToLimit(t, c, 5)
	want422 := `422 {"detail":[{"loc":[],"msg":"null value in column \"data_a\" of relation \"job\" violates not-null constraint\nDETAIL:  Failing row contains (1, a, null, null, null, null, null, f, f, null).","type":"IntegrityError"}]}`
	for i, a := range answers[:4] {
		if a != "200 200 OK" {
			t.Fatalf("flag %d: %s", i+1, a)
		}
	}
	if answers[4] != want422 {
		t.Fatalf("5th flag:\n got %s\nwant %s", answers[4], want422)
	}
	v, _ = s.Tracker.Job(1)
	if v.Stage != "b" || v.State != trackertest.JobHeld || v.Flags["b"] != 5 || str(v.Data["a"]) != `"out-a"` {
		t.Fatalf("after the failed 5th flag: %+v, want held at b, nothing saved", v)
	}
	// Every later flag of the job at stage b fails the same way; stage b is still served null.
	if st, b := c.post("/api/bye", map[string]string{"token": holder}); st != 200 {
		t.Fatalf("bye of the stuck holder: %d %s", st, b)
	}
	tok, _ := c.register("late", "b")
	j, st := c.newJob(tok)
	if st != 200 || j.Data != nil {
		t.Fatalf("stage b claim: %d data %s, want null", st, str(j.Data))
	}
	st, b := c.post("/api/flagInvalidData", map[string]string{"token": tok})
	if fmt.Sprintf("%d %s", st, b) != want422 {
		t.Fatalf("6th flag: %d %s", st, b)
	}
}

func TestQuirksConcurrentCompletions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		quirks bool
		prior  bool // the nickname already has a leaderboard row
		want   map[string]int
	}{
		{"quirks-new-user", true, false, map[string]int{"200 200 OK": 1, "500 Internal Server Error": 3}},
		{"quirks-known-user", true, true, map[string]int{"200 200 OK": 4}},
		{"contract", false, false, map[string]int{"200 200 OK": 1, "403 You do not have an open job.": 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := trackertest.Start(t, trackertest.Options{Jobs: []any{"j1", "j2"}, Quirks: tc.quirks, RaceWindow: 200 * time.Millisecond})
			c := newAPI(t, s)
			tok, _ := c.register("swarm", "a")
			if tc.prior {
				c.newJob(tok)
				c.post("/api/completeJob", map[string]string{"token": tok, "data": "first"})
			}
			j, _ := c.newJob(tok)
			got := map[string]int{}
			var mu sync.Mutex
			var wg sync.WaitGroup
			for i := 0; i < 4; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					st, b := c.post("/api/completeJob", map[string]string{"token": tok, "data": fmt.Sprint("c", i)})
					mu.Lock()
					got[fmt.Sprintf("%d %s", st, b)]++
					mu.Unlock()
				}()
			}
			wg.Wait()
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("answers %v, want %v", got, tc.want)
			}
			v, _ := s.Tracker.Job(j.Number)
			if v.State != trackertest.JobClosed || v.Completions["a"] != 1 || !strings.HasPrefix(*v.Outputs["a"], "c") {
				t.Fatalf("job after the burst: %+v, want closed once with one of the outputs", v)
			}
		})
	}
}

func TestIdleTimeout(t *testing.T) {
	clock := trackertest.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := trackertest.Start(t, trackertest.Options{
		Stages: map[string]string{"a": "CPU", "b": "GPU"}, Jobs: []any{"j1"},
		Clock: clock, IdleTimeout: 10 * time.Minute, CheckInterval: time.Minute,
	})
	c := newAPI(t, s)
	holder, _ := c.register("holder", "a")
	beat, _ := c.register("beat", "a")
	validator, _ := c.register("validator", "a")
	poller, _ := c.register("poller", "b")
	if _, st := c.newJob(holder); st != 200 {
		t.Fatal("holder got no job")
	}
	for i := 0; i < 10; i++ {
		clock.Advance(time.Minute)
		c.post("/api/updateProgress", map[string]string{"token": beat, "progress": "tick"})
		c.post("/api/validateWorker", map[string]string{"token": validator})
		if _, st := c.newJob(poller); st != 403 {
			t.Fatalf("poller: %d, want 403", st)
		}
	}
	// 10 minutes idle exactly: not yet "longer than" the timeout.
	if len(s.Tracker.Workers()) != 4 {
		t.Fatalf("workers after 10 min: %d, want 4", len(s.Tracker.Workers()))
	}
	clock.Advance(time.Minute) // the sweep runs from Advance
	ws := s.Tracker.Workers()
	if len(ws) != 1 || ws[0].Token != beat {
		t.Fatalf("workers after 11 min: %+v, want only the one sending progress", ws)
	}
	if v, _ := s.Tracker.Job(1); v.State != trackertest.JobOpen || v.Stage != "a" || str(v.Data["a"]) != `"j1"` {
		t.Fatalf("timed-out holder's job: %+v, want re-opened with its input", v)
	}
	for _, tc := range []struct{ path, want string }{
		{"/api/validateWorker", "200 False"},
		{"/api/updateProgress", "200 200 OK"},
		{"/api/newJob", "404 The server could not find this worker. Did the worker time out?"},
		{"/api/flagInvalidData", "404 The server could not find this worker. Did the worker time out?"},
		{"/api/bye", "404 The server could not find this worker. Did the worker time out?"},
	} {
		st, b := c.post(tc.path, map[string]string{"token": holder, "progress": "x"})
		if got := fmt.Sprintf("%d %s", st, b); got != tc.want {
			t.Errorf("%s after timeout: %s, want %s", tc.path, got, tc.want)
		}
	}
	// CheckIdle can be called directly too.
	clock.Advance(30 * time.Second)
	s.Tracker.CheckIdle()
	if len(s.Tracker.Workers()) != 1 {
		t.Fatal("a fresh worker was swept")
	}
}

func TestNewJobReleasesAndByeReopens(t *testing.T) {
	s := trackertest.Start(t, trackertest.Options{Jobs: []any{"only"}})
	c := newAPI(t, s)
	tok, _ := c.register("x", "a")
	for i := 0; i < 3; i++ { // the held job is released, then picked again: it is the only one
		if j, st := c.newJob(tok); st != 200 || j.Number != 1 {
			t.Fatalf("claim %d: %d %+v", i, st, j)
		}
	}
	if c.jobCount("a") != "0" {
		t.Fatal("job not held")
	}
	st, b := c.post("/api/bye", map[string]string{"token": tok})
	wantAnswer(t, "bye", st, b, 200, "200 OK")
	if c.jobCount("a") != "1" || len(s.Tracker.Workers()) != 0 {
		t.Fatal("bye did not re-open the job and delete the worker")
	}
	st, b = c.post("/api/bye", map[string]string{"token": tok})
	wantAnswer(t, "second bye", st, b, 404, "The server could not find this worker. Did the worker time out?")
}

// TestClaimsExclusive: 64 workers claim 20 jobs at once; no job may be handed out twice.
func TestClaimsExclusive(t *testing.T) {
	jobs := make([]any, 20)
	for i := range jobs {
		jobs[i] = fmt.Sprint("job-", i+1)
	}
	s := trackertest.Start(t, trackertest.Options{Jobs: jobs})
	c := newAPI(t, s)
	tokens := make([]string, 64)
	for i := range tokens {
		tokens[i], _ = c.register("w", "a")
	}
	var mu sync.Mutex
	got := map[int]string{}
	noJobs := 0
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, tok := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			j, st := c.newJob(tok)
			mu.Lock()
			defer mu.Unlock()
			switch st {
			case 200:
				if prev, dup := got[j.Number]; dup {
					t.Errorf("job %d handed to %s and %s", j.Number, prev[:8], tok[:8])
				}
				got[j.Number] = tok
				if want := fmt.Sprint("job-", j.Number); str(j.Data) != str(&want) {
					t.Errorf("job %d served %s", j.Number, str(j.Data))
				}
			case 403:
				noJobs++
			default:
				t.Errorf("status %d", st)
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(got) != 20 || noJobs != 44 {
		t.Fatalf("%d jobs handed out, %d x 403; want 20 and 44", len(got), noJobs)
	}
	for _, v := range s.Tracker.Jobs() {
		if v.State != trackertest.JobHeld {
			t.Errorf("job %d is %s", v.Number, v.State)
		}
	}
	if c := s.Tracker.JobCounts(); c[trackertest.JobHeld] != 20 || c[trackertest.JobOpen] != 0 || c[trackertest.JobClosed] != 0 {
		t.Errorf("JobCounts %v, want 20 held", c)
	}
}

func TestFaults(t *testing.T) {
	s := trackertest.Start(t, trackertest.Options{Jobs: []any{"j1", "j2"}})
	c := newAPI(t, s)
	tok, _ := c.register("x", "a")
	c.newJob(tok)

	set := func(endpoint string, f trackertest.Fault, d time.Duration) {
		s.Tracker.SetFault(func(_ *http.Request, ep string) (trackertest.Fault, time.Duration) {
			if ep == endpoint {
				return f, d
			}
			return trackertest.FaultNone, 0
		})
	}

	// Dropped request: the connection is cut and nothing is applied.
	set("completeJob", trackertest.FaultDropRequest, 0)
	if _, _, err := c.do("POST", "/api/completeJob", map[string]string{"token": tok, "data": "o"}); err == nil {
		t.Fatal("dropped request: got an answer")
	}
	if c.jobCount("a") != "1" || s.Tracker.Workers()[0].Job == 0 {
		t.Fatal("dropped request was applied")
	}

	// Error statuses: answered, not applied.
	for _, tc := range []struct {
		f    trackertest.Fault
		want string
	}{
		{trackertest.Fault500, "500 Internal Server Error"},
		{trackertest.Fault502, "502 Bad Gateway"},
		{trackertest.Fault503, "503 Service Unavailable"},
	} {
		set("completeJob", tc.f, 0)
		st, b := c.post("/api/completeJob", map[string]string{"token": tok, "data": "o"})
		if got := fmt.Sprintf("%d %s", st, b); got != tc.want {
			t.Errorf("fault %v: %s, want %s", tc.f, got, tc.want)
		}
	}
	if s.Tracker.Workers()[0].Job == 0 {
		t.Fatal("a 5xx fault applied the completion")
	}

	// Dropped answer: applied, then the connection is cut.
	set("completeJob", trackertest.FaultDropAnswer, 0)
	if _, _, err := c.do("POST", "/api/completeJob", map[string]string{"token": tok, "data": "o"}); err == nil {
		t.Fatal("dropped answer: got an answer")
	}
	s.Tracker.SetFault(nil)
	if w := s.Tracker.Workers()[0]; w.Job != 0 || w.Completed != 1 {
		t.Fatalf("dropped answer was not applied: %+v", w)
	}
	st, b := c.post("/api/completeJob", map[string]string{"token": tok, "data": "o"})
	wantAnswer(t, "retry after a dropped answer", st, b, 403, "You do not have an open job.")

	// Delay: waited before handling.
	set("jobCount", trackertest.FaultNone, 150*time.Millisecond)
	start := time.Now()
	if c.jobCount("a") != "1" || time.Since(start) < 150*time.Millisecond {
		t.Fatalf("delayed jobCount answered after %v", time.Since(start))
	}
	s.Tracker.SetFault(nil)

	st2 := s.Tracker.Stats()["completeJob"]
	if st2.Requests != 6 || st2.Faults[trackertest.FaultDropRequest] != 1 || st2.Faults[trackertest.FaultDropAnswer] != 1 ||
		st2.Status[500] != 1 || st2.Status[502] != 1 || st2.Status[503] != 1 || st2.Status[403] != 1 {
		t.Errorf("completeJob stats: %+v", st2)
	}
}

func TestServeStopsOnCancel(t *testing.T) {
	// Covered through cmd/dctracker as well; here: Serve returns nil once its ctx is done.
	s := trackertest.Start(t, trackertest.Options{})
	s.Close()
	s.Close() // idempotent
	if _, _, err := newAPI(t, s).do("GET", "/api/jobCount?stage=a", nil); err == nil {
		t.Fatal("closed server still answers")
	}
}

func TestEncodeJob(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{
		{"plain", "plain"},
		{"<!json!>kept as is", "<!json!>kept as is"},
		{[]any{4, "shard-00004.tar", true, nil, 1.5}, `<!json!>[4, "shard-00004.tar", true, null, 1.5]`},
		{map[string]any{"url": "u", "shard": 2}, `<!json!>{"shard": 2, "url": "u"}`},
		{json.RawMessage(`{"z":1,"a":[1e16, 0.00001, 2.0],"é":"ü<&>"}`), `<!json!>{"z": 1, "a": [1e+16, 1e-05, 2.0], "\u00e9": "\u00fc<&>"}`},
		{[]string{"a", "b"}, `<!json!>["a", "b"]`},
		{struct {
			B int `json:"b"`
			A int `json:"a"`
		}{1, 2}, `<!json!>{"b": 1, "a": 2}`},
	} {
		got, err := trackertest.EncodeJob(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("EncodeJob(%v) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []any{nil, 3, 1.5, true, json.RawMessage(`"s"`), json.RawMessage(`{bad`)} {
		if got, err := trackertest.EncodeJob(bad); err == nil {
			t.Errorf("EncodeJob(%v) = %q, want an error", bad, got)
		}
	}
}

func TestValidation(t *testing.T) {
	s := trackertest.Start(t, trackertest.Options{Jobs: []any{"j"}})
	c := newAPI(t, s)
	tok, _ := c.register("x", "a")
	raw := func(body, ctype string) string {
		req, _ := http.NewRequest("POST", s.URL+"/api/validateWorker", strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
	notDict := `422 {"detail":[{"loc":["body"],"msg":"value is not a valid dict","type":"type_error.dict"}]}`
	for _, tc := range []struct{ name, body, ctype, want string }{
		{"token", `{"token":"` + tok + `"}`, "application/json", "200 True"},
		{"vendor json", `{"token":"` + tok + `"}`, "application/vnd.x+json; charset=utf-8", "200 True"},
		{"pairs", `[["token","` + tok + `"]]`, "application/json", "200 True"},
		{"bool coerced", `{"token":true}`, "application/json", "200 False"},
		{"float coerced", `{"token":1.5}`, "", "200 False"},
		{"string body", `"abc"`, "application/json", notDict},
		{"number body", `5`, "application/json", notDict},
		{"form", `token=x`, "application/x-www-form-urlencoded", notDict},
		{"null body", `null`, "application/json", `422 {"detail":[{"loc":["body"],"msg":"field required","type":"value_error.missing"}]}`},
		{"list token", `{"token":["a"]}`, "application/json", `422 {"detail":[{"loc":["body","token"],"msg":"str type expected","type":"type_error.str"}]}`},
		{"bad escape", "{\"token\": \"\\q\"}", "application/json", `422 {"detail":[{"loc":["body",11],"msg":"Invalid \\escape: line 1 column 12 (char 11)","type":"value_error.jsondecode","ctx":{"msg":"Invalid \\escape","doc":"{\"token\": \"\\q\"}","pos":11,"lineno":1,"colno":12}}]}`},
		{"multiline", "{\n\"token\": é}", "application/json", `422 {"detail":[{"loc":["body",11],"msg":"Expecting value: line 2 column 10 (char 11)","type":"value_error.jsondecode","ctx":{"msg":"Expecting value","doc":"{\n\"token\": é}","pos":11,"lineno":2,"colno":10}}]}`},
	} {
		if got := raw(tc.body, tc.ctype); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

func TestRedirectAndPages(t *testing.T) {
	s := trackertest.Start(t, trackertest.Options{Project: "P", Stages: map[string]string{"a": "CPU", "b": "GPU"}})
	c := newAPI(t, s)
	_, name := c.register("nick<>", "b")
	req, _ := http.NewRequest("GET", s.URL+"/api/jobCount//?stage=a", nil)
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 307 || resp.Header.Get("Location") != s.URL+"/api/jobCount?stage=a" {
		t.Errorf("trailing slashes: %d location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, tc := range []struct{ path, want string }{
		{"/worker/gpu/" + name, "200"},
		{"/worker/cpu/" + name, "404 Worker not found."},
		{"/worker/GPU/" + name, "400 Invalid worker stage."},
		{"/", "200"},
		{"/leaderboard", "200"},
		{"/leaderboard/", "307 "},
		{"/api", "404 Not Found"},
	} {
		st, b := c.must("GET", tc.path, nil)
		got := fmt.Sprint(st)
		if st != 200 {
			got += " " + b
		} else if !strings.Contains(b, "</html>") {
			t.Errorf("%s: not a page: %q", tc.path, b)
		}
		if got != tc.want {
			t.Errorf("GET %s: %s, want %s", tc.path, got, tc.want)
		}
	}
	_, page := c.must("GET", "/", nil)
	if !strings.Contains(page, name) || !strings.Contains(page, "GPU") {
		t.Errorf("dashboard does not list the worker: %s", page)
	}
}

func TestFakeClockAfterFunc(t *testing.T) {
	c := trackertest.NewFakeClock(time.Unix(0, 0))
	var got []int
	c.AfterFunc(2*time.Second, func() { got = append(got, 2) })
	c.AfterFunc(time.Second, func() { got = append(got, 1) })
	stop := c.AfterFunc(time.Second, func() { got = append(got, 99) })
	stop()
	c.Advance(time.Second)
	c.Advance(5 * time.Second)
	if fmt.Sprint(got) != "[1 2]" || !c.Now().Equal(time.Unix(6, 0)) {
		t.Fatalf("fired %v at %v", got, c.Now())
	}
}
