package journal_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports guards a rule of docs/DESIGN.md: journal imports bbolt,
// golang.org/x/sys (which bbolt itself imports) and the standard library
// only. Every file is read, whatever system it is built for.
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(path, "/")
			if strings.Contains(first, ".") && !inModule(path, "go.etcd.io/bbolt") && !inModule(path, "golang.org/x/sys") {
				t.Errorf("%s imports %s: journal may import only bbolt, golang.org/x/sys and the standard library", name, path)
			}
		}
	}
}

// inModule reports whether the package path is module or inside it.
func inModule(path, module string) bool {
	return path == module || strings.HasPrefix(path, module+"/")
}
