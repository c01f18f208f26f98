package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/crashtest"
	"github.com/distcompute/distcompute-go/internal/faultnet"
	"github.com/distcompute/distcompute-go/internal/upstreamtest"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/trackertest"
)

// proxyBin is the dcproxy binary TestMain built (without -race: its lives
// are short and many), "" if the build failed (buildErr says why).
var (
	proxyBin string
	buildErr error
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childProxy())
	}
	dir, err := os.MkdirTemp("", "dcproxy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	proxyBin = filepath.Join(dir, "dcproxy")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = "go"
	}
	if out, err := exec.Command(goTool, "build", "-o", proxyBin, "../../cmd/dcproxy").CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("go build ../../cmd/dcproxy: %v\n%s", err, out)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func dcproxyBinary(t testing.TB) string {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return proxyBin
}

// startFaultFront serves the tracker through the project's fault injection
// (crashtest.ChaosTransport: faultnet with 20 % of requests dropped before
// sending, 20 % of answers dropped after the tracker applied them, 5 % 502,
// 0-5 ms latency). A dropped request or answer hangs up the connection, as
// a cut network does; a 502 is answered.
func startFaultFront(t testing.TB, trackerURL string, seed int64) (*httptest.Server, *faultnet.Transport) {
	tr := crashtest.ChaosTransport(seed)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), r.Method, trackerURL+r.URL.RequestURI(), r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := tr.RoundTrip(req)
		if err != nil {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(front.Close)
	return front, tr
}

// supervised runs a program again each time it ends, until stopped.
type supervised struct {
	name string
	mk   func(life int) *exec.Cmd

	mu       sync.Mutex
	cmd      *exec.Cmd
	lives    int
	kills    int
	stopping bool
	done     chan struct{}
}

func supervise(name string, mk func(life int) *exec.Cmd) *supervised {
	s := &supervised{name: name, mk: mk, done: make(chan struct{})}
	go s.loop()
	return s
}

func (s *supervised) loop() {
	defer close(s.done)
	for {
		s.mu.Lock()
		if s.stopping {
			s.mu.Unlock()
			return
		}
		s.lives++
		cmd := s.mk(s.lives)
		dieWithTest(cmd)
		if err := cmd.Start(); err != nil {
			s.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
			continue
		}
		s.cmd = cmd
		s.mu.Unlock()
		_ = cmd.Wait()
		s.mu.Lock()
		s.cmd = nil
		s.mu.Unlock()
	}
}

// kill SIGKILLs the running program (it is restarted); false if none runs.
func (s *supervised) kill() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return false
	}
	if err := s.cmd.Process.Kill(); err != nil {
		return false
	}
	s.kills++
	return true
}

// stop ends the supervision, sending sig to the running program, and waits.
func (s *supervised) stop(sig syscall.Signal) {
	s.mu.Lock()
	s.stopping = true
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(sig)
	}
	s.mu.Unlock()
	<-s.done
}

func (s *supervised) counts() (lives, kills int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lives, s.kills
}

// chaosSize sizes a chaos run: small by default, the size with
// DCPROXY_CHAOS_FULL=1 (then the baseline without the proxy runs too).
type chaosSize struct {
	Jobs, Kills int // Kills: of the programs, and of dcproxy, each
	Timeout     time.Duration
}

func chaosSizeFromEnv() (chaosSize, bool) {
	if os.Getenv("DCPROXY_CHAOS_FULL") != "" {
		return chaosSize{Jobs: 200, Kills: 50, Timeout: 20 * time.Minute}, true
	}
	return chaosSize{Jobs: 12, Kills: 4, Timeout: 5 * time.Minute}, false
}

// chaosResult is what a run measured.
type chaosResult struct {
	Elapsed                 time.Duration
	StageCompletions        int // completions the tracker applied
	Closed, Held, Open      int // jobs at the end
	CompletedTwice          int // (job, stage) completed more than once at the tracker
	Redone                  int // computations beyond the first of a (job, stage): work done twice
	ProgramKills, ProxyKill int
	ProgramLives            int
	Tracebacks              map[string]int // "call: class" -> count
	Faults                  faultnet.Counts
}

func (r chaosResult) perMinute() float64 {
	return float64(r.StageCompletions) / r.Elapsed.Minutes()
}

