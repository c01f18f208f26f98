package client

import (
	"time"

	"github.com/distcompute/distcompute-go/internal/hooks"
	"github.com/distcompute/distcompute-go/journal"
)

// WithHook installs fn as the client's crash-test hook (outside this
// package's tests a hook travels in Init's context: internal/hooks).
func WithHook(fn hooks.Func) Option { return func(o *options) { o.hook = fn } }

// WithProgressDelay sets how long a Log text waits before it is sent.
func WithProgressDelay(d time.Duration) Option { return func(o *options) { o.progressDelay = d } }

// Journal returns the client's journal.
func (c *Client) Journal() *journal.DB { return c.db }
