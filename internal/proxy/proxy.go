package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/internal/preempt"
	"github.com/distcompute/distcompute-go/internal/statusserver"
	"github.com/distcompute/distcompute-go/journal"
)

// jobKey names a job at a stage.
type jobKey struct {
	stage  string
	number int
}

// poisonReason starts the reason of the "failed" event recording a poison job.
const poisonReason = "dcproxy: poison job: "

// Proxy is one Run.
type Proxy struct {
	cfg      Config
	log      *slog.Logger
	db       *journal.DB
	key      []byte
	tracker  *url.URL
	slotHTTP *http.Client // the slot clients': cfg.HTTPClient (with reachTransport) with acceptTransport
	addr     string       // the local server's address, host:port
	reach    *reachability
	disk     *statusserver.DiskState

	ctx  context.Context // ends with Run: background settles stop, pending stays journaled
	hard context.CancelFunc

	drainOnce sync.Once
	drainCh   chan struct{}
	drainMu   sync.Mutex
	drainSig  syscall.Signal
	drainEnd  time.Time
	failErr   error // what Run returns after a drain it started itself (ErrJournalUnwritable)

	mu       sync.Mutex
	workers  map[string]*local // by local token
	bySlot   map[string]*local
	nextSlot int
	poison   map[jobKey]bool
	deaths   map[jobKey]int
	progs    []*program
	busy     inflight // background settles and releases

	m metrics
}

// metrics are the proxy's counters, all safe for concurrent use.
type metrics struct {
	registered, adopted, claims, handedBack, completed, flagged atomic.Int64
	resentAnswered, released, deadWorkers, poisoned             atomic.Int64
	programRuns, programFailures, preemptions                   atomic.Int64
	passedThrough                                               atomic.Int64
}

// Run serves the tracker's protocol on ln until ctx ends, a stop signal
// arrives on cfg.Signals (drain, then return nil), a preemption notice
// arrives (same), or, with cfg.Command, every program copy has ended for
// good. It opens the journal and replays every local worker's slot before
// it serves. Errors: ErrConfig, journal errors, ErrStopped after a hard
// stop, ErrJournalUnwritable after the journal stayed unwritable past
// cfg.JournalDeadline (it drained first).
func Run(ctx context.Context, cfg Config, ln net.Listener) error {
	if err := cfg.setDefaults(); err != nil {
		return err
	}
	tu, err := url.Parse(strings.TrimRight(cfg.TrackerURL, "/"))
	if err != nil || (tu.Scheme != "http" && tu.Scheme != "https") || tu.Host == "" {
		return fmt.Errorf("%w: tracker URL %q is not an http(s) URL", ErrConfig, cfg.TrackerURL)
	}
	p := &Proxy{
		cfg: cfg, log: cfg.Logger, tracker: tu, addr: ln.Addr().String(),
		drainCh: make(chan struct{}),
		workers: map[string]*local{}, bySlot: map[string]*local{},
		poison: map[jobKey]bool{}, deaths: map[jobKey]int{},
	}
	p.ctx, p.hard = context.WithCancel(ctx)
	defer p.hard()
	p.reach = newReachability(tu, p.log)
	p.cfg.HTTPClient = reachClient(cfg.HTTPClient, p.reach)
	p.slotHTTP = watchedClient(p.cfg.HTTPClient)

	jpath := cfg.Journal
	if jpath == "" {
		if jpath, err = client.DefaultJournalPath(); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(jpath), 0o700); err != nil {
		return fmt.Errorf("proxy: journal directory: %w", err)
	}
	p.cfg.Journal = jpath
	p.disk = statusserver.NewDiskState(statusserver.DiskConfig{Path: jpath, Log: p.log, Deadline: p.cfg.JournalDeadline,
		Expired: p.journalExpired, Waits: "the programs' calls wait and are tried again; nothing is lost",
		SlotName: func(n int) string { return SlotPrefix + strconv.Itoa(n) }})
	defer p.disk.Stop() // a spell's deadline must not fire after Run returned

	stopSignals := p.watchSignals()
	defer stopSignals()

	// Replay first, then serve.
	if err := p.openJournal(jpath); err != nil {
		switch {
		case p.ctx.Err() != nil:
			return ErrStopped
		case errors.Is(err, errDrainedAtStart):
			return nil
		}
		return err
	}
	defer p.db.Close()
	defer p.closeWorkers()
	if cfg.PreemptionNotice != "" {
		wctx, cancel := context.WithCancel(p.ctx)
		defer cancel()
		go p.watchPreemption(wctx)
	}

	if cfg.StatusAddr != "" {
		stop, err := p.serveStatus()
		if err != nil {
			return err
		}
		defer stop()
	}
	srv := &http.Server{Handler: p.handler(), ReadHeaderTimeout: 30 * time.Second, ConnContext: withConn}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if cfg.Listening != nil {
		cfg.Listening(ln.Addr())
	}
	p.log.Info("serving the tracker's protocol", "addr", p.addr, "tracker", tu.String(), "ack", string(cfg.Ack))

	if len(cfg.Command) == 0 {
		go p.watchSilence()
	}
	progsDone := p.startPrograms()

	select {
	case <-p.ctx.Done():
	case <-p.drainCh:
	case <-progsDone:
		p.log.Info("every program ended: stopping")
		p.drain(syscall.SIGTERM)
	case err := <-serveErr:
		return fmt.Errorf("proxy: serve: %w", err)
	}
	if p.ctx.Err() == nil {
		p.finishDrain(progsDone)
	}
	stopped := ctx.Err() != nil || (p.ctx.Err() != nil && !p.isDraining())
	// End the background settles (what is unsettled stays in the journal,
	// resent at the next start), then every connection: a program's
	// request cut off here is resent by its client to the next proxy.
	p.hard()
	_ = srv.Close()
	if stopped {
		return ErrStopped
	}
	p.drainMu.Lock()
	defer p.drainMu.Unlock()
	return p.failErr
}

