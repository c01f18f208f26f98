package client

import (
	"context"
	"log/slog"
	"time"

	"github.com/distcompute/distcompute-go/session"
)

// run is the client's background goroutine: it sends progress text when Log
// changes it (latest wins) and, every heartbeat interval, sends the last
// text again to keep the worker alive and checks the worker's liveness.
// updateProgress answers 200 even for a deleted worker, so liveness is
// checked with validateWorker. It ends when ctx is cancelled (Close).
func (c *Client) run(ctx context.Context) {
	defer close(c.done)
	t := time.NewTicker(c.o.heartbeat)
	defer t.Stop()
	beats := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
			c.sendProgress(ctx)
		case <-t.C:
			beats++
			c.beat(ctx, beats%c.o.aliveEvery == 0)
		}
	}
}

// registerTimeout bounds a registration made by the heartbeat. Close
// cancels it at once.
const registerTimeout = 30 * time.Second

func (c *Client) sendProgress(ctx context.Context) {
	token, gone := c.token(), c.isGone()
	if token == "" || gone {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.heartbeat)
	defer cancel()
	if err := c.conn.UpdateProgress(ctx, token, c.progressText()); err != nil && ctx.Err() == nil {
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
