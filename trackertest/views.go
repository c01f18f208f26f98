package trackertest

import (
	"sort"
	"time"
)

// JobState is where a job is in its life.
type JobState string

// Job states.
const (
	JobOpen   JobState = "open"   // waiting for a worker at its stage
	JobHeld   JobState = "held"   // claimed by a worker
	JobClosed JobState = "closed" // completed at the last stage
)

// JobView is a copy of one job's state.
type JobView struct {
	Number int
	Stage  string // letter of the stage the job is at ("a".."e")
	State  JobState
	Holder string // display name of the worker holding it, "" if none

	// Data holds, by stage letter, the wire data as stored (nil entries left out). In the
	// default mode Data[X] is the input served at stage X (stage a: the job as loaded, later
	// stages: the previous stage's output). In Quirks mode it mirrors the upstream columns
	// data_a..data_e: completing stage X overwrites Data[X] with the output, so later stages
	// are served nil.
	Data map[string]*string
	// Outputs holds, by stage letter, the output last accepted at that stage.
	Outputs     map[string]*string
	Completions map[string]int // stage letter -> times completed there
	// Flags counts the flagInvalidData calls at each stage. In the default mode the count
	// restarts when the 5th flag sends the job back a stage; in Quirks mode it never does
	// (upstream keeps it in Redis), so every later flag at stage b fails.
	Flags map[string]int
}

// WorkerView is a copy of one registered worker's state.
type WorkerView struct {
	Token, DisplayName, Nickname string
	Stage                        string // letter
	Progress                     string
	Job                          int // number of the held job, 0 for none
	LastSeen                     time.Time
	Completed                    int // jobs completed
}

// jobSnap is a job's state copied under the lock; views are built from it outside the lock,
// so that tests polling Jobs do not hold up the requests.
type jobSnap struct {
	job
	holderName string
}

// snap copies j. Callers hold t.mu. The *string values are never changed in place, so they
// may be shared.
func snap(j *job) jobSnap {
	s := jobSnap{job: *j}
	s.holder = nil
	if j.holder != nil {
		s.holderName = j.holder.name
	}
	return s
}

func (s *jobSnap) view() JobView {
	j := &s.job
	v := JobView{
		Number:      j.number,
		Stage:       letter(j.stage),
		State:       JobOpen,
		Holder:      s.holderName,
		Data:        map[string]*string{},
		Outputs:     map[string]*string{},
		Completions: map[string]int{},
		Flags:       map[string]int{},
	}
	switch {
	case j.closed:
		v.State = JobClosed
	case j.pending:
		v.State = JobHeld
	}
	for st := 0; st < numStages; st++ {
		if p := j.data[st]; p != nil {
			c := *p
			v.Data[letter(st)] = &c
		}
		if p := j.outputs[st]; p != nil {
			c := *p
			v.Outputs[letter(st)] = &c
		}
		if n := j.completions[st]; n > 0 {
			v.Completions[letter(st)] = n
		}
		if n := j.flags[st]; n > 0 {
			v.Flags[letter(st)] = n
		}
	}
	return v
}

// Jobs returns a copy of every job, by number.
func (t *Tracker) Jobs() []JobView {
	t.mu.Lock()
	snaps := make([]jobSnap, len(t.jobs))
	for i, j := range t.jobs {
		snaps[i] = snap(j)
	}
	t.mu.Unlock()
	out := make([]JobView, len(snaps))
	for i := range snaps {
		out[i] = snaps[i].view()
	}
	return out
}

// Job returns a copy of job n, and false if there is no such job.
func (t *Tracker) Job(n int) (JobView, bool) {
	t.mu.Lock()
	if n < 1 || n > len(t.jobs) {
		t.mu.Unlock()
		return JobView{}, false
	}
	s := snap(t.jobs[n-1])
	t.mu.Unlock()
	return s.view(), true
}

func (t *Tracker) workerView(w *worker) WorkerView {
	v := WorkerView{
		Token: w.token, DisplayName: w.name, Nickname: w.nick, Stage: letter(w.stage),
		Progress: w.progress, LastSeen: w.lastSeen, Completed: w.completed,
	}
	if w.job != nil {
		v.Job = w.job.number
	}
	return v
}

// sortedWorkers returns the live workers in registration order. Callers hold t.mu.
func (t *Tracker) sortedWorkers() []*worker {
	ws := make([]*worker, 0, len(t.workers))
	for _, w := range t.workers {
		ws = append(ws, w)
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].seq < ws[j].seq })
	return ws
}

// Workers returns a copy of every registered worker, in registration order.
func (t *Tracker) Workers() []WorkerView {
	t.mu.Lock()
	defer t.mu.Unlock()
	ws := t.sortedWorkers()
	out := make([]WorkerView, len(ws))
	for i, w := range ws {
		out[i] = t.workerView(w)
	}
	return out
}

// Worker returns a copy of the worker with this token, and false if there is none.
func (t *Tracker) Worker(token string) (WorkerView, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.workers[token]
	if w == nil {
		return WorkerView{}, false
	}
	return t.workerView(w), true
}

// Leaderboard returns jobs completed by nickname (the upstream "user" table).
func (t *Tracker) Leaderboard() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int, len(t.users))
	for k, v := range t.users {
		out[k] = v
	}
	return out
}

// JobCounts returns how many jobs are open, held and closed. It is cheap enough to poll
// (Jobs copies every job).
func (t *Tracker) JobCounts() map[JobState]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := map[JobState]int{JobOpen: 0, JobHeld: 0, JobClosed: 0}
	for _, j := range t.jobs {
		switch {
		case j.closed:
			c[JobClosed]++
		case j.pending:
			c[JobHeld]++
		default:
			c[JobOpen]++
		}
	}
	return c
}
