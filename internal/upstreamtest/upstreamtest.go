// Package upstreamtest finds the upstream Python client (distcompute_client
// 1.0.0, unchanged, in ../shared/upstream beside the repository) for the
// tests that run it for real against dctracker and dcproxy.
package upstreamtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Client returns a python3 that can import requests and the directory of
// the upstream client (put it on sys.path or PYTHONPATH). Without them the
// test is skipped, saying why, except in CI (CI=true), which has both: there
// it fails.
func Client(tb testing.TB) (python, dir string) {
	tb.Helper()
	skip := func(why string) {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("CI must run the upstream client: %s", why)
		}
		tb.Skip(why)
	}
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("upstreamtest: cannot locate the repository")
	}
	// This file is internal/upstreamtest/upstreamtest.go in the repository.
	dir = filepath.Join(filepath.Dir(self), "..", "..", "..", "shared", "upstream", "distcompute-client-1.0.0")
	if _, err := os.Stat(filepath.Join(dir, "distcompute_client", "client.py")); err != nil {
		skip("the upstream Python client is not at " + dir + " (../shared/upstream beside the repository)")
	}
	python, err := exec.LookPath("python3")
	if err != nil {
		skip("python3 not found")
	}
	if out, err := exec.Command(python, "-c", "import requests").CombinedOutput(); err != nil {
		skip("python3 cannot import requests (Debian: python3-requests): " + string(out))
	}
	return python, dir
}
