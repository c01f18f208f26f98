//go:build !linux

package journal

// lockHolders finds lock holders on Linux only.
func lockHolders(string) []int { return nil }
