package proxy

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distcompute/distcompute-go/journal"
)

// local is one local worker: a registration by a program, backed by one
// journal slot and its client.
type local struct {
	token    string // the local token (a secret, like the tracker's)
	slotName string
	stage    string
	nickname string
	c        slotClient

	lastSeen atomic.Int64 // unix nanoseconds of the program's last request
	inflight atomic.Int32 // requests of the program being served

	// mu serialises the worker's actions (newJob, completeJob, flag, bye),
	// as the tracker needs for one token. The fields below are guarded by
	// the proxy's mu.
	mu       sync.Mutex
	settling chan struct{} // closed when the background settle ends; nil if none

	prog      int           // program copy that registered it; -1 without Command
	dead      bool          // its program died: adoptable by the next registration at its stage
	gone      bool          // removed: its token is unknown from now on
	delivered int           // job number handed to the program in this process's lifetime
	ahead     bool          // the job held was claimed ahead (see claimAhead), durable, not handed to the program yet
	wantAhead bool          // a claim ahead is asked for and not started; a newJob, completion, flag or bye cancels it
	aheadRun  chan struct{} // closed when the claim ahead in flight ends; nil if none
	last      lastAction
	progress  string // the program's latest progress text for its job

	shown      string    // the state GET /status last showed
	shownSince time.Time // when it first showed it
}

// lastAction is the worker's last completion or flag, so that a resend of
// it (the upstream client resends after a broken connection) is answered
// as applied rather than 403.
type lastAction struct {
	kind   journal.Kind // KindCompletionPending, KindFlagPending, or "" (a claim since)
	job    int
	output string
}

func (l *local) touch() { l.lastSeen.Store(time.Now().UnixNano()) }

// keyFile returns the proxy's secret key for local tokens, creating it
// (0600) beside the journal the first time.
func keyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(b) >= 32 {
		return b[:32], nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("proxy: token key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	// Written whole to a new file, then renamed over: a crash leaves the
	// old state (no key) or the new one, and a failed write (a full disk)
	// leaves nothing behind.
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("proxy: token key: %w", err)
	}
	_, err = f.Write(key)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("proxy: token key: %w", err)
	}
	// The new name, durable too (where the system can sync a directory).
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return key, nil
}

// slotToken is the local token of a slot: a UUID4-shaped HMAC of the slot's
// name, so that a proxy restarted on the same journal (and key) recognises
// the tokens its programs still hold, without storing them.
func slotToken(key []byte, slot string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("dcproxy local token\x00" + slot))
	return uuidOf(m.Sum(nil))
}

// randomToken is a fresh local token (a worker adopted by another program).
func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return uuidOf(b)
}

func uuidOf(b []byte) string {
	u := make([]byte, 16)
	copy(u, b)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	h := fmt.Sprintf("%x", u)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// slotIndex parses "w-12" to 12.
func slotIndex(slot string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimPrefix(slot, SlotPrefix))
	return n, err == nil && strings.HasPrefix(slot, SlotPrefix) && n >= 0
}

// lastActions reads a slot's history for its last completion or flag not
// followed by a claim.
func lastActions(db *journal.DB, slot string) (lastAction, error) {
	var la lastAction
	err := db.Events(journal.Filter{Slot: slot}, func(e journal.Event) error {
		switch e.Kind {
		case journal.KindCompletionPending:
			la = lastAction{kind: e.Kind, job: e.Job}
			if e.Output != nil {
				la.output = *e.Output
			}
		case journal.KindFlagPending:
			la = lastAction{kind: e.Kind, job: e.Job}
		case journal.KindClaimed:
			la = lastAction{}
		}
		return nil
	})
	return la, err
}

// waitSettle waits for l's background settle (AckJournal) to end.
func (p *Proxy) waitSettle(ctx context.Context, l *local) error {
	p.mu.Lock()
	ch := l.settling
	p.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// conn is what the proxy knows of one connection of a program: the local
// worker of its last token call, which names the program asking jobCount
// (a call without a token) on the same connection.
type conn struct {
	last atomic.Pointer[local]
}

type connKey struct{}

// withConn is the local server's ConnContext.
func withConn(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, &conn{})
}

func connOf(r *http.Request) *conn {
	c, _ := r.Context().Value(connKey{}).(*conn)
	return c
}

// askerOf is the local worker whose program sent r, as far as its
// connection tells (nil: unknown).
func askerOf(r *http.Request) *local {
	if c := connOf(r); c != nil {
		return c.last.Load()
	}
	return nil
}
