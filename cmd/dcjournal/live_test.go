package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distcompute/distcompute-go/journal"
)

// inspect --live leaves no file behind, whether the snapshot arrives
// whole or is cut short.
func TestInspectLiveLeavesNoTempFile(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	db, err := journal.Open(filepath.Join(t.TempDir(), "journal.db"), &journal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Append(journal.Event{Slot: "0", Kind: journal.KindRegistered, URL: "http://t", Stage: "a", Token: "0f1e2d3c-4b5a-4697-8877-665544332211", DisplayName: "blue-fox-17"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/cut/journal" {
			var b bytes.Buffer
			db.WriteSnapshot(&b)
			w.Write(b.Bytes()[:b.Len()/2])
			panic(http.ErrAbortHandler) // the transfer is cut: no final chunk
		}
		db.WriteSnapshot(w)
	}))
	defer srv.Close()

	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"inspect", "--live", srv.URL}, &out, &errOut); err != nil {
		t.Fatalf("inspect --live: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "blue-fox-17") {
		t.Errorf("inspect --live output lacks the worker:\n%s", out.String())
	}
	if err := run(context.Background(), []string{"inspect", "--live", srv.URL + "/cut/journal"}, &out, &errOut); err == nil {
		t.Errorf("inspect --live of a cut snapshot succeeded")
	}
	ents, _ := os.ReadDir(tmp)
	for _, e := range ents {
		t.Errorf("inspect --live left %s in TMPDIR", e.Name())
	}
}
