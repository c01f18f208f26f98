package trackertest

import (
	"sort"
	"sync"
	"time"
)

// Clock tells the tracker the time. It decides when a worker was last seen and, through
// Options.IdleTimeout, when it is idle. A Clock must be safe for concurrent use.
type Clock interface {
	Now() time.Time
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// FakeClock is a Clock that only moves when Advance is called. It is safe for concurrent use.
// A tracker served by Start or Serve with a FakeClock runs its idle sweep from Advance, on the
// caller's goroutine, so the sweep has happened when Advance returns.
type FakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	seq    int
}

type fakeTimer struct {
	at   time.Time
	seq  int
	f    func()
	dead bool
}

// NewFakeClock returns a FakeClock set to t.
func NewFakeClock(t time.Time) *FakeClock {
	return &FakeClock{now: t}
}

// Now returns the clock's current time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d (a negative d is ignored) and then runs, in time order,
// every function registered with AfterFunc that has come due.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	if d > 0 {
		c.now = c.now.Add(d)
	}
	c.mu.Unlock()
	for {
		c.mu.Lock()
		sort.Slice(c.timers, func(i, j int) bool {
			if !c.timers[i].at.Equal(c.timers[j].at) {
				return c.timers[i].at.Before(c.timers[j].at)
			}
			return c.timers[i].seq < c.timers[j].seq
		})
		var due *fakeTimer
		if len(c.timers) > 0 && !c.timers[0].at.After(c.now) {
			due = c.timers[0]
			c.timers = c.timers[1:]
		}
		c.mu.Unlock()
		if due == nil {
			return
		}
		if !due.dead {
			due.f()
		}
	}
}

// AfterFunc registers f to run once the clock has advanced by d. It returns a function that
// cancels the call if it has not run yet.
func (c *FakeClock) AfterFunc(d time.Duration, f func()) (stop func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &fakeTimer{at: c.now.Add(d), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		t.dead = true
	}
}
