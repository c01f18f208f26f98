package trackertest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/trackertest"
)

// The conformance test replays the recording of the upstream tracker
// (testdata/upstream-transcript.json, a copy of shared/conformance/upstream-transcript.json:
// 245 requests, in order) against a Quirks-mode tracker and compares every answer: status
// code, content type (absent when the recording has none) and body, byte for byte.
//
// It allows only for what is random upstream too:
//   - tokens and display names: the recording's are mapped to ours, by the step's "worker"
//     label, or by order of registration for unlabelled registrations; our tokens must be
//     UUID4s and our display names word-word-number;
//   - which job a random pick returned: a newJob answer must name a job that exists, is now
//     held by that worker, and carry that job's data at that stage (recomputed from the job
//     set, not read back from the tracker); the test then follows the job the tracker gave;
//   - the 307 location's host (the recording's server ran on another port);
//   - in the concurrency phase, which workers won the race for jobs (the recording's winners
//     are mapped to ours for the later steps) and the order of concurrent answers (compared
//     as a multiset). The 4 concurrent completions by one worker answered 200 + 3 x 500 in
//     one burst (the worker's nickname had no leaderboard row yet) and 4 x 200 in the next;
//     the tracker reproduces that exactly when the 4 requests race (RaceWindow); the test
//     accepts that multiset, or any mix of those two answers with at least one 200, which
//     docs/PROTOCOL.md, "Upstream bugs", allows. The job counts asked right after each burst must still match.
//
// Where a step recorded the database afterwards (db_after), the test also compares the
// multiset of job (stage, pending, closed), the number of workers, the leaderboard and the
// flag counters (ignoring job numbers, which follow the random picks).
//
// Phases start from a fresh tracker, as the recording's database was reset: main (3 jobs),
// timeout (2 jobs, a FakeClock moved 1 s per heartbeat round, idle timeout 3.5 s: the
// workers that only validate, only poll newJob, or idle are kicked at round 4, the one that
// sends progress survives), concurrency (10 jobs).

type transcriptStep struct {
	Seq          int               `json:"seq"`
	Phase        string            `json:"phase"`
	Step         string            `json:"step"`
	Worker       *string           `json:"worker"`
	Method       string            `json:"method"`
	Path         string            `json:"path"`
	Query        map[string]string `json:"query"`
	BodyRaw      *string           `json:"body_raw"`
	ReqType      *string           `json:"request_content_type"`
	Status       int               `json:"status"`
	ContentType  *string           `json:"content_type"`
	Response     *string           `json:"response"`
	ResponseJSON json.RawMessage   `json:"response_json"`
	Location     *string           `json:"location"`
	Note         *string           `json:"note"`
	DBAfter      *dbState          `json:"db_after"`
}

type dbState struct {
	Jobs []struct {
		Number  int     `json:"number"`
		Stage   string  `json:"stage"`
		DataA   *string `json:"data_a"`
		DataB   *string `json:"data_b"`
		Pending bool    `json:"pending"`
		Closed  bool    `json:"closed"`
	} `json:"jobs"`
	Workers []struct {
		DisplayName string `json:"display_name"`
	} `json:"workers"`
	Users []struct {
		Nickname      string `json:"nickname"`
		JobsCompleted int    `json:"jobs_completed"`
	} `json:"users"`
	RedisInvalid map[string]int `json:"redis_invalid"`
}

const recordedBase = "http://127.0.0.1:18080"

// conformanceJob is job n of the recording's job set (reconstructed from its answers):
// odd numbers are URL strings, 2 mod 4 objects, 0 mod 4 lists.
func conformanceJob(n int) any {
	switch {
	case n%2 == 1:
		return fmt.Sprintf("https://example.invalid/shards/shard-%05d.tar", n)
	case n%4 == 2:
		return map[string]any{"shard": n, "url": fmt.Sprintf("s3://bucket/shard-%05d.tar", n)}
	default:
		return []any{n, fmt.Sprintf("shard-%05d.tar", n), true}
	}
}

func conformanceJobs(n int) []any {
	jobs := make([]any, n)
	for i := range jobs {
		jobs[i] = conformanceJob(i + 1)
	}
	return jobs
}

var (
	uuid4Re       = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	displayNameRe = regexp.MustCompile(`^[a-z]+-[a-z]+-[0-9]{1,3}$`)
)

