//go:build unix && !darwin

package client

import (
	"os"
	"path/filepath"
)

// stateDir is $XDG_STATE_HOME, or ~/.local/state (the XDG base directory
// default).
func stateDir() (string, error) {
	if x := os.Getenv("XDG_STATE_HOME"); x != "" && filepath.IsAbs(x) {
		return x, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".local", "state"), nil
}
