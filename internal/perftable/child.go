package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/internal/hooks"
	"github.com/distcompute/distcompute-go/internal/worker"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/session"
	bolt "go.etcd.io/bbolt"
)

// figures is what one run of a configuration measured over its window (the
// cycles after the warm-up): the child prints them as one JSON line.
type figures struct {
	Cycles   int     `json:"cycles"`
	Wall     float64 `json:"wall_s"`
	CPU      float64 `json:"cpu_s"`               // user + system of the process and its waited children
	Requests int64   `json:"requests"`            // requests sent in the window; -1: not counted
	Syncs    float64 `json:"fdatasync_per_cycle"` // journal fdatasyncs per cycle (journal.Stats); -1: no journal
	// Median is the median time between two completions in the window, in
	// ms: a one-slot configuration's median cycle, which a disk stall
	// (another process's fsyncs) moves less than the mean.
	Median float64 `json:"cycle_median_ms"`
}

// childArgs is what the parent passes a child.
type childArgs struct {
	config  string // go-1, go-nosync, pool-N, dcworker-N, session, fsync4, bolt2(-nosync), spawn
	tracker string
	cycles  int
	warmup  int
	dir     string // a fresh directory on the measured disk
	profile string // CPU profile of the window to this file, if set
}

// window measures the cycles between the warm-up and the end: the cycle
// whose completion is number warmup starts it, number warmup+cycles ends it.
// Safe for concurrent use by the slots.
type window struct {
	warmup, cycles int64
	profile        string
	count          atomic.Int64
	mu             sync.Mutex
	t0             time.Time
	cpu0           time.Duration
	fig            figures
	last           time.Time
	gaps           []time.Duration
	start          func() // called at the start (counters to zero)
	stop           func(*figures)
	ended          chan struct{}
}

func newWindow(a childArgs) *window {
	return &window{warmup: int64(a.warmup), cycles: int64(a.cycles), profile: a.profile, ended: make(chan struct{})}
}

// done counts one completed cycle and reports whether the slot should stop.
func (w *window) done() bool {
	n := w.count.Add(1)
	switch {
	case n == w.warmup:
		w.begin()
	case n > w.warmup && n < w.warmup+w.cycles:
		w.mu.Lock()
		now := time.Now()
		w.gaps = append(w.gaps, now.Sub(w.last))
		w.last = now
		w.mu.Unlock()
	case n == w.warmup+w.cycles:
		w.end()
	}
	return n >= w.warmup+w.cycles
}

func (w *window) begin() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.profile != "" {
		if f, err := os.Create(w.profile); err == nil {
			if err := pprof.StartCPUProfile(f); err != nil {
				f.Close()
			}
		}
	}
	if w.start != nil {
		w.start()
	}
	w.t0, w.cpu0 = time.Now(), cpuTime()
	w.last = w.t0
}

func (w *window) end() {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	w.gaps = append(w.gaps, now.Sub(w.last))
	w.fig = figures{Cycles: int(w.cycles), Wall: now.Sub(w.t0).Seconds(), CPU: (cpuTime() - w.cpu0).Seconds(), Requests: -1, Syncs: -1}
	slices.Sort(w.gaps)
	w.fig.Median = float64(w.gaps[len(w.gaps)/2].Microseconds()) / 1e3
	if w.profile != "" {
		pprof.StopCPUProfile()
	}
	if w.stop != nil {
		w.stop(&w.fig)
	}
	close(w.ended)
}

// counter is an http.RoundTripper that counts requests, for the one-slot
// configurations (a Pool's slots would share its connections).
type counter struct {
	rt http.RoundTripper
	n  atomic.Int64
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.rt.RoundTrip(r)
}

func newCounter() *counter {
	return &counter{rt: http.DefaultTransport.(*http.Transport).Clone()}
}