func loadTranscript(tb testing.TB) []transcriptStep {
	tb.Helper()
	b, err := os.ReadFile("testdata/upstream-transcript.json")
	if err != nil {
		tb.Fatal(err)
	}
	var steps []transcriptStep
	if err := json.Unmarshal(b, &steps); err != nil {
		tb.Fatal(err)
	}
	return steps
}

// replay holds the state of one run through the transcript.
type replay struct {
	t      *testing.T
	srv    *trackertest.Server
	clock  *trackertest.FakeClock
	stages map[string]string // our worker token -> stage letter
	tokens map[string]string // recorded token -> ours
	names  map[string]string // recorded display name -> ours
	labels map[string]string // worker label -> our token
	jobMap map[int]int       // recorded job number -> ours, as last handed out
	jobSet []any
	client *http.Client
}

func TestConformance(t *testing.T) {
	steps := loadTranscript(t)
	if len(steps) != 245 {
		t.Fatalf("transcript has %d steps, want 245", len(steps))
	}
	compared := 0
	var r *replay
	phase := ""
	for i := 0; i < len(steps); {
		s := steps[i]
		if s.Phase != phase {
			phase = s.Phase
			r = newReplay(t, phase)
		}
		if s.Phase == "timeout" && s.Worker != nil && *s.Worker == "t3" && s.Path == "/api/updateProgress" {
			r.clock.Advance(time.Second) // one heartbeat round per second, as recorded
		}
		if key := concurrentGroup(s); key != "" {
			j := i
			for j < len(steps) && concurrentGroup(steps[j]) == key {
				j++
			}
			r.burst(steps[i:j])
			compared += j - i
			i = j
			continue
		}
		r.step(s)
		compared++
		i++
	}
	if compared != 245 {
		t.Errorf("compared %d steps, want 245", compared)
	}
}

func newReplay(t *testing.T, phase string) *replay {
	opts := trackertest.Options{
		Project:    "Conformance",
		Stages:     map[string]string{"a": "CPU", "b": "GPU"},
		Quirks:     true,
		RaceWindow: 300 * time.Millisecond, // wide: the completion bursts must race for real
	}
	r := &replay{t: t, stages: map[string]string{}, tokens: map[string]string{}, names: map[string]string{}, labels: map[string]string{}, jobMap: map[int]int{}}
	switch phase {
	case "main":
		r.jobSet = conformanceJobs(3)
	case "timeout":
		r.jobSet = conformanceJobs(2)
		r.clock = trackertest.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		opts.Clock = r.clock
		opts.IdleTimeout = 3500 * time.Millisecond
		opts.CheckInterval = time.Second
	case "concurrency":
		r.jobSet = conformanceJobs(10)
	default:
		t.Fatalf("unknown phase %q", phase)
	}
	opts.Jobs = r.jobSet
	r.srv = trackertest.Start(t, opts)
	r.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return r
}

// concurrentGroup names the group of requests a step was fired with, "" for a lone step.
func concurrentGroup(s transcriptStep) string {
	switch {
	case strings.Contains(s.Step, "concurrently (16 workers"):
		return "newJob-burst"
	case s.Worker != nil && strings.Contains(s.Step, "of 4 concurrent completions"):
		return "complete-burst-" + *s.Worker
	}
	return ""
}

type result struct {
	status   int
	ctype    string
	hasCtype bool
	body     string
	location string
}

// send makes the request of step s, with our tokens.
func (r *replay) send(s transcriptStep) result {
	r.t.Helper()
	u := r.srv.URL + r.subst(s.Path)
	if s.Query != nil {
		q := url.Values{}
		for k, v := range s.Query {
			q.Set(k, v)
		}
		u += "?" + q.Encode()
	}
	var body io.Reader
	if s.BodyRaw != nil {
		body = strings.NewReader(r.subst(*s.BodyRaw))
	}
	req, err := http.NewRequest(s.Method, u, body)
	if err != nil {
		r.t.Fatalf("step %d: %v", s.Seq, err)
	}
	if s.ReqType != nil {
		req.Header.Set("Content-Type", *s.ReqType)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		r.t.Fatalf("step %d (%s): %v", s.Seq, s.Step, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatalf("step %d: reading answer: %v", s.Seq, err)
	}
	_, has := resp.Header["Content-Type"]
	return result{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), hasCtype: has, body: string(b), location: resp.Header.Get("Location")}
}

