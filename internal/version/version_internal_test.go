package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestRequested(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want bool
	}{
		{"double dash", []string{"--version"}, true},
		{"single dash", []string{"-version"}, true},
		{"none", nil, false},
		{"with more", []string{"--version", "x"}, false},
		{"subcommand", []string{"run", "--version"}, false},
		{"other", []string{"-v"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Requested(tc.args); got != tc.want {
				t.Errorf("Requested(%q) = %v, want %v", tc.args, got, tc.want)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	platform := " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
	checkout := &debug.BuildInfo{
		Main: debug.Module{Path: "github.com/distcompute/distcompute-go", Version: "v0.0.0-20261130203634-071087e1b2c3+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "071087e1b2c3d4e5f60718293a4b5c6d7e8f9012"},
			{Key: "vcs.time", Value: "2026-11-30T20:36:34Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	for _, tc := range []struct {
		name    string
		stamped string
		info    *debug.BuildInfo
		want    string
	}{
		{"stamped wins", "v1.2.3", checkout, "dcworker v1.2.3 (commit 071087e1b2c3, 2026-11-30T20:36:34Z, modified)" + platform},
		{"checkout", "", checkout, "dcworker v0.0.0-20261130203634-071087e1b2c3+dirty (commit 071087e1b2c3, 2026-11-30T20:36:34Z, modified)" + platform},
		{"go install", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, "dcworker v1.4.0" + platform},
		{"no build info", "", nil, "dcworker (devel)" + platform},
		{"stamped, no build info", "v2.0.0-rc1", nil, "dcworker v2.0.0-rc1" + platform},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := format("dcworker", tc.stamped, tc.info); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestStringNamesTheCommand(t *testing.T) {
	if got := String("dcjournal"); !strings.HasPrefix(got, "dcjournal ") {
		t.Errorf("String = %q, want it to start with the command name", got)
	}
}
