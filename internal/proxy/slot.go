package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/internal/hooks"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/session"
)

// slotClient is all the proxy uses of a journaled worker (package client),
// kept small so that a change of the client's API touches this file only.
// Every settle rule (a resent completion's 403 means applied, never claim
// while a completion is pending, recovery on start) lives in the client and
// package replay; the proxy only decides when to call what.
type slotClient interface {
	// claim claims a new job: the job held, if any, is released first.
	claim(ctx context.Context) error
	// complete records output durably, calls durable, then sends it and
	// settles it (see client.CompleteJob); resent calls resend the
	// recorded output.
	complete(ctx context.Context, output session.Payload, durable func()) error
	// flag records the flag durably, calls durable, then sends and settles it.
	flag(ctx context.Context, durable func()) error
	// release hands the held job back to the tracker and ends the worker
	// (bye); the next claim registers a new worker.
	release(ctx context.Context) error
	bye(ctx context.Context) error
	// journalHealth is nil when the journal can be written; it reopens a
	// journal that a failed write stopped (see client.JournalHealth).
	journalHealth() error
	log(text string)
	job() (number int, data session.Payload, held bool)
	names() (displayName, project, stageName string)
	stage() string
	slot() string
	sessionsLost() int
	close() error
}

// slotOptions are what the proxy asks of a slot's client.
type slotOptions struct {
	url      string
	stage    string
	nickname string
	slot     string
	db       *journal.DB
	http     *http.Client
	logger   *slog.Logger
	retry    *session.RetryPolicy
	extra    []client.Option
	hook     hooks.Func // also called at every hook point; nil: none
}

// openSlot starts (or, for a slot with history, recovers) the journaled
// worker of one local worker.
func openSlot(ctx context.Context, o slotOptions) (slotClient, error) {
	c := &clientSlot{also: o.hook}
	opts := []client.Option{
		client.WithJournalDB(o.db),
		client.WithSlot(o.slot),
		client.WithNickname(o.nickname),
		client.WithLogger(o.logger),
	}
	if o.http != nil {
		opts = append(opts, client.WithHTTPClient(o.http))
	}
	if o.retry != nil {
		opts = append(opts, client.WithRetry(*o.retry))
	}
	opts = append(opts, o.extra...)
	cl, err := client.Init(hooks.With(ctx, c.hook), o.url, o.stage, opts...)
	if err != nil {
		return nil, err
	}
	c.c = cl
	return c, nil
}

// clientSlot is slotClient over a *client.Client.
type clientSlot struct {
	c *client.Client

	also hooks.Func // Config.hook

	mu      sync.Mutex
	durable func() // called once the pending action is on disk
}

// hook runs on the action's goroutine with the client's lock held: it tells
// the waiting handler that a completion or flag is durable.
func (s *clientSlot) hook(p hooks.Point, op string) {
	if s.also != nil {
		s.also(p, op)
	}
	if p != hooks.AfterJournal || (op != "complete" && op != "flag") {
		return
	}
	s.mu.Lock()
	fn := s.durable
	s.durable = nil
	s.mu.Unlock()
	if fn != nil {
		fn()
	}
}

func (s *clientSlot) setDurable(fn func()) {
	s.mu.Lock()
	s.durable = fn
	s.mu.Unlock()
}

// claim: NewJob hands back a job still held, so one the program was given
// and did not finish is released first (as the tracker's newJob does).
func (s *clientSlot) claim(ctx context.Context) error {
	if s.c.HasJob() {
		err := s.c.Release(ctx)
		if err != nil && !errors.Is(err, client.ErrNoJobHeld) && !errors.Is(err, client.ErrWorkerGone) {
			return err
		}
	}
	return s.c.NewJob(ctx)
}

func (s *clientSlot) complete(ctx context.Context, out session.Payload, durable func()) error {
	s.setDurable(durable)
	defer s.setDurable(nil)
	return s.c.CompleteJob(ctx, out)
}

func (s *clientSlot) flag(ctx context.Context, durable func()) error {
	s.setDurable(durable)
	defer s.setDurable(nil)
	return s.c.FlagInvalidData(ctx)
}

// release: the protocol has no release call; bye re-opens the held job.
func (s *clientSlot) release(ctx context.Context) error { return s.c.Bye(ctx) }
func (s *clientSlot) bye(ctx context.Context) error     { return s.c.Bye(ctx) }
func (s *clientSlot) log(text string)                   { s.c.Log(text) }
func (s *clientSlot) journalHealth() error              { return s.c.JournalHealth() }

func (s *clientSlot) job() (int, session.Payload, bool) {
	return s.c.JobID(), s.c.Job(), s.c.HasJob()
}

func (s *clientSlot) names() (string, string, string) {
	return s.c.DisplayName(), s.c.Project(), s.c.StageName()
}

func (s *clientSlot) stage() string     { return s.c.Stage() }
func (s *clientSlot) slot() string      { return s.c.Slot() }
func (s *clientSlot) sessionsLost() int { return s.c.SessionsLost() }
func (s *clientSlot) close() error      { return s.c.Close() }