// subst replaces the recording's tokens and display names with ours.
func (r *replay) subst(s string) string {
	for rec, ours := range r.tokens {
		s = strings.ReplaceAll(s, rec, ours)
	}
	for rec, ours := range r.names {
		s = strings.ReplaceAll(s, rec, ours)
	}
	return s
}

func (r *replay) step(s transcriptStep) {
	r.t.Helper()
	got := r.send(s)
	if msg := r.check(s, got); msg != "" {
		r.t.Errorf("step %d (%s %s: %s): %s", s.Seq, s.Method, s.Path, s.Step, msg)
	}
	r.checkDB(s)
}

// check compares one answer with the recorded one and learns identities from it.
func (r *replay) check(s transcriptStep, got result) string {
	if got.status != s.Status {
		return fmt.Sprintf("status %d, want %d (body %q)", got.status, s.Status, got.body)
	}
	if s.ContentType == nil {
		if got.hasCtype {
			return fmt.Sprintf("content type %q, want none", got.ctype)
		}
	} else if got.ctype != *s.ContentType {
		return fmt.Sprintf("content type %q, want %q", got.ctype, *s.ContentType)
	}
	if s.Location != nil {
		want := strings.Replace(*s.Location, recordedBase, r.srv.URL, 1)
		if got.location != want {
			return fmt.Sprintf("location %q, want %q", got.location, want)
		}
	}
	switch {
	case s.Response == nil: // HTML page or redirect: body not recorded
		if s.ContentType != nil && strings.HasPrefix(*s.ContentType, "text/html") && got.body == "" {
			return "empty HTML page"
		}
		if s.Status == http.StatusTemporaryRedirect && got.body != "" {
			return fmt.Sprintf("307 with body %q, want empty", got.body)
		}
		return ""
	case s.Path == "/api/new" && s.Status == http.StatusOK:
		return r.learnRegistration(s, got.body)
	case s.Path == "/api/newJob" && s.Status == http.StatusOK:
		return r.checkJob(s, got.body)
	}
	want := r.subst(*s.Response)
	if m := failingRowRe.FindStringSubmatch(want); m != nil {
		// The 5th-flag error quotes the job's row: its number follows the random picks.
		rec, _ := strconv.Atoi(m[1])
		want = strings.Replace(want, m[0], fmt.Sprintf("Failing row contains (%d,", r.jobMap[rec]), 1)
	}
	if got.body != want {
		return fmt.Sprintf("body\n  %q\nwant\n  %q", got.body, want)
	}
	return ""
}

var failingRowRe = regexp.MustCompile(`Failing row contains \((\d+),`)

func (r *replay) learnRegistration(s transcriptStep, body string) string {
	var rec, ours struct {
		Token       string `json:"token"`
		DisplayName string `json:"display_name"`
		Stage       string
	}
	if err := json.Unmarshal([]byte(*s.Response), &rec); err != nil {
		r.t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(body), &ours); err != nil {
		return fmt.Sprintf("answer %q: %v", body, err)
	}
	if !uuid4Re.MatchString(ours.Token) {
		return fmt.Sprintf("token %q is not a UUID4", ours.Token)
	}
	if !displayNameRe.MatchString(ours.DisplayName) {
		return fmt.Sprintf("display name %q is not word-word-number", ours.DisplayName)
	}
	r.tokens[rec.Token] = ours.Token
	r.names[rec.DisplayName] = ours.DisplayName
	r.stages[ours.Token] = s.Query["stage"]
	if s.Worker != nil {
		r.labels[*s.Worker] = ours.Token
	}
	if want := r.subst(*s.Response); body != want {
		return fmt.Sprintf("body\n  %q\nwant\n  %q", body, want)
	}
	return ""
}

// expectedData is the data a worker at stage should be served for job n: the job as loaded
// at stage a, null later (upstream serves a column nothing sets).
func (r *replay) expectedData(n int, stage string) string {
	if stage != "a" {
		return "null"
	}
	wire, err := trackertest.EncodeJob(r.jobSet[n-1])
	if err != nil {
		r.t.Fatal(err)
	}
	b, _ := json.Marshal(wire)
	// Starlette does not escape <, > and &.
	return strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(string(b))
}

