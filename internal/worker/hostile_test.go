package worker_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/internal/postmortem"
	"github.com/distcompute/distcompute-go/internal/worker"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/session"
)

// The hostile-tracker suite: dcworker (worker.Command, with its console
// logger) against a fake tracker on loopback that misbehaves in one way per
// case. For each case the worker's behaviour is asserted (the job flagged
// or released, and the worker moves on to exit 0 with --exit-when-empty),
// and after each: no escape character or invalid UTF-8 reached stdout or
// stderr, and the token never appears there in full.

const hostileToken = "5e1f0c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6"

// escapes is what a tracker could send to drive an operator's terminal.
const escapes = "\x1b[2J\x1b]0;owned\x07\r\nERROR forged line\u202e\u009b31m"

type hostileTracker struct {
	srv     *httptest.Server
	reg     string                                              // register's answer
	newJob  func(w http.ResponseWriter, r *http.Request, n int) // newJob's n-th answer (from 1); nil: 403
	flag    func(w http.ResponseWriter)                         // nil: 200 OK
	open    string                                              // jobCount's answer; "" means "0"
	mu      sync.Mutex
	calls   map[string]int
	outputs []string
}

func newHostileTracker(t *testing.T) *hostileTracker {
	h := &hostileTracker{
		reg:   `{"token":"` + hostileToken + `","display_name":"calm-otter-1","project":"p","stage_name":"CPU"}`,
		calls: map[string]int{},
	}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ep := strings.TrimPrefix(r.URL.Path, "/api/")
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		h.mu.Lock()
		h.calls[ep]++
		n := h.calls[ep]
		if ep == "completeJob" {
			h.outputs = append(h.outputs, string(body))
		}
		h.mu.Unlock()
		text := func(status int, s string) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(status)
			io.WriteString(w, s)
		}
		switch ep {
		case "new":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, h.reg)
		case "jobCount":
			text(200, cmp.Or(h.open, "0"))
		case "validateWorker":
			text(200, "True")
		case "newJob":
			if h.newJob == nil {
				text(403, "Either there are no new jobs available, or there was an error whilst finding a job. Keep retrying, as jobs are dynamically created.")
				return
			}
			h.newJob(w, r, n)
		case "flagInvalidData":
			if h.flag != nil {
				h.flag(w)
				return
			}
			text(200, "200 OK")
		default:
			text(200, "200 OK")
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hostileTracker) count(ep string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[ep]
}

func noJobs(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(403)
	io.WriteString(w, "Either there are no new jobs available, or there was an error whilst finding a job. Keep retrying, as jobs are dynamically created.")
}

