package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/distcompute/distcompute-go/internal/hooks"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/replay"
)

// Pool is n Clients of one process sharing one journal: each is its own
// worker (own token) in its own slot, named "<prefix>-<i>" (prefix "slot"
// unless WithSlot gives one). Each Client is used by one goroutine at a
// time for its actions, as a lone Client is; the journal's group commit lets
// the slots' durable appends share fsyncs.
type Pool struct {
	db      *journal.DB
	ownDB   bool
	clients []*Client
}

// DefaultPoolPrefix is the prefix of a Pool's slot names.
const DefaultPoolPrefix = "slot"

// OpenPool opens the journal once and starts n Clients (see Init), each
// recovering its own slot. Slots of the prefix numbered n or above that hold
// unsettled work (a bigger pool ran before) are settled and their sessions
// ended (bye). On error every Client started is closed.
func OpenPool(ctx context.Context, url, stage string, n int, opts ...Option) (*Pool, error) {
	if n < 1 {
		return nil, fmt.Errorf("client: pool: %w: %d clients", ErrInvalidArgument, n)
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if h := hooks.From(ctx); h != nil {
		o.hook = h
	}
	prefix := DefaultPoolPrefix
	if o.slotSet {
		prefix = o.slot
	}
	o.slot = prefix + "-0"
	if err := o.check(); err != nil {
		return nil, err
	}
	db, own, err := o.openJournal()
	if err != nil {
		return nil, err
	}
	p := &Pool{db: db, ownDB: own}
	for i := 0; i < n; i++ {
		name := prefix + "-" + strconv.Itoa(i)
		c, err := newClient(ctx, db, name, url, stage, o)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("client: pool slot %s: %w", name, err)
		}
		p.clients = append(p.clients, c)
	}
	if err := p.retire(ctx, prefix, n, o); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// retire settles slots of the prefix numbered n and above.
func (p *Pool) retire(ctx context.Context, prefix string, n int, o options) error {
	slots, err := p.db.Slots()
	if err != nil {
		return fmt.Errorf("client: pool: %w", err)
	}
	var errs []error
	for _, s := range slots {
		i, err := strconv.Atoi(strings.TrimPrefix(s, prefix+"-"))
		if !strings.HasPrefix(s, prefix+"-") || err != nil || i < n {
			continue
		}
		st, err := p.db.State(s)
		if err != nil || !replay.NeedsReplay(st) {
			continue
		}
		ro := replay.Options{Logger: o.logger.With("slot", s), HTTPClient: o.httpClient, Retry: o.retry, Bye: true}
		if _, err := replay.Slot(ctx, p.db, s, ro); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Clients returns the pool's clients, in slot order.
func (p *Pool) Clients() []*Client { return append([]*Client(nil), p.clients...) }

// Journal returns the shared journal, for reading (a status page's
// snapshot, say). Write to it only through the clients: their state is the
// journal's, and an event appended around them breaks their rules.
func (p *Pool) Journal() *journal.DB { return p.db }

// Close closes every client, then the journal. It does not say bye.
func (p *Pool) Close() error {
	var errs []error
	for _, c := range p.clients {
		errs = append(errs, c.Close())
	}
	if p.ownDB {
		errs = append(errs, p.db.Close())
		p.ownDB = false
	}
	return errors.Join(errs...)
}