// checkJob checks a 200 newJob answer against the job the tracker says it gave.
func (r *replay) checkJob(s transcriptStep, body string) string {
	var ours struct {
		Number int `json:"number"`
	}
	if err := json.Unmarshal([]byte(body), &ours); err != nil {
		return fmt.Sprintf("answer %q: %v", body, err)
	}
	if ours.Number < 1 || ours.Number > len(r.jobSet) {
		return fmt.Sprintf("job number %d does not exist (answer %q)", ours.Number, body)
	}
	token := r.tokenOf(s)
	stage := r.stages[token]
	want := fmt.Sprintf(`{"data":%s,"number":%d}`, r.expectedData(ours.Number, stage), ours.Number)
	if body != want {
		return fmt.Sprintf("body\n  %q\nwant\n  %q (recorded %q)", body, want, *s.Response)
	}
	var rec struct{ Number int }
	_ = json.Unmarshal([]byte(*s.Response), &rec)
	r.jobMap[rec.Number] = ours.Number
	j, _ := r.srv.Tracker.Job(ours.Number)
	w, _ := r.srv.Tracker.Worker(token)
	if j.State != trackertest.JobHeld || j.Holder != w.DisplayName || j.Stage != stage {
		return fmt.Sprintf("job %d is %s at stage %s held by %q, want held at %s by %q", j.Number, j.State, j.Stage, j.Holder, stage, w.DisplayName)
	}
	return ""
}

func (r *replay) tokenOf(s transcriptStep) string {
	if s.Worker != nil {
		if tok, ok := r.labels[*s.Worker]; ok {
			return tok
		}
	}
	var body struct {
		Token string `json:"token"`
	}
	if s.BodyRaw != nil {
		_ = json.Unmarshal([]byte(r.subst(*s.BodyRaw)), &body)
	}
	return body.Token
}

// checkDB compares what does not depend on random picks with the recorded database.
func (r *replay) checkDB(s transcriptStep) {
	if s.DBAfter == nil {
		return
	}
	type jobKey struct {
		stage           string
		pending, closed bool
	}
	var want, got []jobKey
	for _, j := range s.DBAfter.Jobs {
		want = append(want, jobKey{j.Stage, j.Pending, j.Closed})
	}
	for _, j := range r.srv.Tracker.Jobs() {
		got = append(got, jobKey{j.Stage, j.State == trackertest.JobHeld, j.State == trackertest.JobClosed})
	}
	less := func(a, b jobKey) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) }
	slices.SortFunc(want, less)
	slices.SortFunc(got, less)
	if !slices.Equal(want, got) {
		r.t.Errorf("step %d: jobs (stage, held, closed) %v, want %v", s.Seq, got, want)
	}
	if n := len(r.srv.Tracker.Workers()); n != len(s.DBAfter.Workers) {
		r.t.Errorf("step %d: %d workers, want %d", s.Seq, n, len(s.DBAfter.Workers))
	}
	users := map[string]int{}
	for _, u := range s.DBAfter.Users {
		users[u.Nickname] = u.JobsCompleted
	}
	if lb := r.srv.Tracker.Leaderboard(); fmt.Sprint(lb) != fmt.Sprint(users) {
		r.t.Errorf("step %d: leaderboard %v, want %v", s.Seq, lb, users)
	}
	// Flag counters: the multiset of (stage, count), job numbers aside.
	var wantFlags, gotFlags []string
	for k, n := range s.DBAfter.RedisInvalid {
		wantFlags = append(wantFlags, fmt.Sprintf("%s:%d", k[len(k)-1:], n))
	}
	for _, j := range r.srv.Tracker.Jobs() {
		for st, n := range j.Flags {
			gotFlags = append(gotFlags, fmt.Sprintf("%s:%d", st, n))
		}
	}
	sort.Strings(wantFlags)
	sort.Strings(gotFlags)
	if !slices.Equal(wantFlags, gotFlags) {
		r.t.Errorf("step %d: flag counters %v, want %v", s.Seq, gotFlags, wantFlags)
	}
}