// runChild runs one configuration and prints its figures.
func runChild(ctx context.Context, a childArgs, stdout io.Writer) error {
	var (
		fig figures
		err error
	)
	switch c := a.config; {
	case c == "go-1", c == "go-nosync":
		fig, err = goClient(ctx, a, c == "go-nosync")
	case strings.HasPrefix(c, "pool-"):
		n, perr := strconv.Atoi(strings.TrimPrefix(c, "pool-"))
		if perr != nil || n < 1 {
			return fmt.Errorf("bad configuration %q", c)
		}
		fig, err = goPool(ctx, a, n)
	case strings.HasPrefix(c, "dcworker-"):
		n, perr := strconv.Atoi(strings.TrimPrefix(c, "dcworker-"))
		if perr != nil || n < 1 {
			return fmt.Errorf("bad configuration %q", c)
		}
		fig, err = dcworker(ctx, a, n)
	case c == "session":
		fig, err = sessionOnly(ctx, a)
	case c == "fsync4":
		fig, err = fsync4(a)
	case c == "bolt2", c == "bolt2-nosync":
		fig, err = bolt2(a, c == "bolt2-nosync")
	case c == "spawn":
		fig, err = spawn(a)
	default:
		return fmt.Errorf("unknown configuration %q", c)
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(fig)
}

// cycle is the job cycle of the Go client: claim, one Log, complete.
func cycle(ctx context.Context, c *client.Client) error {
	if err := c.NewJob(ctx); err != nil {
		return err
	}
	c.Log("step 1 of 1")
	return c.CompleteJob(ctx, "output")
}

// syncsOf reports the journal's fdatasyncs per cycle over the window.
func syncsOf(w *window, db *journal.DB) {
	var s0 journal.Stats
	w.start = func() { s0 = db.Stats() }
	prev := w.stop
	w.stop = func(f *figures) {
		s := db.Stats()
		f.Syncs = 2 * float64(s.SyncedCommits-s0.SyncedCommits) / float64(f.Cycles)
		if prev != nil {
			prev(f)
		}
	}
}

func goClient(ctx context.Context, a childArgs, noSync bool) (figures, error) {
	cnt := newCounter()
	// The journal is opened here (as the client would open it) so that its
	// counters can be read.
	db, err := journal.Open(filepath.Join(a.dir, "journal.db"), &journal.Options{NoSync: noSync})
	if err != nil {
		return figures{}, err
	}
	defer db.Close()
	c, err := client.Init(ctx, a.tracker, "a", client.WithVerbose(false), client.WithJournalDB(db),
		client.WithHTTPClient(&http.Client{Transport: cnt}))
	if err != nil {
		return figures{}, err
	}
	defer c.Close()
	w := newWindow(a)
	var r0 int64
	w.stop = func(f *figures) { f.Requests = cnt.n.Load() - r0 }
	syncsOf(w, db)
	start := w.start
	w.start = func() { start(); r0 = cnt.n.Load() }
	for {
		if err := cycle(ctx, c); err != nil {
			return figures{}, err
		}
		if w.done() {
			break
		}
	}
	_ = c.Bye(ctx)
	return w.fig, nil
}

func goPool(ctx context.Context, a childArgs, n int) (figures, error) {
	opts := []client.Option{client.WithVerbose(false), client.WithJournal(filepath.Join(a.dir, "journal.db"))}
	p, err := client.OpenPool(ctx, a.tracker, "a", n, opts...)
	if err != nil {
		return figures{}, err
	}
	defer p.Close()
	w := newWindow(a)
	syncsOf(w, p.Journal())
	errs := make(chan error, n)
	for _, c := range p.Clients() {
		go func() {
			for {
				if err := cycle(ctx, c); err != nil {
					errs <- err
					return
				}
				if w.done() {
					errs <- nil
					return
				}
			}
		}()
	}
	var all []error
	for range n {
		all = append(all, <-errs)
	}
	if err := errors.Join(all...); err != nil {
		return figures{}, err
	}
	for _, c := range p.Clients() {
		_ = c.Bye(ctx)
	}
	return w.fig, nil
}

// dcworker runs dcworker's engine (what `dcworker run` runs) with /bin/cat
// as the command, counting completions through the client's hook.
func dcworker(ctx context.Context, a childArgs, slots int) (figures, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := newWindow(a)
	var cnt *counter
	var r0 int64
	if slots == 1 {
		cnt = newCounter()
		w.start = func() { r0 = cnt.n.Load() }
		w.stop = func(f *figures) { f.Requests = cnt.n.Load() - r0 }
	}
	args := []string{"--tracker", a.tracker, "--journal", filepath.Join(a.dir, "journal.db"),
		"--slots", strconv.Itoa(slots), "--", "/bin/cat"}
	mod := func(cfg *worker.Config) {
		cfg.WorkDir = filepath.Join(a.dir, "work")
		if cnt != nil {
			cfg.HTTPClient = &http.Client{Transport: cnt}
		}
		cfg.Hook = func(p hooks.Point, op string) {
			if p == hooks.AfterSend && op == "complete" && w.done() {
				cancel()
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(a.dir, "work"), 0o700); err != nil {
		return figures{}, err
	}
	err := worker.Command(ctx, args, nil, io.Discard, io.Discard, mod)
	select {
	case <-w.ended:
		return w.fig, nil
	default:
		return figures{}, fmt.Errorf("dcworker stopped before the window ended: %v", err)
	}
}

// sessionOnly is the protocol alone (session.Conn, no journal): the two
// requests the journaled client sends per cycle, newJob and completeJob.
func sessionOnly(ctx context.Context, a childArgs) (figures, error) {
	cnt := newCounter()
	conn, err := session.New(a.tracker, &session.Options{HTTPClient: &http.Client{Transport: cnt}})
	if err != nil {
		return figures{}, err
	}
	reg, err := conn.Register(ctx, "perftable", "a")
	if err != nil {
		return figures{}, err
	}
	w := newWindow(a)
	var r0 int64
	w.start = func() { r0 = cnt.n.Load() }
	w.stop = func(f *figures) { f.Requests = cnt.n.Load() - r0 }
	out := session.String("output")
	for {
		if _, err := conn.NewJob(ctx, reg.Token); err != nil {
			return figures{}, err
		}
		if err := conn.CompleteJob(ctx, reg.Token, out); err != nil {
			return figures{}, err
		}
		if w.done() {
			break
		}
	}
	_ = conn.Bye(ctx, reg.Token)
	return w.fig, nil
}

// fsync4 is the disk's floor for the journal's cycle: four appends of a
// 200-byte record to a file in the same directory, each followed by
// fdatasync (a bbolt commit syncs twice, and a cycle has two commits).
// Its "cycles" are a quarter of the others': the figure is per cycle.
func fsync4(a childArgs) (figures, error) {
	f, err := os.OpenFile(filepath.Join(a.dir, "raw"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return figures{}, err
	}
	defer f.Close()
	rec := make([]byte, 200)
	for i := range rec {
		rec[i] = 'x'
	}
	n := max(a.cycles/4, 50)
	w := newWindow(childArgs{cycles: n, warmup: 10, profile: a.profile})
	for {
		for range 4 {
			if _, err := f.Write(rec); err != nil {
				return figures{}, err
			}
			if err := fdatasync(f); err != nil {
				return figures{}, err
			}
		}
		if w.done() {
			break
		}
	}
	return w.fig, nil
}

// bolt2 is the floor under the journal's cycle that bbolt sets: two bare
// read-write transactions per cycle, each putting one 250-byte value (the
// size of a completion event) into one bucket and committing, on a file in
// the same directory, with the journal's options for a small file
// (NoFreelistSync; NoSync for bolt2-nosync). Synced, that is the 4
// fdatasync of a cycle with bbolt's own work around them: the least any
// journal built on bbolt with two durable records per cycle can cost. The
// keys cycle through 64, so the file stays as small as a pruned journal.
func bolt2(a childArgs, noSync bool) (figures, error) {
	db, err := bolt.Open(filepath.Join(a.dir, "bolt.db"), 0o600, &bolt.Options{NoFreelistSync: true, NoSync: noSync})
	if err != nil {
		return figures{}, err
	}
	defer db.Close()
	name := []byte("events")
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(name)
		return err
	}); err != nil {
		return figures{}, err
	}
	val := make([]byte, 250)
	for i := range val {
		val[i] = 'x'
	}
	var key [8]byte
	var seq uint64
	put := func(tx *bolt.Tx) error {
		seq++
		binary.BigEndian.PutUint64(key[:], seq%64)
		return tx.Bucket(name).Put(key[:], val)
	}
	w := newWindow(a)
	for {
		for range 2 {
			if err := db.Update(put); err != nil {
				return figures{}, err
			}
		}
		if w.done() {
			break
		}
	}
	return w.fig, nil
}

// spawn is the floor under dcworker's per-job cost: /bin/cat run the way the
// simplest Go program would run a command per job, with os/exec (the job's
// input on stdin, stdout read to its end, stderr kept for the error, the
// exit waited for), in the environment dcworker's command gets (this
// process's plus dcworker's DC_ variables). No tracker, journal, checkpoint
// or progress file: dcworker-1 − go-1 − spawn is what dcworker adds above
// spawning the command.
func spawn(a childArgs) (figures, error) {
	dir := filepath.Join(a.dir, "work", "slot-0")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return figures{}, err
	}
	base := os.Environ()
	w := newWindow(a)
	for n := 1; ; n++ {
		// The variables dcworker sets (internal/worker's Env names), with
		// values of the same shape: the child's environment is as large.
		env := append(slices.Clip(base),
			worker.EnvJobNumber+"="+strconv.Itoa(n),
			worker.EnvStage+"=a",
			worker.EnvStageName+"=CPU",
			worker.EnvProject+"=perftable",
			worker.EnvWorker+"=perftable-0",
			worker.EnvSlot+"=0",
			worker.EnvCheckpointFile+"="+filepath.Join(dir, "checkpoint"),
			worker.EnvResumed+"=0",
			worker.EnvAttempt+"=1",
			worker.EnvProgressFD+"=3",
			worker.EnvProgressFile+"="+filepath.Join(dir, "progress"),
			worker.EnvDataKind+"=string",
			worker.EnvDataNull+"=0",
		)
		input := "job-" + strconv.Itoa(n) // the tracker's jobs: job-1, job-2, ...
		cmd := exec.Command("/bin/cat")
		cmd.Env = env
		cmd.Stdin = strings.NewReader(input)
		out, err := cmd.Output() // stdout and stderr through pipes, then Wait
		if err != nil {
			return figures{}, fmt.Errorf("/bin/cat: %v", err)
		}
		if string(out) != input {
			return figures{}, fmt.Errorf("/bin/cat wrote %q, not %q", out, input)
		}
		if w.done() {
			break
		}
	}
	return w.fig, nil
}
