package client

import (
	"os"
	"path/filepath"
)

// stateDir is $XDG_STATE_HOME when set (for those who set it on purpose),
// else ~/Library/Application Support, where macOS keeps applications' data.
func stateDir() (string, error) {
	if x := os.Getenv("XDG_STATE_HOME"); x != "" && filepath.IsAbs(x) {
		return x, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, "Library", "Application Support"), nil
}