func jobAnswer(w http.ResponseWriter, data string, number int) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"data":%s,"number":%d}`, jsonString(data), number)
}

type hostileRun struct {
	err            error
	stdout, stderr string
	journal        string
	ran            bool   // the command ran
	allocated      uint64 // bytes allocated during the run (an upper bound of its heap growth)
}

// runHostile runs dcworker --exit-when-empty against h until it exits.
func runHostile(t *testing.T, h *hostileTracker, attemptTimeout time.Duration) hostileRun {
	t.Helper()
	dir := t.TempDir()
	ran := filepath.Join(dir, "ran")
	sh := script(t, `touch `+ran+`; printf 'step \033[2J\033]0;pwn\007\r\nFORGED progress\n' >&3; cat > /dev/null; echo done`)
	res := hostileRun{journal: filepath.Join(dir, "journal.db")}
	var stdout, stderr syncBuf
	args := []string{"--tracker", h.srv.URL, "--journal", res.journal, "--exit-when-empty", "--empty-poll", "20ms",
		"--wait-max", "50ms", "--heartbeat", "1h", "--retry-delay", "0s", "--", "/bin/sh", sh}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	res.err = worker.Command(ctx, args, nil, &stdout, &stderr, func(c *worker.Config) {
		c.WorkDir = filepath.Join(dir, "work")
		c.ClientOptions = append(c.ClientOptions, client.WithRetry(session.RetryPolicy{
			InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond, MaxRetries: 2, AttemptTimeout: attemptTimeout,
		}))
	})
	runtime.ReadMemStats(&after)
	res.allocated = after.TotalAlloc - before.TotalAlloc
	res.stdout, res.stderr = stdout.String(), stderr.String()
	_, err := os.Stat(ran)
	res.ran = err == nil
	t.Logf("dcworker's stderr:\n%s", res.stderr)
	checkInert(t, "stdout", res.stdout)
	checkInert(t, "stderr", res.stderr)
	verifyJournal(t, res.journal)
	return res
}

// checkInert fails if out holds an escape character, a carriage return,
// a bidi override, invalid UTF-8 or the token in full.
func checkInert(t *testing.T, name, out string) {
	t.Helper()
	if i := strings.IndexFunc(out, func(r rune) bool {
		return (r < 0x20 && r != '\n') || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == '\u202e'
	}); i >= 0 {
		t.Errorf("%s holds a control character at byte %d: %q", name, i, out[max(0, i-40):min(len(out), i+40)])
	}
	if !utf8.ValidString(out) {
		t.Errorf("%s is not valid UTF-8", name)
	}
	if strings.Contains(out, hostileToken) {
		t.Errorf("%s holds the token in full", name)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "FORGED") || strings.HasPrefix(line, "ERROR forged") {
			t.Errorf("%s has a forged line: %q", name, line)
		}
	}
}

// journalEvents returns the journal's events of kind k.
func journalEvents(t *testing.T, path string, k journal.Kind) []journal.Event {
	return events(t, path, k)
}

func TestHostileTracker(t *testing.T) {
	t.Run("undecodable job is flagged", func(t *testing.T) {
		h := newHostileTracker(t)
		h.newJob = func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 1 {
				jobAnswer(w, "<!json!>{nope", 4)
				return
			}
			noJobs(w)
		}
		res := runHostile(t, h, 5*time.Second)
		if res.err != nil {
			t.Fatalf("dcworker: %v", res.err)
		}
		if res.ran || h.count("flagInvalidData") != 1 || h.count("completeJob") != 0 {
			t.Errorf("command ran %v, %d flags, %d completions; want not run, 1 flag, 0 completions", res.ran, h.count("flagInvalidData"), h.count("completeJob"))
		}
		if evs := journalEvents(t, res.journal, journal.KindFlagPending); len(evs) != 1 || evs[0].Job != 4 || !strings.Contains(evs[0].Reason, "cannot be decoded") {
			t.Errorf("journal flag-pending events: %v", evs)
		}
	})

	t.Run("refused flag releases the job", func(t *testing.T) {
		h := newHostileTracker(t)
		h.newJob = func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 1 {
				jobAnswer(w, "<!json!>{nope", 5)
				return
			}
			noJobs(w)
		}
		h.flag = func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(422)
			io.WriteString(w, `{"detail":[{"loc":["body"],"msg":"null value in column \"data_a\" violates not-null constraint `+escapes+`","type":"integrity_error"}]}`)
		}
		res := runHostile(t, h, 5*time.Second)
		if res.err != nil {
			t.Fatalf("dcworker: %v", res.err)
		}
		if res.ran || h.count("newJob") < 2 {
			t.Errorf("command ran %v, %d claims; want not run, a second claim (which releases the job)", res.ran, h.count("newJob"))
		}
		if evs := journalEvents(t, res.journal, journal.KindReleased); len(evs) != 1 || evs[0].Job != 5 || !strings.Contains(evs[0].Reason, "refused the flag") {
			t.Errorf("journal released events: %v", evs)
		}
	})

	bigJob := func(size int64, announce bool, number int) func(w http.ResponseWriter, r *http.Request, n int) {
		head, tail := `{"data":"`, fmt.Sprintf(`","number":%d}`, number)
		return func(w http.ResponseWriter, r *http.Request, n int) {
			if n > 1 {
				noJobs(w)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			if announce {
				w.Header().Set("Content-Length", strconv.FormatInt(int64(len(head))+size+int64(len(tail)), 10))
			}
			io.WriteString(w, head)
			if _, err := io.Copy(w, &zeroReader{size}); err == nil {
				io.WriteString(w, tail)
			}
		}
	}
	// A job over the 16 MiB limit, and answers of a gigabyte, announced or
	// not: the job is refused (released by the next claim, which the
	// tracker answers 403), the worker exits 0, and the whole run allocates
	// less than 64 MiB: nothing past the 16 MiB limit is held in memory.
	for _, tc := range []struct {
		name     string
		size     int64
		announce bool
		job      int
	}{
		{"17 MiB job", 17 << 20, true, 9},
		{"1 GiB answer", 1 << 30, true, 0},
		{"1 GiB chunked answer", 1 << 30, false, 0},
	} {
		t.Run(tc.name+" is released", func(t *testing.T) {
			h := newHostileTracker(t)
			h.newJob = bigJob(tc.size, tc.announce, tc.job)
			res := runHostile(t, h, 30*time.Second)
			if res.err != nil {
				t.Fatalf("dcworker: %v", res.err)
			}
			if res.ran || h.count("newJob") < 2 || h.count("flagInvalidData") != 0 {
				t.Errorf("command ran %v, %d claims, %d flags; want not run, a second claim, no flag", res.ran, h.count("newJob"), h.count("flagInvalidData"))
			}
			evs := journalEvents(t, res.journal, journal.KindRefused)
			if len(evs) != 1 || evs[0].Job != tc.job || !strings.Contains(evs[0].Reason, "size limit") {
				t.Errorf("journal refused events: %v, want one of job %d", evs, tc.job)
			}
			t.Logf("the run allocated %d MiB", res.allocated>>20)
			if res.allocated > 64<<20 {
				t.Errorf("the run allocated %d MiB, over 64 MiB", res.allocated>>20)
			}
		})
	}

	// The refused job stays open at the tracker (jobCount 1): dcworker
	// --exit-when-empty stops anyway, since the only open job is one it
	// refused.
	t.Run("exit when the open jobs are refused ones", func(t *testing.T) {
		h := newHostileTracker(t)
		h.open = "1"
		h.newJob = func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 1 {
				jobAnswer(w, "<!json!>{nope", 4)
				return
			}
			noJobs(w)
		}
		res := runHostile(t, h, 5*time.Second)
		if res.err != nil {
			t.Fatalf("dcworker: %v", res.err)
		}
		if !strings.Contains(res.stderr, "the open jobs are ones this worker refused") {
			t.Errorf("dcworker did not say why it stopped")
		}
	})

	t.Run("non-UTF-8 text is completed, and logged as valid UTF-8", func(t *testing.T) {
		h := newHostileTracker(t)
		h.reg = "{\"token\":\"" + hostileToken + "\",\"display_name\":\"caf\xe9-\xff\xfe\",\"project\":\"p\xc3\",\"stage_name\":\"CPU\"}"
		h.newJob = func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 1 {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, "{\"data\":\"caf\xe9 \xff\xfe\",\"number\":3}")
				return
			}
			noJobs(w)
		}
		res := runHostile(t, h, 5*time.Second)
		if res.err != nil {
			t.Fatalf("dcworker: %v", res.err)
		}
		if !res.ran || h.count("completeJob") != 1 {
			t.Errorf("command ran %v, %d completions; want run and completed", res.ran, h.count("completeJob"))
		}
	})

	t.Run("escape sequences in names and progress stay inert", func(t *testing.T) {
		h := newHostileTracker(t)
		h.reg = `{"token":"` + hostileToken + `","display_name":` + jsonString("name "+escapes) + `,"project":` + jsonString("project "+escapes) +
			`,"stage_name":` + jsonString("stage "+escapes) + `}`
		h.newJob = func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 1 {
				jobAnswer(w, "input "+escapes, 2)
				return
			}
			noJobs(w)
		}
		res := runHostile(t, h, 5*time.Second)
		if res.err != nil {
			t.Fatalf("dcworker: %v", res.err)
		}
		if !res.ran || h.count("completeJob") != 1 {
			t.Errorf("command ran %v, %d completions; want run and completed", res.ran, h.count("completeJob"))
		}
		if !strings.Contains(res.stderr, `name \\x1b[2J`) { // escaped by termtext, then quoted by tint
			t.Errorf("the display name is not logged escaped")
		}
		db, err := journal.Open(res.journal, &journal.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, opts := range []postmortem.InspectOptions{{}, {Timeline: true}, {Job: 2}} {
			var b bytes.Buffer
			if err := postmortem.Inspect(&b, db, opts); err != nil {
				t.Fatal(err)
			}
			checkInert(t, fmt.Sprintf("inspect %+v", opts), b.String())
		}
	})

	t.Run("answers echoing the token are logged redacted", func(t *testing.T) {
		h := newHostileTracker(t)
		h.newJob = func(w http.ResponseWriter, r *http.Request, n int) {
			if n <= 3 { // the first claim: its attempt and two retries
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(500)
				io.WriteString(w, "boom: worker "+hostileToken+" "+escapes)
				return
			}
			noJobs(w)
		}
		res := runHostile(t, h, 5*time.Second)
		if res.err != nil {
			t.Fatalf("dcworker: %v", res.err)
		}
		if !strings.Contains(res.stderr, session.Redact(hostileToken)) {
			t.Errorf("the failed claim is not logged with the redacted token")
		}
	})

	t.Run("a drip-fed answer is cut off and the worker moves on", func(t *testing.T) {
		h := newHostileTracker(t)
		h.newJob = func(w http.ResponseWriter, r *http.Request, n int) {
			if n > 3 {
				noJobs(w)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(200)
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-r.Context().Done():
					return // the client gave up the attempt
				case <-tick.C:
					io.WriteString(w, " ")
					w.(http.Flusher).Flush()
				}
			}
		}
		res := runHostile(t, h, 300*time.Millisecond)
		if res.err != nil {
			t.Fatalf("dcworker: %v", res.err)
		}
		if h.count("newJob") < 4 {
			t.Errorf("%d claims, want the dripped ones cut off and a fourth", h.count("newJob"))
		}
	})

	t.Run("redirects are not followed: the token goes nowhere else", func(t *testing.T) {
		var other sync.Map
		elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			other.Store(r.URL.Path, string(b))
		}))
		defer elsewhere.Close()
		h := newHostileTracker(t)
		h.newJob = func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 1 {
				http.Redirect(w, r, elsewhere.URL+"/api/newJob", http.StatusTemporaryRedirect)
				return
			}
			noJobs(w)
		}
		res := runHostile(t, h, 5*time.Second)
		if res.err != nil {
			t.Fatalf("dcworker: %v", res.err)
		}
		other.Range(func(k, v any) bool {
			t.Errorf("a request went to the other port: %v %v", k, v)
			return true
		})
		if !strings.Contains(res.stderr, "redirect") {
			t.Errorf("the refused redirect is not logged")
		}
	})
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// zeroReader streams n '0' bytes without holding them.
type zeroReader struct{ n int64 }

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), z.n)
	for i := range p[:k] {
		p[i] = '0'
	}
	z.n -= k
	return int(k), nil
}

// A refused job is counted in /metrics (dcworker_jobs_refused_total).
func TestRefusedJobCounted(t *testing.T) {
	h := newHostileTracker(t)
	h.newJob = func(w http.ResponseWriter, r *http.Request, n int) {
		switch n {
		case 1:
			jobAnswer(w, "<!json!>{nope", 4)
		case 2:
			jobAnswer(w, "good", 5)
		default:
			noJobs(w)
		}
	}
	dir := t.TempDir()
	cfg := config(t, h.srv.URL, script(t, `touch `+dir+`/running; while [ ! -f `+dir+`/go ]; do sleep 0.02; done; echo ok`))
	cfg.StatusAddr = "127.0.0.1:0"
	addrCh := make(chan net.Addr, 1)
	cfg.StatusListening = func(a net.Addr) { addrCh <- a }
	done := start(t, context.Background(), cfg)
	base := "http://" + (<-addrCh).String()
	waitFor(t, 10*time.Second, "the good job to run", func() bool {
		_, err := os.Stat(filepath.Join(dir, "running"))
		return err == nil
	})
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(m, []byte("\ndcworker_jobs_refused_total 1\n")) {
		t.Errorf("/metrics does not count the refused job:\n%s", m)
	}
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o600)
	if err := waitErr(t, done, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}
