// Package hooks lets crash tests and the demo stop a client at the points of
// an action where a crash matters: after its durable record is written and
// before its request is sent, and after its answer arrived and before the
// outcome is recorded. It is internal so that the seam is not part of the
// client's API: a hook travels in the context given to client.Init or
// client.OpenPool.
package hooks

import "context"

// Point is where in an action a hook is called.
type Point string

const (
	// AfterJournal: the action's durable record is written, its request not
	// yet sent (for "register": the registration is recorded and the token
	// not yet used).
	AfterJournal Point = "after-journal"
	// AfterSend: the answer arrived, its outcome is not yet recorded.
	AfterSend Point = "after-send"
)

// Func is called at p of the action op ("register", "claim", "complete",
// "flag", "bye", "checkpoint"; recovery's resends call it with AfterSend
// too). It runs on the action's goroutine with the slot's lock held.
type Func func(p Point, op string)

type key struct{}

// With returns ctx carrying f, for client.Init or client.OpenPool.
func With(ctx context.Context, f Func) context.Context {
	return context.WithValue(ctx, key{}, f)
}

// From returns the hook ctx carries, or nil.
func From(ctx context.Context) Func {
	f, _ := ctx.Value(key{}).(Func)
	return f
}
