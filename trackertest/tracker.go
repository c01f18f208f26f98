package trackertest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Defaults for Options.
const (
	DefaultProject       = "distcompute"
	DefaultIdleTimeout   = 7200 * time.Second
	DefaultCheckInterval = 300 * time.Second
	// DefaultRaceWindow is how long, in Quirks mode, a completion stays open for concurrent
	// completions by the same worker to join it (see Options.RaceWindow).
	DefaultRaceWindow = 5 * time.Millisecond
)

// JSONPrefix marks job data or output that holds JSON text (a list or an object).
const JSONPrefix = "<!json!>"

// Limits of the upstream database columns.
const (
	maxNickname = 128 // varchar(128): longer answers 500
	maxProgress = 255 // varchar(255): longer answers 404 NOWORKER
	flagLimit   = 5   // flags of one job at one stage before it is sent back a stage
)

// Answer texts, as the upstream tracker words them (typos included).
const (
	msgNoWorker     = "The server could not find this worker. Did the worker time out?"
	msgNoJobs       = "Either there are no new jobs available, or there was an error whilst finding a job. Keep retrying, as jobs are dynamically created."
	msgNoOpenJob    = "You do not have an open job."
	msgNotWorking   = "This worker is not currently working on a job."
	msgOK           = "200 OK"
	msgServerError  = "Internal Server Error"
	progressInit    = "Initialised"
	progressGotJob  = "Recieved new job"
	progressDoneJob = "Completed Job"
)

// Options configure a Tracker. The zero value is usable: project "distcompute", one stage
// ("a", named "CPU"), no jobs, the upstream idle timeout and check interval, real time.
type Options struct {
	Project       string            // default "distcompute"
	Stages        map[string]string // letter -> stage name, e.g. {"a":"CPU","b":"GPU"}; unset letters disabled; nil -> {"a":"CPU"}
	Jobs          []any             // string, or []any/map[string]any/json.RawMessage (stored as "<!json!>"+json); numbered from 1
	IdleTimeout   time.Duration     // default 7200s
	CheckInterval time.Duration     // default 300s
	Clock         Clock             // nil: real time
	Quirks        bool              // reproduce upstream bugs (stage b+ served null, 5th flag 422, concurrent completions)
	Logger        *slog.Logger      // nil: discard
	Seed          int64             // random job pick and display names; 0 = time-based

	// RaceWindow applies in Quirks mode only: a completion waits this long before it is
	// applied, and completions by the same worker that arrive meanwhile join it, as concurrent
	// requests raced in the upstream database: all of them apply (the last output wins), and
	// when the worker's nickname had no leaderboard row yet, all but one answer 500.
	// 0 means DefaultRaceWindow; negative disables it (concurrent completions then serialise:
	// the first answers 200, the others 403).
	RaceWindow time.Duration

	// MaxBodyBytes limits a request body: a longer one is answered 413
	// (unread when its length is announced). 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxLargeBodies limits the large bodies (announced over
	// LargeBodyBytes) read at once; more are answered 503 with Retry-After.
	// 0 means DefaultMaxLargeBodies. A chunked body may be at most
	// LargeBodyBytes long.
	MaxLargeBodies int
	// ReadTimeout and WriteTimeout bound reading a request (body included)
	// and writing its answer, for the servers of Start and Serve. 0 means
	// DefaultReadTimeout and DefaultWriteTimeout.
	ReadTimeout, WriteTimeout time.Duration
}

// Tracker is an in-memory distcompute tracker. It is an http.Handler serving the upstream
// tracker's API and dashboard (docs/PROTOCOL.md), and it is safe for concurrent use. A Tracker
// starts no goroutine: Start and Serve run its idle sweep.
type Tracker struct {
	project  string
	names    [numStages]string // "" = disabled
	idle     time.Duration
	interval time.Duration
	clock    Clock
	quirks   bool
	race     time.Duration
	log      *slog.Logger

	maxBody                   int64
	largeBodies               chan struct{} // slots of MaxLargeBodies
	readTimeout, writeTimeout time.Duration

	mu      sync.Mutex
	rng     *mrand.Rand
	jobs    []*job
	open    [numStages]jobSet
	workers map[string]*worker // by token
	byName  map[string]*worker // by display name
	users   map[string]int     // nickname -> jobs completed (the leaderboard)
	regSeq  int
	fault   FaultFunc

	statsMu sync.Mutex
	stats   map[string]*EndpointStats
}

