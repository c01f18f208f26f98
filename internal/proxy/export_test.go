package proxy

import "github.com/distcompute/distcompute-go/internal/hooks"

// SetHook has the slots' clients call f at every hook point ("after-journal",
// "after-send"), on the action's goroutine with the client's lock held.
func SetHook(c *Config, f func(point, op string)) {
	c.hook = func(p hooks.Point, op string) { f(string(p), op) }
}
