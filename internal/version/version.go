// Package version says which build of distcompute-go a command is, for the
// commands' --version: the version the release build stamps in at link
// time, else what the Go toolchain recorded in the binary (the module
// version for `go install ...@v1.2.3`, the VCS revision for a build from a
// checkout).
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Version is stamped in by the release build (scripts/release.sh):
//
//	go build -ldflags "-X github.com/distcompute/distcompute-go/internal/version.Version=v1.2.3"
//
// It is a variable only because -X can set nothing else; nothing assigns it
// at run time. Empty means "use the build info".
var Version string

// Requested reports whether args (the arguments after the program name) ask
// for the version only: a sole --version or -version.
func Requested(args []string) bool {
	return len(args) == 1 && (args[0] == "--version" || args[0] == "-version")
}

// String is the line --version prints, for the command name:
//
//	dcworker v1.2.3 (commit 071087e1b2c3, 2026-11-30T20:36:34Z) go1.26.8 windows/amd64
//
// The commit part is there when the toolchain recorded one (a build from a
// git checkout), with ", modified" when the tree had uncommitted changes.
func String(name string) string {
	info, _ := debug.ReadBuildInfo()
	return format(name, Version, info)
}

// format builds String's line from a stamped version (may be empty) and the
// build info (may be nil).
func format(name, stamped string, info *debug.BuildInfo) string {
	v := stamped
	var vcs []string
	if info != nil {
		if v == "" {
			v = info.Main.Version
		}
		var rev, at, modified string
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			vcs = append(vcs, "commit "+rev)
			if at != "" {
				vcs = append(vcs, at)
			}
			if modified == "true" {
				vcs = append(vcs, "modified")
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	line := name + " " + v
	if len(vcs) > 0 {
		line += " (" + strings.Join(vcs, ", ") + ")"
	}
	return fmt.Sprintf("%s %s %s/%s", line, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
