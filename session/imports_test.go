package session_test

import (
	"go/build"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// allowedImport reports whether package session may depend on path: the
// standard library and backoff/v4 only (docs/DESIGN.md, "Layout and dependencies").
func allowedImport(path string) bool {
	if path == "github.com/cenkalti/backoff/v4" {
		return true
	}
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".") // standard library paths have no dot in the first element
}

// TestImports checks the import rule on the package's direct imports
// (go/build) and on all its non-test dependencies (go list -deps).
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if !allowedImport(imp) {
			t.Errorf("session imports %s; only the standard library and backoff/v4 are allowed", imp)
		}
	}

	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if p, err := exec.LookPath("go"); err == nil {
		gobin = p
	}
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const self = "github.com/distcompute/distcompute-go/session"
	for _, dep := range strings.Fields(string(out)) {
		if dep != self && dep != "github.com/cenkalti/backoff/v4" {
			t.Errorf("session depends on %s; only the standard library and backoff/v4 are allowed", dep)
		}
	}
}