const numStages = 5

func letter(s int) string { return string(rune('a' + s)) }

func stageIndex(l string) int {
	if len(l) == 1 && l[0] >= 'a' && l[0] <= 'e' {
		return int(l[0] - 'a')
	}
	return -1
}

type job struct {
	number      int
	stage       int
	data        [numStages]*string // the upstream data_a..data_e columns
	outputs     [numStages]*string // output last submitted at each stage
	pending     bool
	closed      bool
	holder      *worker
	completions [numStages]int
	flags       [numStages]int
	openIdx     int // index in the open set of its stage, -1 if not open
}

type worker struct {
	token     string
	name      string
	nick      string
	stage     int
	progress  string
	job       *job
	firstSeen time.Time
	lastSeen  time.Time
	completed int
	seq       int
	group     *completionGroup
}

// jobSet is the set of open jobs of one stage, for O(1) random picks.
type jobSet struct{ items []*job }

func (s *jobSet) add(j *job) {
	if j.openIdx >= 0 {
		return
	}
	j.openIdx = len(s.items)
	s.items = append(s.items, j)
}

func (s *jobSet) remove(j *job) {
	i := j.openIdx
	if i < 0 {
		return
	}
	last := len(s.items) - 1
	s.items[i] = s.items[last]
	s.items[i].openIdx = i
	s.items = s.items[:last]
	j.openIdx = -1
}

// New returns a Tracker for opts. It panics if opts.Stages names a letter outside a..e or
// leaves stage a disabled (the upstream tracker refuses to start so), or if a job is not a
// string, list or object.
func New(opts Options) *Tracker {
	t := &Tracker{
		project:  opts.Project,
		idle:     opts.IdleTimeout,
		interval: opts.CheckInterval,
		clock:    opts.Clock,
		quirks:   opts.Quirks,
		race:     opts.RaceWindow,
		log:      opts.Logger,
		workers:  map[string]*worker{},
		byName:   map[string]*worker{},
		users:    map[string]int{},
		stats:    map[string]*EndpointStats{},
	}
	if t.project == "" {
		t.project = DefaultProject
	}
	stages := opts.Stages
	if stages == nil {
		stages = map[string]string{"a": "CPU"}
	}
	for l, name := range stages {
		i := stageIndex(l)
		if i < 0 {
			panic(fmt.Sprintf("trackertest: stage letter %q is not one of a..e", l))
		}
		t.names[i] = name
	}
	if t.names[0] == "" {
		panic("trackertest: stage a must be enabled")
	}
	if t.idle <= 0 {
		t.idle = DefaultIdleTimeout
	}
	if t.interval <= 0 {
		t.interval = DefaultCheckInterval
	}
	if t.clock == nil {
		t.clock = realClock{}
	}
	if t.race == 0 {
		t.race = DefaultRaceWindow
	}
	t.maxBody = cmp.Or(max(opts.MaxBodyBytes, 0), DefaultMaxBodyBytes)
	t.largeBodies = make(chan struct{}, cmp.Or(max(opts.MaxLargeBodies, 0), DefaultMaxLargeBodies))
	t.readTimeout = cmp.Or(max(opts.ReadTimeout, 0), DefaultReadTimeout)
	t.writeTimeout = cmp.Or(max(opts.WriteTimeout, 0), DefaultWriteTimeout)
	if t.log == nil {
		t.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	seed := opts.Seed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.rng = mrand.New(mrand.NewPCG(uint64(seed), uint64(seed)>>32^0x9e3779b97f4a7c15))
	t.AddJobs(opts.Jobs...)
	return t
}

// EncodeJob returns the wire form a job is stored and served in: a string as is; a list or
// an object (a []any, map[string]any, json.RawMessage, or any Go value that encoding/json
// turns into an array or object) as "<!json!>" followed by the JSON text Python's json.dumps
// writes (", " and ": " separators, non-ASCII escaped). Map keys are sorted; a
// json.RawMessage keeps its key order.
func EncodeJob(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case json.RawMessage:
		s := strings.TrimLeft(string(x), " \t\r\n")
		if s == "" || (s[0] != '[' && s[0] != '{') {
			return "", fmt.Errorf("trackertest: job %.40s is not a list or an object", string(x))
		}
		out, err := pyDumps(x)
		if err != nil {
			return "", fmt.Errorf("trackertest: job: %w", err)
		}
		return JSONPrefix + out, nil
	}
	if v != nil {
		switch reflect.TypeOf(v).Kind() {
		case reflect.Slice, reflect.Array, reflect.Map, reflect.Struct:
			b, err := json.Marshal(v)
			if err != nil {
				return "", fmt.Errorf("trackertest: job: %w", err)
			}
			return EncodeJob(json.RawMessage(b))
		case reflect.Pointer:
			if !reflect.ValueOf(v).IsNil() {
				return EncodeJob(reflect.ValueOf(v).Elem().Interface())
			}
		}
	}
	return "", fmt.Errorf("trackertest: job of type %T: want a string, a list or an object", v)
}