// TestChaosThroughProxy: the unchanged upstream client, two programs per
// stage (testdata/chaos_worker.py), through dcproxy, through the fault
// injection, against trackertest; the programs and dcproxy are SIGKILLed
// at moments paced by the work done (Kills of each) and restarted. Then:
// every job closed, each stage of each job completed exactly once with the
// output the program computed, no job held, no Python traceback, the
// journal verifies and holds nothing unsettled. With DCPROXY_CHAOS_FULL=1:
// 200 jobs, 50 kills of each, and the same run without the proxy (the
// programs talking to the faults directly, killed on the same schedule, for
// as long as the run through the proxy took) as the baseline, side by side.
// The report's columns: stage completions the tracker applied and their
// rate; jobs closed; jobs held at the end (by killed workers: lost until the
// tracker's 2 h idle timeout); (job, stage) completed twice; computations
// redone (a program computed the same job and stage again); kills of the
// programs and of dcproxy; Python tracebacks, by call and class.
func TestChaosThroughProxy(t *testing.T) {
	python, upstream := upstreamtest.Client(t)
	bin := dcproxyBinary(t)
	size, full := chaosSizeFromEnv()
	seed := time.Now().UnixNano()
	if s, err := strconv.ParseInt(os.Getenv("DCPROXY_CHAOS_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (DCPROXY_CHAOS_SEED to replay the random choices)", seed)

	withProxy := runChaos(t, python, upstream, bin, size, seed, true, 0)
	report := func(name string, r chaosResult) string {
		return fmt.Sprintf("%-9s %7.1f %6d %8.1f %7d %5d %6d %7d %6d %7d %11d  %s",
			name, r.Elapsed.Seconds(), r.StageCompletions, r.perMinute(), r.Closed, r.Held, r.CompletedTwice, r.Redone,
			r.ProgramKills, r.ProxyKill, sumTracebacks(r.Tracebacks), fmtTracebacks(r.Tracebacks))
	}
	lines := []string{
		fmt.Sprintf("dcproxy chaos: %d jobs x 2 stages, 2 upstream-client programs per stage, faults %+v (+0-5 ms latency)", size.Jobs, withProxy.Faults),
		"run       elapsed  done  per-min  closed  held  twice  redone  kills  p-kills  tracebacks",
		report("dcproxy", withProxy),
	}
	if full {
		// The baseline gets as long as the run through the proxy took (at
		// least 2 minutes): without the proxy it does not finish.
		base := runChaos(t, python, upstream, bin, size, seed, false, max(withProxy.Elapsed, 2*time.Minute))
		lines = append(lines, report("no proxy", base))
	}
	fmt.Println(strings.Join(lines, "\n"))
	t.Log("\n" + strings.Join(lines, "\n"))
}

func sumTracebacks(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func fmtTracebacks(m map[string]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// runChaos runs one chaos run, through dcproxy or (baseline) without it,
// and checks the invariants when through it.
func runChaos(t *testing.T, python, upstream, bin string, size chaosSize, seed int64, viaProxy bool, limit time.Duration) chaosResult {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	jobs := make([]any, size.Jobs)
	inputs := map[int]string{}
	for i := range jobs {
		in := fmt.Sprintf("shard-%04d-%d.tar", i+1, rng.Intn(1000))
		jobs[i], inputs[i+1] = in, in
	}
	srv := trackertest.Start(t, trackertest.Options{Stages: map[string]string{"a": "CPU", "b": "GPU"}, Jobs: jobs, Seed: seed})
	front, faults := startFaultFront(t, srv.URL, seed)
	dir := t.TempDir()
	name := "baseline"
	if viaProxy {
		name = "proxy"
	}
	t.Cleanup(func() {
		if t.Failed() {
			keep := filepath.Join(os.TempDir(), fmt.Sprintf("dcproxy-chaos-%s-%d", name, seed))
			_ = os.RemoveAll(keep)
			if err := os.CopyFS(keep, os.DirFS(dir)); err == nil {
				t.Logf("kept the run's files in %s", keep)
			}
		}
	})

	url := front.URL
	var px *supervised
	jpath := filepath.Join(dir, "proxy.db")
	if viaProxy {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		url = "http://" + addr
		px = supervise("dcproxy", func(life int) *exec.Cmd {
			cmd := exec.Command(bin, "--tracker", front.URL, "--listen", addr, "--journal", jpath, "--dead-after", "20s", "--json-log")
			cmd.Stderr = mustCreate(t, filepath.Join(dir, fmt.Sprintf("dcproxy-%03d.log", life)))
			return cmd
		})
	}
	var progs []*supervised
	for i, stage := range []string{"a", "a", "b", "b"} {
		log := filepath.Join(dir, fmt.Sprintf("computed-%d.jsonl", i))
		progs = append(progs, supervise(fmt.Sprintf("program %d", i), func(life int) *exec.Cmd {
			cmd := exec.Command(python, "testdata/chaos_worker.py", upstream, url, stage, log)
			cmd.Stdout = io.Discard
			cmd.Stderr = mustCreate(t, filepath.Join(dir, fmt.Sprintf("program-%d-%03d.err", i, life)))
			return cmd
		}))
	}

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), size.Timeout)
	defer cancel()
	total := 2 * size.Jobs
	step := max(1, total/(2*size.Kills+2))
	next, kills := step, 0
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			t.Errorf("%s run: not done after %v: %v", name, size.Timeout, srv.Tracker.JobCounts())
			done = true
			continue
		case <-poll.C:
		}
		if limit > 0 && time.Since(start) > limit {
			break
		}
		n := completions(srv.Tracker)
		if closed := srv.Tracker.JobCounts()[trackertest.JobClosed]; closed == size.Jobs {
			break
		}
		if n >= next && kills < 2*size.Kills {
			next += step
			if kills%2 == 0 {
				progs[rng.Intn(len(progs))].kill()
			} else if px != nil {
				px.kill()
			}
			kills++
		}
	}
	elapsed := time.Since(start)
	for _, p := range progs {
		p.stop(syscall.SIGKILL)
	}
	if px != nil {
		px.stop(syscall.SIGTERM) // drain: settles what is in flight
	}

	res := chaosResult{Elapsed: elapsed, StageCompletions: completions(srv.Tracker), Tracebacks: map[string]int{}, Faults: faults.Counts()}
	counts := srv.Tracker.JobCounts()
	res.Closed, res.Held, res.Open = counts[trackertest.JobClosed], counts[trackertest.JobHeld], counts[trackertest.JobOpen]
	for _, p := range progs {
		l, k := p.counts()
		res.ProgramLives += l
		res.ProgramKills += k
	}
	if px != nil {
		_, res.ProxyKill = px.counts()
	}
	computed := readComputed(t, dir)
	for k, n := range computed {
		if n > 1 {
			res.Redone += n - 1
		}
		_ = k
	}
	res.Tracebacks = readTracebacks(t, dir)
	for _, j := range srv.Tracker.Jobs() {
		for _, c := range j.Completions {
			if c > 1 {
				res.CompletedTwice++
			}
		}
	}
	if !viaProxy {
		return res
	}

	// The invariants, through the proxy.
	for _, j := range srv.Tracker.Jobs() {
		if j.State != trackertest.JobClosed {
			t.Errorf("job %d is %s at stage %s", j.Number, j.State, j.Stage)
			continue
		}
		in := inputs[j.Number]
		wantA, wantB := "A:"+in, "B:A:"+in
		for stage, want := range map[string]string{"a": wantA, "b": wantB} {
			if c := j.Completions[stage]; c != 1 {
				t.Errorf("job %d completed %d times at stage %s, want exactly once", j.Number, c, stage)
			}
			if got := j.Outputs[stage]; got == nil || *got != want {
				t.Errorf("job %d stage %s output %v, want %q", j.Number, stage, deref(got), want)
			}
			if computed[fmt.Sprintf("%s/%d/%s", stage, j.Number, want)] == 0 {
				t.Errorf("job %d stage %s: output %q was never computed by a program", j.Number, stage, want)
			}
		}
	}
	if len(res.Tracebacks) > 0 {
		t.Errorf("Python tracebacks through the proxy: %s", fmtTracebacks(res.Tracebacks))
	}
	if res.ProgramKills < size.Kills || res.ProxyKill < size.Kills {
		t.Errorf("kills: %d of the programs, %d of dcproxy; want at least %d of each", res.ProgramKills, res.ProxyKill, size.Kills)
	}
	verifyJournal(t, jpath)
	db, err := journal.Open(jpath, &journal.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	states, err := db.States()
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range states {
		if st.Job != nil || st.Completion != nil || st.FlagPending || st.ByePending {
			t.Errorf("journal slot %s holds unsettled work: %+v", st.Slot, st.Redacted())
		}
	}
	return res
}