// burst fires the steps of one concurrent group at once (held at a barrier until all have
// reached the tracker) and compares the answers as a multiset.
func (r *replay) burst(steps []transcriptStep) {
	r.t.Helper()
	n := len(steps)
	var mu sync.Mutex
	arrived := 0
	all := make(chan struct{})
	r.srv.Tracker.SetFault(func(*http.Request, string) (trackertest.Fault, time.Duration) {
		mu.Lock()
		arrived++
		if arrived == n {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-time.After(10 * time.Second):
		}
		return trackertest.FaultNone, 0
	})
	defer r.srv.Tracker.SetFault(nil)

	results := make([]result, n)
	var wg sync.WaitGroup
	for i, s := range steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = r.send(s)
		}()
	}
	wg.Wait()

	if steps[0].Path == "/api/newJob" {
		r.checkClaimBurst(steps, results)
	} else {
		r.checkCompletionBurst(steps, results)
	}
	for _, s := range steps {
		r.checkDB(s)
	}
}

func (r *replay) checkClaimBurst(steps []transcriptStep, results []result) {
	var recWinners, recLosers, ourWinners, ourLosers []string
	seen := map[int]bool{}
	for i, s := range steps {
		label := *s.Worker
		if s.Status == http.StatusOK {
			recWinners = append(recWinners, label)
		} else {
			recLosers = append(recLosers, label)
		}
		got := results[i]
		switch got.status {
		case http.StatusOK:
			if msg := r.checkJob(s, got.body); msg != "" {
				r.t.Errorf("step %d (%s): %s", s.Seq, s.Step, msg)
			}
			var ans struct{ Number int }
			_ = json.Unmarshal([]byte(got.body), &ans)
			if seen[ans.Number] {
				r.t.Errorf("step %d: job %d handed out twice", s.Seq, ans.Number)
			}
			seen[ans.Number] = true
			ourWinners = append(ourWinners, label)
		case http.StatusForbidden:
			want := steps[slices.IndexFunc(steps, func(s transcriptStep) bool { return s.Status == http.StatusForbidden })]
			if msg := r.check(want, got); msg != "" {
				r.t.Errorf("step %d (%s): %s", s.Seq, s.Step, msg)
			}
			ourLosers = append(ourLosers, label)
		default:
			r.t.Errorf("step %d (%s): status %d %q, want 200 or 403", s.Seq, s.Step, got.status, got.body)
		}
	}
	if len(ourWinners) != len(recWinners) || len(ourLosers) != len(recLosers) {
		r.t.Fatalf("claim burst: %d x 200 and %d x 403, want %d and %d", len(ourWinners), len(ourLosers), len(recWinners), len(recLosers))
	}
	// Which workers won is random: map the recording's winners to ours, losers to losers.
	sort.Strings(recWinners)
	sort.Strings(ourWinners)
	sort.Strings(recLosers)
	sort.Strings(ourLosers)
	old := make(map[string]string, len(r.labels))
	for k, v := range r.labels {
		old[k] = v
	}
	for i := range recWinners {
		r.labels[recWinners[i]] = old[ourWinners[i]]
	}
	for i := range recLosers {
		r.labels[recLosers[i]] = old[ourLosers[i]]
	}
	// Bodies carry tokens: point each recorded token at the worker now under its label.
	for i := 0; i < len(steps); i++ {
		var body struct {
			Token string `json:"token"`
		}
		_ = json.Unmarshal([]byte(*steps[i].BodyRaw), &body)
		r.tokens[body.Token] = r.labels[*steps[i].Worker]
	}
}

func (r *replay) checkCompletionBurst(steps []transcriptStep, results []result) {
	count := func(get func(i int) (int, string)) string {
		m := map[string]int{}
		for i := range steps {
			st, b := get(i)
			m[strconv.Itoa(st)+" "+b]++
		}
		return fmt.Sprint(m)
	}
	want := count(func(i int) (int, string) { return steps[i].Status, *steps[i].Response })
	got := count(func(i int) (int, string) { return results[i].status, results[i].body })
	if got == want {
		return
	}
	oks := 0
	for i, res := range results {
		switch {
		case res.status == http.StatusOK && res.body == "200 OK":
			oks++
		case res.status == http.StatusInternalServerError && res.body == "Internal Server Error":
		default:
			r.t.Errorf("step %d (%s): %d %q, want 200 or 500", steps[i].Seq, steps[i].Step, res.status, res.body)
		}
		if res.ctype != "text/plain; charset=utf-8" {
			r.t.Errorf("step %d: content type %q", steps[i].Seq, res.ctype)
		}
	}
	if oks == 0 {
		r.t.Errorf("completion burst %s: no 200 at all", got)
	}
	r.t.Logf("completion burst: answers %s, recorded %s (allowed: a 200/500 mix)", got, want)
}
