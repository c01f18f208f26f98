// Package browsertest drives a headless Chromium through the DevTools protocol
// (chromedp) for tests that must see a page as a browser renders it: the
// dcjournal report and dcworker's live page.
//
// [Start] skips the test with a clear message when no Chromium is installed, except
// in CI (CI=true), where a missing browser fails the test: .ci/run installs
// Debian's chromium when it is missing. The browser gets a fresh profile, no
// network of its own (no component updates, sync or QUIC) and is stopped when the
// test ends.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

// Viewport is the browser window's size in CSS pixels.
const (
	ViewportWidth  = 1400
	ViewportHeight = 900
)

// binaries are the names Chromium is installed under, most likely first.
var binaries = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// Start starts a headless Chromium for t and returns a context of a fresh tab
// whose viewport is ViewportWidth × ViewportHeight; every action of the test
// runs under it. The browser stops at the end of the test, or at timeout.
func Start(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	path := ""
	for _, name := range binaries {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no Chromium found (looked for %v) and CI=true: .ci/run installs Debian's chromium; this test must run in CI", binaries)
		}
		t.Skipf("skipped: no Chromium found (looked for %v); install one (Debian: apt-get install chromium) to run this test", binaries)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "chromium-profile")),
		chromedp.WindowSize(ViewportWidth, ViewportHeight),
	)
	tab, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancel()
	})
	if err := chromedp.Do(tab, chromedp.EmulateViewport(ViewportWidth, ViewportHeight)); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return tab
}

// Resize sets the viewport's size (the page sees a resize event).
func Resize(t testing.TB, tab context.Context, width, height int64) {
	t.Helper()
	if err := chromedp.Do(tab, chromedp.EmulateViewport(width, height)); err != nil {
		t.Fatalf("resize: %v", err)
	}
}

// Open loads url and waits until its load event.
func Open(t testing.TB, tab context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(tab, chromedp.Navigate(url)); err != nil {
		t.Fatalf("opening %s: %v", url, err)
	}
}

// Eval evaluates a JavaScript expression in the page and returns its value.
func Eval[T any](t testing.TB, tab context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(tab, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// WaitFor waits until a JavaScript expression is true in the page (polled every
// 50 ms), failing the test if it is not by the tab's deadline (not by a timeout of
// its own: a loaded machine only makes it wait longer).
func WaitFor(t testing.TB, tab context.Context, expr string) {
	t.Helper()
	timeout := 10 * time.Minute
	if d, ok := tab.Deadline(); ok {
		timeout = time.Until(d)
	}
	if _, err := chromedp.Run(tab, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(timeout))); err != nil {
		t.Fatalf("waiting for %s: %v", expr, err)
	}
}

// Hover moves the mouse over the centre of the first element matching the CSS
// selector that is not covered there, as a person would, and fails the test
// if there is none.
func Hover(t testing.TB, tab context.Context, selector string) {
	t.Helper()
	p := center(t, tab, selector)
	if err := chromedp.Do(tab, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, p.X, p.Y)); err != nil {
		t.Fatalf("hover %s: %v", selector, err)
	}
}

// Click clicks the centre of the first element matching the CSS selector.
func Click(t testing.TB, tab context.Context, selector string) {
	t.Helper()
	p := center(t, tab, selector)
	if err := chromedp.Do(tab, chromedp.MouseClickXY(p.X, p.Y)); err != nil {
		t.Fatalf("click %s: %v", selector, err)
	}
}

type point struct{ X, Y float64 }

func center(t testing.TB, tab context.Context, selector string) *point {
	t.Helper()
	// The first matching element whose centre a person can point at: one
	// whose centre is not covered by another element (a mark drawn over a
	// bar, say), else the first one.
	p := Eval[*point](t, tab, fmt.Sprintf(`(() => {
		const all = document.querySelectorAll(%q);
		if (all.length === 0) return null;
		const at = (el) => {
			el.scrollIntoView({block: "center"});
			const r = el.getBoundingClientRect();
			return {X: r.left + r.width / 2, Y: r.top + r.height / 2};
		};
		for (const el of all) {
			const p = at(el);
			const hit = document.elementFromPoint(p.X, p.Y);
			if (hit && (hit === el || el.contains(hit))) return p;
		}
		return at(all[0]);
	})()`, selector))
	if p == nil {
		t.Fatalf("no element matches %s", selector)
	}
	return p
}

// Screenshot saves what the viewport shows as a PNG file in dir (the test's
// temporary directory if dir is empty) and returns its path.
func Screenshot(t testing.TB, tab context.Context, dir, name string) string {
	t.Helper()
	png, err := chromedp.Run(tab, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
