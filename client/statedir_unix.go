//go:build unix

package client

import (
	"os"
	"path/filepath"
	"runtime"
)

// stateDir is $XDG_STATE_HOME when set (to an absolute path), else where the
// system keeps applications' state: ~/Library/Application Support on macOS,
// ~/.local/state (the XDG base directory default) elsewhere.
func stateDir() (string, error) {
	if x := os.Getenv("XDG_STATE_HOME"); x != "" && filepath.IsAbs(x) {
		return x, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	if runtime.GOOS == "darwin" {
		return filepath.Join(home, "Library", "Application Support"), nil
	}
	return filepath.Join(home, ".local", "state"), nil
}
