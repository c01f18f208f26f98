package journal_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/windows"

	"github.com/distcompute/distcompute-go/journal"
)

// TestOwnerOnlyACL: on Windows, where file modes do not apply, a journal
// that Open creates has a protected DACL for its owner and SYSTEM only, and
// an existing file keeps the ACL it has.
func TestOwnerOnlyACL(t *testing.T) {
	want, err := journal.OwnerOnlySDDL()
	if err != nil {
		t.Fatal(err)
	}
	dacl := func(path string) string {
		t.Helper()
		sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT, windows.DACL_SECURITY_INFORMATION)
		if err != nil {
			t.Fatalf("GetNamedSecurityInfo(%s): %v", path, err)
		}
		return sd.String()
	}

	path := filepath.Join(t.TempDir(), "new", "j.db")
	db, err := journal.Open(path, &journal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if got := dacl(path); got != want {
		t.Errorf("new journal's DACL = %s, want %s", got, want)
	}

	existing := filepath.Join(t.TempDir(), "existing.db")
	if err := os.WriteFile(existing, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	before := dacl(existing)
	if !strings.HasPrefix(want, "D:P") || before == want {
		t.Fatalf("test set-up: a plain file's DACL %s should differ from %s", before, want)
	}
	db, err = journal.Open(existing, &journal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if got := dacl(existing); got != before {
		t.Errorf("existing file's DACL changed from %s to %s", before, got)
	}
}
