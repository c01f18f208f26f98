package client

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distcompute/distcompute-go/session"
)

// run is the client's background goroutine: it sends the text Log gave
// (latest wins) when it is due, progressDelay after the Log (see
// progressTimer), and, every heartbeat interval, sends the last text again
// to keep the worker alive and checks the worker's liveness. updateProgress
// answers 200 even for a deleted worker, so liveness is checked with
// validateWorker. It ends when ctx is cancelled (Close).
//
// A Log text is not sent at once: text that a newer Log replaces, or that a
// completion, flag or release makes stale (the job it was logged for is no
// longer held), within progressDelay is never sent. A job of a few
// milliseconds, which logs and completes, then costs two requests, not
// three, and a program that logs in a tight loop sends one text per
// progressDelay. The journal has every text in the meantime (AppendProgress).
func (c *Client) run(ctx context.Context) {
	defer close(c.done)
	defer c.prog.stop()
	t := time.NewTicker(c.o.heartbeat)
	defer t.Stop()
	var sent *progressText // the Log text sent last
	beats := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick: // a Log text is due
			c.prog.armed.Store(false) // a Log from now on arms the timer again
			if p := c.progress.Load(); p != sent && p.gen == c.gen.Load() && p.text != "" {
				sent = p
				c.sendText(ctx, p.text)
			}
		case <-t.C:
			beats++
			c.beat(ctx, beats%c.o.aliveEvery == 0)
		}
	}
}

// progressDelay is how long a Log text waits before it is sent (at most the
// heartbeat interval): long enough for a short job to complete first, short
// enough for a dashboard.
const progressDelay = 500 * time.Millisecond

// progressTimer makes a Log text due progressDelay after the Log that
// found no text waiting: Log arms it (an atomic load when it is armed
// already, so a Log in a tight loop costs no wake-up of the background
// goroutine), and when it fires it kicks run, which sends the latest text.
type progressTimer struct {
	armed atomic.Bool
	mu    sync.Mutex // guards t and done
	t     *time.Timer
	done  bool
}

// logged arms the timer unless a text is waiting already. Called by Log.
func (c *Client) logged() {
	if c.prog.armed.Load() || !c.prog.armed.CompareAndSwap(false, true) {
		return
	}
	d := progressDelay
	if c.o.progressDelay > 0 {
		d = c.o.progressDelay
	}
	d = min(d, c.o.heartbeat)
	p := &c.prog
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.done:
	case p.t == nil:
		p.t = time.AfterFunc(d, func() {
			select {
			case c.kick <- struct{}{}:
			default:
			}
		})
	default:
		p.t.Reset(d)
	}
}

// stop stops the timer for good (the client closes).
func (p *progressTimer) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = true
	if p.t != nil {
		p.t.Stop()
	}
}

// registerTimeout bounds a registration made by the heartbeat. Close
// cancels it at once.
const registerTimeout = 30 * time.Second

// sendProgress sends the text the tracker should show now (progressText):
// the heartbeat's keep-alive.
func (c *Client) sendProgress(ctx context.Context) { c.sendText(ctx, c.progressText()) }

// sendText sends text as the worker's progress, if the slot has a session.
func (c *Client) sendText(ctx context.Context, text string) {
	token, gone := c.token(), c.isGone()
	if token == "" || gone {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.heartbeat)
	defer cancel()
	if err := c.conn.UpdateProgress(ctx, token, text); err != nil && ctx.Err() == nil {
		c.log.Debug("progress not sent", slog.String("err", err.Error()))
	}
}

func (c *Client) beat(ctx context.Context, check bool) {
	st := c.slotState()
	c.smu.RLock()
	gone, want := c.gone, c.wantSession
	c.smu.RUnlock()
	token, hasJob := "", st.Job != nil
	if st.Session != nil {
		token = st.Session.Token
	}
	if token != "" && !gone {
		c.sendProgress(ctx)
		if check {
			cctx, cancel := context.WithTimeout(ctx, c.o.heartbeat)
			alive, err := c.conn.IsAlive(cctx, token)
			cancel()
			switch {
			case err != nil:
				c.log.Debug("liveness not checked", slog.String("err", err.Error()))
			case !alive:
				c.markGone(token, "validateWorker answered False on a heartbeat")
				gone = true
			}
		}
	}
	// A worker lost while waiting for jobs is replaced at once, so that the
	// heartbeat keeps a worker alive. One lost while holding a job is left
	// to the program's next action (CompleteJob keeps the output).
	if !want || hasJob || (token != "" && !gone) || ctx.Err() != nil {
		return
	}
	if !c.mu.TryLock() {
		return // an action is running; it will register
	}
	defer c.mu.Unlock()
	if c.closed.Load() || c.held() != nil || !c.wantSession {
		return
	}
	// Not bounded by the heartbeat interval: a registration cut off after
	// the tracker applied it leaves a worker the client never learns of
	// (it holds no job and times out at the tracker, but it is a leak).
	cctx, cancel := context.WithTimeout(ctx, max(c.o.heartbeat, registerTimeout))
	defer cancel()
	if err := c.ensureSession(cctx); err != nil {
		c.log.Warn("could not register afresh; will retry", slog.String("err", err.Error()))
		return
	}
	c.log.Info("registered afresh after the worker was lost", slog.String("token", session.Redact(c.token())))
}
