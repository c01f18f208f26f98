// Package archtest guards the dependency rules of docs/DESIGN.md ("Layout and
// dependencies"): which packages each package may import outside
// tests.
package archtest

import (
	"go/build"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/distcompute/distcompute-go"

// rules lists, for each package, the non-standard imports it may use.
// A package absent from rules is not constrained here.
var rules = map[string][]string{
	// golang.org/x/sys: bbolt itself imports it (statfs where package
	// syscall has none).
	"journal":     {"go.etcd.io/bbolt", "golang.org/x/sys"},
	"session":     {"github.com/cenkalti/backoff/v4"},
	"trackertest": {},
	// The preemption watchers talk to metadata servers only.
	"internal/preempt": {},
	"replay":           {module + "/journal", module + "/session"},
}

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

func TestImportRules(t *testing.T) {
	root := repoRoot(t)
	for dir, allowed := range rules {
		t.Run(dir, func(t *testing.T) {
			pkg, err := build.ImportDir(filepath.Join(root, dir), 0)
			if err != nil {
				t.Fatalf("package %s: %v", dir, err)
			}
			var bad []string
			for _, imp := range pkg.Imports {
				if isStd(imp) || allowedImport(allowed, imp) || strings.HasPrefix(imp, module+"/"+dir+"/") {
					continue
				}
				bad = append(bad, imp)
			}
			sort.Strings(bad)
			if len(bad) > 0 {
				t.Errorf("%s imports %v; allowed outside the standard library: %v", dir, bad, allowed)
			}
		})
	}
}

// TestNothingImportsCmd checks that no package imports a command.
func TestNothingImportsCmd(t *testing.T) {
	root := repoRoot(t)
	for _, dir := range []string{"journal", "session", "trackertest", "replay", "client"} {
		pkg, err := build.ImportDir(filepath.Join(root, dir), 0)
		if err != nil {
			continue
		}
		for _, imp := range pkg.Imports {
			if strings.HasPrefix(imp, module+"/cmd/") {
				t.Errorf("%s imports the command %s", dir, imp)
			}
		}
	}
}

// allowedImport reports whether imp is one of the allowed modules or a
// package inside one (bbolt's own errors package, for example).
func allowedImport(allowed []string, imp string) bool {
	for _, a := range allowed {
		if imp == a || strings.HasPrefix(imp, a+"/") {
			return true
		}
	}
	return false
}