// errDrainedAtStart: a stop signal came while the proxy waited for its
// journal at the start; nothing was claimed, Run returns nil.
var errDrainedAtStart = errors.New("proxy: drained while waiting for the journal")

// openJournal opens the journal (and the tokens' key beside it) and
// replays every local worker's slot (reload). A journal that cannot be
// written at the start (a full, read-only or failing disk: the key cannot
// be written, or a slot's recovery cannot record what it finds) is tried
// again, with pauses doubling from 1 s to 30 s, until
// Config.JournalDeadline: a proxy started on a full disk waits for space
// rather than exit, as dcworker does. Other errors (a damaged or locked
// journal) return at once.
func (p *Proxy) openJournal(jpath string) error {
	pause := time.Second
	var since time.Time
	for {
		err := p.tryOpen(jpath)
		if err == nil {
			if !since.IsZero() {
				p.log.Info(fmt.Sprintf("journal %s writable again: starting", jpath), "down_for", time.Since(since).Round(time.Millisecond))
			}
			return nil
		}
		if !unwritable(err) || p.ctx.Err() != nil {
			return err
		}
		p.disk.Failures.Add(1)
		if since.IsZero() {
			since = time.Now()
			p.log.Error(fmt.Sprintf("journal %s cannot be written: not starting until it can", jpath),
				"err", err.Error(), "retry_in", pause, "deadline", p.cfg.JournalDeadline)
		}
		if time.Since(since) >= p.cfg.JournalDeadline {
			return fmt.Errorf("%w since %s (%s, journal deadline %s): %w", ErrJournalUnwritable,
				since.UTC().Format(time.RFC3339), time.Since(since).Round(time.Second), p.cfg.JournalDeadline, err)
		}
		t := time.NewTimer(min(pause, time.Until(since.Add(p.cfg.JournalDeadline))))
		select {
		case <-p.ctx.Done():
			t.Stop()
			return err
		case <-p.drainCh:
			t.Stop()
			p.log.Info("stopped while waiting for the journal: nothing was claimed")
			return errDrainedAtStart
		case <-t.C:
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// tryOpen is one attempt of openJournal. On failure nothing stays open.
func (p *Proxy) tryOpen(jpath string) error {
	key, err := keyFile(jpath + ".key")
	if err != nil {
		return err
	}
	p.key = key
	db, err := journal.Open(jpath, &journal.Options{Logger: p.log, MaxSize: p.cfg.JournalMaxSize})
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	p.db = db
	err = p.reload()
	if err == nil {
		// A journal that opens may still refuse writes (a full disk):
		// then nothing would be claimed, so nothing is served yet.
		err = db.Writable()
	}
	if err != nil {
		p.closeWorkers()
		p.mu.Lock()
		p.workers, p.bySlot, p.poison, p.nextSlot = map[string]*local{}, map[string]*local{}, map[jobKey]bool{}, 0
		p.mu.Unlock()
		_ = db.Close()
		p.db = nil
		return err
	}
	return nil
}

// unwritable reports an error of opening the journal that says it cannot
// be written now (rather than that it is damaged, locked or of another
// format).
func unwritable(err error) bool {
	return journalRefused(err) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EIO)
}

// journalExpired drains the proxy and makes Run return ErrJournalUnwritable.
func (p *Proxy) journalExpired(since time.Time, err error) {
	p.drainMu.Lock()
	if p.failErr == nil {
		p.failErr = fmt.Errorf("%w since %s (%s, journal deadline %s): %w", ErrJournalUnwritable,
			since.UTC().Format(time.RFC3339), time.Since(since).Round(time.Second), p.cfg.JournalDeadline, err)
	}
	p.drainMu.Unlock()
	p.log.Error("the journal stayed unwritable past the deadline: draining and stopping", "path", p.cfg.Journal,
		"since", since.UTC().Format(time.RFC3339), "deadline", p.cfg.JournalDeadline)
	p.drain(syscall.SIGTERM)
}

// reload opens every local worker slot of the journal that has a session,
// replaying its unsettled work (the client's recovery), and reads the poison
// jobs recorded earlier.
func (p *Proxy) reload() error {
	slots, err := p.db.Slots()
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	err = p.db.Events(journal.Filter{}, func(e journal.Event) error {
		if e.Kind == journal.KindFailed && strings.HasPrefix(e.Reason, poisonReason) {
			p.poison[jobKey{e.Stage, e.Job}] = true
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("proxy: reading the journal: %w", err)
	}
	type todo struct {
		slot string
		st   journal.State
		last lastAction
	}
	var work []todo
	for _, s := range slots {
		n, ok := slotIndex(s)
		if !ok {
			continue
		}
		p.nextSlot = max(p.nextSlot, n+1)
		st, err := p.db.State(s)
		if err != nil {
			return fmt.Errorf("proxy: %w", err)
		}
		if st.Session == nil || st.Closed {
			continue
		}
		la, err := lastActions(p.db, s)
		if err != nil {
			return fmt.Errorf("proxy: %w", err)
		}
		work = append(work, todo{s, st, la})
	}
	// The slots are independent: replay them side by side, so that a
	// restart over a slow network takes the time of one slot, not the sum.
	var (
		wg   sync.WaitGroup
		emu  sync.Mutex
		errs []error
		sem  = make(chan struct{}, 16)
	)
	for _, w := range work {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			s, st := w.slot, w.st
			c, err := p.openSlot(p.ctx, s, st.Session.Stage, st.Session.Nickname)
			if err != nil {
				emu.Lock()
				errs = append(errs, fmt.Errorf("proxy: slot %s: %w", s, err))
				emu.Unlock()
				return
			}
			l := &local{slotName: s, stage: st.Session.Stage, nickname: st.Session.Nickname, c: c, prog: -1, last: w.last}
			l.lastSeen.Store(p.reloadedSeen(st.LastTime).UnixNano())
			p.mu.Lock()
			if len(p.cfg.Command) > 0 {
				// The programs died with the proxy: their workers wait for
				// the next registration at their stage.
				l.dead = true
			} else {
				l.token = slotToken(p.key, s)
				p.workers[l.token] = l
			}
			p.bySlot[s] = l
			p.mu.Unlock()
			n, _, held := c.job()
			p.log.Info("local worker recovered from the journal", "slot", s, "stage", l.stage, "job", n, "held", held)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// reloadedSeen is when a recovered worker's program counts as last seen:
// its slot's last event, but no earlier than what leaves a live program
// reconnectAllowance to come back (the upstream client retries every
// 2.5 s). Counting from the restart instead would let a proxy restarted
// more often than DeadAfter keep dead programs' jobs forever.
func (p *Proxy) reloadedSeen(last time.Time) time.Time {
	allowance := min(p.cfg.DeadAfter/2, time.Minute)
	floor := time.Now().Add(-p.cfg.DeadAfter + allowance)
	if last.After(floor) {
		return last
	}
	return floor
}

func (p *Proxy) openSlot(ctx context.Context, slot, stage, nickname string) (slotClient, error) {
	return openSlot(ctx, slotOptions{
		url: p.cfg.TrackerURL, stage: stage, nickname: nickname, slot: slot, db: p.db,
		http: p.slotHTTP, logger: p.log, retry: p.cfg.Retry, extra: p.cfg.ClientOptions, hook: p.cfg.hook,
	})
}

func (p *Proxy) closeWorkers() {
	<-p.busy.idle()
	p.mu.Lock()
	ls := make([]*local, 0, len(p.bySlot))
	for _, l := range p.bySlot {
		ls = append(ls, l)
	}
	p.mu.Unlock()
	for _, l := range ls {
		_ = l.c.close()
	}
}

// remove forgets l: its token is unknown from now on.
func (p *Proxy) remove(l *local) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l.gone = true
	if p.workers[l.token] == l {
		delete(p.workers, l.token)
	}
	if p.bySlot[l.slotName] == l {
		delete(p.bySlot, l.slotName)
	}
}

// release hands l's job back to the tracker and forgets l. The caller holds l.mu.
func (p *Proxy) release(ctx context.Context, l *local, why string) {
	n, _, held := l.c.job()
	if err := l.c.release(ctx); err != nil {
		p.log.Warn("releasing a local worker's job failed; it stays in the journal", "slot", l.slotName, "job", n, "err", err)
	} else if held {
		p.m.released.Add(1)
		p.log.Info("job released", "slot", l.slotName, "job", n, "why", why)
	}
	p.remove(l)
	_ = l.c.close()
}

// watchSilence declares dead (and releases the job of) every local worker
// whose program sent nothing for DeadAfter and has no request in flight.
func (p *Proxy) watchSilence() {
	t := time.NewTicker(max(p.cfg.DeadAfter/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-p.drainCh:
			return
		case <-t.C:
		}
		// Counted as busy before the drain is checked: a drain that
		// started earlier is seen here, one that starts later waits for
		// the releases below.
		p.busy.add()
		if p.isDraining() {
			p.busy.done()
			return
		}
		p.releaseSilent()
		p.busy.done()
	}
}

// releaseSilent releases the workers silent for DeadAfter.
func (p *Proxy) releaseSilent() {
	limit := time.Now().Add(-p.cfg.DeadAfter).UnixNano()
	p.mu.Lock()
	var silent []*local
	for _, l := range p.workers {
		if l.inflight.Load() == 0 && l.lastSeen.Load() < limit {
			silent = append(silent, l)
		}
	}
	p.mu.Unlock()
	for _, l := range silent {
		if !l.mu.TryLock() {
			continue // an action runs: not silent
		}
		if l.inflight.Load() == 0 && l.lastSeen.Load() < limit && !l.gone {
			p.m.deadWorkers.Add(1)
			p.log.Warn("local worker silent: counted as dead", "slot", l.slotName, "silent_for", p.cfg.DeadAfter)
			_ = p.waitSettle(p.ctx, l)
			p.release(p.ctx, l, "its program was silent for "+p.cfg.DeadAfter.String())
		}
		l.mu.Unlock()
	}
}

// watchSignals turns cfg.Signals into drains: the first drains, the second
// stops at once.
func (p *Proxy) watchSignals() func() {
	done := make(chan struct{})
	if p.cfg.Signals == nil {
		return func() {}
	}
	go func() {
		n := 0
		for {
			select {
			case <-done:
				return
			case s := <-p.cfg.Signals:
				n++
				sig, ok := s.(syscall.Signal)
				if !ok {
					sig = syscall.SIGTERM
				}
				if n == 1 {
					p.log.Info("stop signal: draining", "signal", sig.String(), "grace", p.cfg.Grace)
					p.drain(sig)
				} else {
					p.log.Warn("second stop signal: stopping at once", "signal", sig.String())
					p.hard()
				}
			}
		}
	}()
	return func() { close(done) }
}

func (p *Proxy) watchPreemption(ctx context.Context) {
	n, err := preempt.Watch(ctx, p.cfg.PreemptionNotice, &preempt.Options{
		Addr: p.cfg.MetadataAddr, HTTPClient: p.cfg.MetadataClient, Interval: p.cfg.MetadataInterval, Logger: p.log,
	})
	if err != nil {
		return
	}
	p.m.preemptions.Add(1)
	p.log.Warn("preemption notice: draining", "provider", string(n.Provider), "action", n.Action, "grace", p.cfg.Grace)
	p.drain(syscall.SIGTERM)
}

// drain starts draining once: no more claims are made, programs get sig.
func (p *Proxy) drain(sig syscall.Signal) {
	p.drainOnce.Do(func() {
		p.drainMu.Lock()
		p.drainSig, p.drainEnd = sig, time.Now().Add(p.cfg.Grace)
		p.drainMu.Unlock()
		close(p.drainCh)
	})
}

func (p *Proxy) isDraining() bool {
	select {
	case <-p.drainCh:
		return true
	default:
		return false
	}
}

// finishDrain passes the stop signal to the programs, waits for them and
// for the settles in flight until the grace period ends, then releases held
// jobs if asked.
func (p *Proxy) finishDrain(progsDone <-chan struct{}) {
	p.drainMu.Lock()
	sig, end := p.drainSig, p.drainEnd
	p.drainMu.Unlock()
	if progsDone == nil {
		closed := make(chan struct{})
		close(closed)
		progsDone = closed
	}
	p.signalPrograms(sig)
	t := time.NewTimer(time.Until(end))
	defer t.Stop()
	select {
	case <-progsDone:
	case <-t.C:
		p.log.Warn("grace period over: killing the programs")
		p.signalPrograms(syscall.SIGKILL)
		<-progsDone
	case <-p.ctx.Done():
		p.signalPrograms(syscall.SIGKILL)
		<-progsDone
		return
	}
	select {
	case <-p.busy.idle():
	case <-t.C:
		p.log.Warn("grace period over: unsettled work stays in the journal")
		p.hard()
		return
	case <-p.ctx.Done():
		return
	}
	if !p.cfg.ReleaseOnExit {
		return
	}
	p.mu.Lock()
	ls := make([]*local, 0, len(p.bySlot))
	for _, l := range p.bySlot {
		ls = append(ls, l)
	}
	p.mu.Unlock()
	for _, l := range ls {
		if _, _, held := l.c.job(); !held {
			continue
		}
		ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
		l.mu.Lock()
		p.release(ctx, l, "released on exit")
		l.mu.Unlock()
		cancel()
	}
}

// inflight counts background work (settles, releases) that a drain waits
// for. Unlike a WaitGroup, work may start while someone waits.
type inflight struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n drops to 0
}

func (f *inflight) add() {
	f.mu.Lock()
	if f.n == 0 {
		f.zero = make(chan struct{})
	}
	f.n++
	f.mu.Unlock()
}

func (f *inflight) done() {
	f.mu.Lock()
	f.n--
	if f.n == 0 {
		close(f.zero)
	}
	f.mu.Unlock()
}

// idle returns a channel closed once no work is in flight.
func (f *inflight) idle() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		c := make(chan struct{})
		close(c)
		return c
	}
	return f.zero
}