func completions(tr *trackertest.Tracker) int {
	n := 0
	for _, j := range tr.Jobs() {
		for _, c := range j.Completions {
			n += c
		}
	}
	return n
}

func deref(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func mustCreate(t testing.TB, path string) *os.File {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// readComputed counts the programs' computations: "stage/job/output" -> times.
func readComputed(t testing.TB, dir string) map[string]int {
	out := map[string]int{}
	files, _ := filepath.Glob(filepath.Join(dir, "computed-*.jsonl"))
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var rec []any
			if json.Unmarshal(sc.Bytes(), &rec) != nil || len(rec) != 3 {
				continue // a line cut by a kill
			}
			out[fmt.Sprintf("%v/%v/%v", rec[0], rec[1], rec[2])]++
		}
		fh.Close()
	}
	return out
}

var (
	tracebackCall  = regexp.MustCompile(`in (complete_job|new_job|flag_invalid_data|job_count|is_alive|log|bye|__init__|init|_request)\n`)
	tracebackClass = regexp.MustCompile(`(?m)^([\w.]+(?:Error|Exception)): (.*)$`)
)

// readTracebacks classifies the programs' tracebacks: "call: class (status)".
func readTracebacks(t testing.TB, dir string) map[string]int {
	out := map[string]int{}
	files, _ := filepath.Glob(filepath.Join(dir, "program-*.err"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		i := strings.LastIndex(s, "Traceback (most recent call last):")
		if i < 0 {
			continue
		}
		tb := s[i:]
		call := "?"
		if m := tracebackCall.FindAllStringSubmatch(tb, -1); len(m) > 0 {
			call = m[len(m)-1][1]
		}
		class := "?"
		if m := tracebackClass.FindAllStringSubmatch(tb, -1); len(m) > 0 {
			class = m[len(m)-1][1][strings.LastIndex(m[len(m)-1][1], ".")+1:]
			if st := regexp.MustCompile(`\(status (\d+)\)`).FindStringSubmatch(m[len(m)-1][2]); st != nil {
				class += " " + st[1]
			}
		}
		out[call+": "+class]++
	}
	return out
}
