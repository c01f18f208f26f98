package archtest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocLinksResolve checks that the repository's documentation points
// only at files inside the repository:
//
//   - in every *.md file, each relative link "](path)" names an existing
//     file or directory relative to that file, and its "#anchor", if any, a
//     heading of the target (GitHub's slugs);
//   - in the text of every *.md file and in the comments of every *.go
//     file, each mention of a Markdown file (such as docs/DESIGN.md) names
//     a file that exists relative to the mentioning file or to the
//     repository root; a mention followed by an anchor or by a quoted
//     section name must name a heading of that file.
//
// Fenced code blocks in Markdown, Go string literals and URLs are not
// checked.
func TestDocLinksResolve(t *testing.T) {
	root := repoRoot(t)
	problems := checkDocLinks(t, root)
	for _, p := range problems {
		t.Error(p)
	}
}

// TestDocLinksCatchBrokenLinks runs the same check over a small tree with
// one good and several broken references, so that the check is known to
// fail when it should.
func TestDocLinksCatchBrokenLinks(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("docs/DESIGN.md", "# Design\n\n## The event model\n\ntext\n")
	write("README.md", "See [the design](docs/DESIGN.md#the-event-model) and [it](docs/MISSING.md).\n"+
		"Also [a section](docs/DESIGN.md#no-such-section).\n"+
		"```\n[in code](nowhere.md)\n```\n")
	write("pkg/doc.go", "// Package pkg follows docs/DESIGN.md, \"The event model\", and\n"+
		"// DESIGN.md (a bare name that is not here) and docs/DESIGN.md, \"Nope\".\n"+
		"// And docs/DESIGN.md (\"The event\n// model\") wraps.\npackage pkg\n")
	got := checkDocLinks(t, dir)
	want := []string{
		"README.md: link docs/MISSING.md",
		"README.md: link docs/DESIGN.md#no-such-section",
		"pkg/doc.go: mention DESIGN.md",
		`pkg/doc.go: mention docs/DESIGN.md "Nope"`,
	}
	joined := strings.Join(got, "\n")
	for _, w := range want {
		if !strings.Contains(joined, w) {
			t.Errorf("the check missed %q; it reported:\n%s", w, joined)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d problems, want %d:\n%s", len(got), len(want), joined)
	}
}

var (
	mdLinkRe = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	// mdMentionRe finds a file name ending in .md, with an optional
	// "#anchor" or a quoted section name after it (across a comment's line
	// break, a comma or an opening parenthesis).
	mdMentionRe = regexp.MustCompile(`([A-Za-z0-9_./-]*[A-Za-z0-9_-]\.md)\b(#[A-Za-z0-9_-]+)?(?:[\s/,(]*(?:section\s+)?"([^"]{1,80})")?`)
	headingRe   = regexp.MustCompile(`(?m)^#{1,6}\s+(.+?)\s*#*\s*$`)
)

// checkDocLinks returns one line per reference under root that does not
// resolve.
func checkDocLinks(t *testing.T, root string) []string {
	t.Helper()
	var problems []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		ext := filepath.Ext(path)
		if ext != ".md" && ext != ".go" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		text := string(b)
		if ext == ".go" {
			if text, err = goComments(path, b); err != nil {
				return err
			}
		}
		if ext == ".md" {
			text = withoutFences(text)
			for _, m := range mdLinkRe.FindAllStringSubmatch(text, -1) {
				target := m[1]
				if isURL(target) {
					continue
				}
				file, anchor, _ := strings.Cut(target, "#")
				resolved := path
				if file != "" {
					resolved = filepath.Join(filepath.Dir(path), filepath.FromSlash(file))
				}
				if msg := checkTarget(resolved, anchor, ""); msg != "" {
					problems = append(problems, rel+": link "+target+": "+msg)
				}
			}
			// Link targets are checked above, relative to the file only.
			text = mdLinkRe.ReplaceAllString(text, "]()")
		}
		for _, m := range mdMentionRe.FindAllStringSubmatchIndex(text, -1) {
			name := text[m[2]:m[3]]
			if precededByURL(text, m[2]) {
				continue
			}
			anchor, section := "", ""
			if m[4] >= 0 {
				anchor = text[m[4]+1 : m[5]]
			}
			if m[6] >= 0 {
				// A section name may wrap onto the next comment line.
				section = strings.Join(strings.Fields(text[m[6]:m[7]]), " ")
			}
			msg := "not found relative to " + rel + " or to the repository root"
			for _, base := range []string{filepath.Dir(path), root} {
				p := filepath.Join(base, filepath.FromSlash(name))
				if _, err := os.Stat(p); err == nil {
					msg = checkTarget(p, anchor, section)
					break
				}
			}
			if msg != "" {
				what := name
				if anchor != "" {
					what += "#" + anchor
				}
				if section != "" {
					what += ` "` + section + `"`
				}
				problems = append(problems, rel+": mention "+what+": "+msg)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	return problems
}

// checkTarget returns "" if path exists and, when anchor or section is
// given, has a heading with that slug or that text.
func checkTarget(path, anchor, section string) string {
	info, err := os.Stat(path)
	if err != nil {
		return "no such file"
	}
	if anchor == "" && section == "" {
		return ""
	}
	if info.IsDir() || filepath.Ext(path) != ".md" {
		return "an anchor or section on a file that is not Markdown"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	for _, h := range headingRe.FindAllStringSubmatch(withoutFences(string(b)), -1) {
		text := strings.ReplaceAll(h[1], "`", "")
		if (anchor != "" && slug(text) == anchor) || (section != "" && strings.EqualFold(text, section)) {
			return ""
		}
	}
	if anchor != "" {
		return "no heading with anchor #" + anchor
	}
	return "no heading " + `"` + section + `"`
}

// slug is GitHub's anchor for a heading: lower case, punctuation dropped,
// spaces turned into hyphens.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// withoutFences blanks the lines of fenced code blocks, keeping line count.
func withoutFences(s string) string {
	lines := strings.Split(s, "\n")
	in := false
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			in = !in
			lines[i] = ""
			continue
		}
		if in {
			lines[i] = ""
		}
	}
	return strings.Join(lines, "\n")
}

func isURL(s string) bool {
	return strings.Contains(s, "://") || strings.HasPrefix(s, "mailto:")
}

// precededByURL reports whether the mention starting at i is part of a URL.
func precededByURL(text string, i int) bool {
	start := strings.LastIndexAny(text[:i], " \t\n(<\"'`") + 1
	return strings.Contains(text[start:i], "://")
}

// goComments returns the text of a Go file's comments, one group after
// another (string literals are not documentation).
func goComments(path string, src []byte) (string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), path, src, parser.ParseComments)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, g := range f.Comments {
		b.WriteString(g.Text())
		b.WriteString("\n")
	}
	return b.String(), nil
}
