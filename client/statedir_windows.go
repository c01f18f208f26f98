package client

import (
	"errors"
	"os"
	"path/filepath"
)

// stateDir is %LocalAppData%: per user, not roaming, and readable by its
// owner only (with SYSTEM and Administrators) through the profile's ACL.
func stateDir() (string, error) {
	if d := os.Getenv("LocalAppData"); d != "" && filepath.IsAbs(d) {
		return d, nil
	}
	return "", errors.New("%LocalAppData% is not set")
}