// AddJobs adds jobs at stage a, open, numbered after the existing ones, and returns their
// numbers. Each job is encoded by EncodeJob; AddJobs panics on a job EncodeJob refuses.
func (t *Tracker) AddJobs(jobs ...any) []int {
	wires := make([]string, len(jobs))
	for i, v := range jobs {
		w, err := EncodeJob(v)
		if err != nil {
			panic(err)
		}
		wires[i] = w
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	nums := make([]int, len(jobs))
	for i, w := range wires {
		j := &job{number: len(t.jobs) + 1, openIdx: -1}
		j.data[0] = &w
		t.jobs = append(t.jobs, j)
		t.open[0].add(j)
		nums[i] = j.number
	}
	return nums
}

// nextStage is the next enabled stage after s, or -1. Upstream only looks at the very next
// letter (a job completed before a disabled stage is closed); the default mode skips gaps.
func (t *Tracker) nextStage(s int) int {
	if t.quirks {
		if s+1 < numStages && t.names[s+1] != "" {
			return s + 1
		}
		return -1
	}
	for n := s + 1; n < numStages; n++ {
		if t.names[n] != "" {
			return n
		}
	}
	return -1
}

// prevStage is the enabled stage before s, or -1.
func (t *Tracker) prevStage(s int) int {
	for p := s - 1; p >= 0; p-- {
		if t.names[p] != "" {
			return p
		}
	}
	return -1
}

// release puts a held job back to open at its current stage. Callers hold t.mu.
func (t *Tracker) release(j *job) {
	if j.holder != nil && j.holder.job == j {
		j.holder.job = nil
	}
	j.holder = nil
	j.pending = false
	if !j.closed {
		t.open[j.stage].add(j)
	}
}

func invalidStage(s string) answer {
	return textAnswer(http.StatusBadRequest, fmt.Sprintf("Invalid worker stage: '%s'. Choose from 'a'/'b'/'c'/'d'/'e'.", s))
}

// register is GET /api/new.
func (t *Tracker) register(nickname, stage string) answer {
	s := stageIndex(stage)
	if s < 0 {
		return invalidStage(stage)
	}
	if t.names[s] == "" {
		return textAnswer(http.StatusBadRequest, fmt.Sprintf("The worker stage '%s' is disabled.", stage))
	}
	if utf8.RuneCountInString(nickname) > maxNickname || strings.ContainsRune(nickname, 0) {
		return textAnswer(http.StatusInternalServerError, msgServerError) // the INSERT fails
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clock.Now()
	w := &worker{token: newToken(), nick: nickname, stage: s, progress: progressInit, firstSeen: now, lastSeen: now}
	for {
		w.name = newDisplayName(t.rng)
		if t.byName[w.name] == nil {
			break
		}
	}
	t.regSeq++
	w.seq = t.regSeq
	t.workers[w.token] = w
	t.byName[w.name] = w
	return jsonAnswer(http.StatusOK, orderedObject{
		{"token", w.token}, {"display_name", w.name}, {"project", t.project}, {"stage_name", t.names[s]},
	})
}

// jobCount is GET /api/jobCount.
func (t *Tracker) jobCount(stage string) answer {
	s := stageIndex(stage)
	if s < 0 {
		return invalidStage(stage)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return textAnswer(http.StatusOK, fmt.Sprint(len(t.open[s].items)))
}

// validateWorker is POST /api/validateWorker.
func (t *Tracker) validateWorker(token string) answer {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.workers[token] != nil {
		return textAnswer(http.StatusOK, "True")
	}
	return textAnswer(http.StatusOK, "False")
}

// updateProgress is POST /api/updateProgress. Upstream updates "the worker with this token"
// without checking that one exists, so an unknown token answers 200; a value too long for the
// column fails inside a bare except that answers 404 NOWORKER.
func (t *Tracker) updateProgress(token, progress string) answer {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.workers[token]
	if w == nil {
		return textAnswer(http.StatusOK, msgOK)
	}
	if utf8.RuneCountInString(progress) > maxProgress || strings.ContainsRune(progress, 0) {
		return textAnswer(http.StatusNotFound, msgNoWorker)
	}
	w.progress = progress
	w.lastSeen = t.clock.Now()
	return textAnswer(http.StatusOK, msgOK)
}

// newJob is POST /api/newJob: release what the worker holds, then pick a random open job of
// its stage (possibly the same one).
func (t *Tracker) newJob(token string) answer {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.workers[token]
	if w == nil {
		return textAnswer(http.StatusNotFound, msgNoWorker)
	}
	if w.job != nil {
		t.release(w.job)
	}
	set := &t.open[w.stage]
	if len(set.items) == 0 {
		return textAnswer(http.StatusForbidden, msgNoJobs)
	}
	j := set.items[t.rng.IntN(len(set.items))]
	set.remove(j)
	j.pending = true
	j.holder = w
	w.job = j
	w.progress = progressGotJob
	w.lastSeen = t.clock.Now()
	return jsonAnswer(http.StatusOK, orderedObject{{"data", j.data[w.stage]}, {"number", j.number}})
}

// completionGroup gathers the completions by one worker that raced each other (Quirks mode).
type completionGroup struct {
	job      *job
	outputs  []string
	results  []answer
	done     chan struct{}
	userSeen bool // the worker's nickname had a leaderboard row when the group formed
}

// completeJob is POST /api/completeJob.
func (t *Tracker) completeJob(ctx context.Context, token, data string) answer {
	t.mu.Lock()
	w := t.workers[token]
	if w == nil {
		t.mu.Unlock()
		return textAnswer(http.StatusNotFound, msgNoWorker)
	}
	if g := w.group; g != nil { // join a completion in flight
		i := len(g.outputs)
		g.outputs = append(g.outputs, data)
		t.mu.Unlock()
		<-g.done
		return g.results[i]
	}
	if w.job == nil {
		t.mu.Unlock()
		return textAnswer(http.StatusForbidden, msgNoOpenJob)
	}
	if strings.ContainsRune(data, 0) { // the UPDATE fails: nothing saved
		t.mu.Unlock()
		return textAnswer(http.StatusInternalServerError, msgServerError)
	}
	if !t.quirks || t.race < 0 {
		defer t.mu.Unlock()
		t.complete(w, w.job, data)
		return textAnswer(http.StatusOK, msgOK)
	}
	g := &completionGroup{job: w.job, outputs: []string{data}, done: make(chan struct{})}
	_, g.userSeen = t.users[w.nick]
	w.group = g
	t.mu.Unlock()

	timer := time.NewTimer(t.race)
	select {
	case <-timer.C:
	case <-ctx.Done(): // still apply: the request reached the tracker
		timer.Stop()
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	w.group = nil
	g.results = make([]answer, len(g.outputs))
	switch {
	case t.workers[token] != w:
		for i := range g.results {
			g.results[i] = textAnswer(http.StatusNotFound, msgNoWorker)
		}
	case w.job != g.job:
		for i := range g.results {
			g.results[i] = textAnswer(http.StatusForbidden, msgNoOpenJob)
		}
	default:
		// Every racing request saved the job (the last write wins) but only one created
		// the leaderboard row; the others hit its unique constraint: 500.
		t.complete(w, g.job, g.outputs[len(g.outputs)-1])
		for i := range g.results {
			if i == 0 || g.userSeen {
				g.results[i] = textAnswer(http.StatusOK, msgOK)
			} else {
				g.results[i] = textAnswer(http.StatusInternalServerError, msgServerError)
			}
		}
	}
	close(g.done)
	return g.results[0]
}

// complete applies a completion. Callers hold t.mu.
func (t *Tracker) complete(w *worker, j *job, data string) {
	s := j.stage
	out := data
	j.completions[s]++
	j.outputs[s] = &out
	if t.quirks {
		j.data[s] = &out // upstream overwrites the column it served from
	}
	if n := t.nextStage(s); n >= 0 {
		j.stage = n
		if !t.quirks {
			j.data[n] = &out
		}
	} else {
		j.closed = true
	}
	w.job = nil
	t.release(j)
	w.progress = progressDoneJob
	w.completed++
	w.lastSeen = t.clock.Now()
	t.users[w.nick]++
}

// flagInvalidData is POST /api/flagInvalidData.
func (t *Tracker) flagInvalidData(token string) answer {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.workers[token]
	if w == nil {
		return textAnswer(http.StatusNotFound, msgNoWorker)
	}
	j := w.job
	if j == nil {
		return textAnswer(http.StatusForbidden, msgNotWorking)
	}
	s := j.stage
	j.flags[s]++
	if j.flags[s] >= flagLimit {
		if t.quirks {
			// Upstream nulls the previous stage's column and moves the job there; for
			// stage b that column is data_a, NOT NULL: the save fails, nothing changes,
			// and the flag counter (kept in Redis) is never reset.
			switch {
			case s == 1:
				return t.integrityError(j)
			case s > 1:
				j.data[s-1] = nil
				j.stage = s - 1
			}
		} else if p := t.prevStage(s); p >= 0 {
			j.flags[s] = 0
			j.data[s] = nil
			j.stage = p
		}
	}
	t.release(j)
	w.lastSeen = t.clock.Now()
	return textAnswer(http.StatusOK, msgOK)
}

// integrityError is the 422 upstream answers for the 5th flag of a job at stage b.
func (t *Tracker) integrityError(j *job) answer {
	row := []string{fmt.Sprint(j.number), "a", "null"}
	for s := 1; s < numStages; s++ {
		row = append(row, pgValue(j.data[s]))
	}
	row = append(row, "f", "f", "null")
	msg := "null value in column \"data_a\" of relation \"job\" violates not-null constraint\n" +
		"DETAIL:  Failing row contains (" + strings.Join(row, ", ") + ")."
	return validationAnswer([]orderedObject{detailItem([]any{}, msg, "IntegrityError")})
}

// pgValue renders a column value as PostgreSQL writes it in a row.
func pgValue(v *string) string {
	if v == nil {
		return "null"
	}
	s := *v
	if s != "" && !strings.ContainsAny(s, "\"\\(), \t\n\r") {
		return s
	}
	return `"` + strings.NewReplacer(`"`, `""`, `\`, `\\`).Replace(s) + `"`
}

// bye is POST /api/bye: re-open the held job, then delete the worker.
func (t *Tracker) bye(token string) answer {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.workers[token]
	if w == nil {
		return textAnswer(http.StatusNotFound, msgNoWorker)
	}
	t.deleteWorker(w)
	return textAnswer(http.StatusOK, msgOK)
}

func (t *Tracker) deleteWorker(w *worker) {
	if w.job != nil {
		t.release(w.job)
	}
	delete(t.workers, w.token)
	delete(t.byName, w.name)
}

// CheckIdle runs the idle-worker sweep now: every worker not seen for longer than the idle
// timeout is deleted and its job re-opened at the same stage with its input intact. Start and
// Serve also run it every CheckInterval (of the Clock).
func (t *Tracker) CheckIdle() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clock.Now()
	for _, w := range t.workers {
		if now.Sub(w.lastSeen) > t.idle {
			t.log.LogAttrs(context.Background(), slog.LevelInfo, "worker timed out",
				slog.String(keyWorker, w.name), slog.Duration(keyIdle, now.Sub(w.lastSeen)))
			t.deleteWorker(w)
		}
	}
}
