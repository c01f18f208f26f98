//go:build linux

package journal

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestLockPIDs(t *testing.T) {
	locks := filepath.Join(t.TempDir(), "locks")
	// dev 0xfd01 = major 0xfd, minor 0x01; inode 1234567.
	content := `1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF
1: -> FLOCK  ADVISORY  WRITE 4343 fd:01:1234567 0 EOF
2: POSIX  ADVISORY  READ 99 fd:01:7654321 0 EOF
3: FLOCK  ADVISORY  READ 77 08:02:1234567 0 EOF
4: FLOCK  ADVISORY  READ  5151 fd:01:1234567 0 EOF
garbage
`
	if err := os.WriteFile(locks, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	got := lockPIDs(locks, 0xfd01, 1234567)
	want := []int{4242, 5151}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("lockPIDs = %v, want %v", got, want)
	}
	if got := lockPIDs(filepath.Join(t.TempDir(), "missing"), 1, 1); got != nil {
		t.Fatalf("lockPIDs of a missing file = %v, want nil", got)
	}
}
