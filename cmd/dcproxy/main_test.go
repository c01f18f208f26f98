package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"

	"github.com/distcompute/distcompute-go/internal/proxy"
)

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"help", []string{"-h"}, 0, "usage: dcproxy --tracker URL"},
		{"no tracker", nil, 2, "--tracker is required"},
		{"bad ack", []string{"--tracker", "http://127.0.0.1:1", "--ack", "disk"}, 2, "--ack must be tracker or journal"},
		{"bad restart", []string{"--tracker", "http://127.0.0.1:1", "--restart", "sometimes"}, 2, "--restart must be"},
		{"bad notice", []string{"--tracker", "http://127.0.0.1:1", "--preemption-notice", "ibm"}, 2, "--preemption-notice"},
		{"bad procs", []string{"--tracker", "http://127.0.0.1:1", "--procs", "0"}, 2, "--procs"},
		{"bad journal size", []string{"--tracker", "http://127.0.0.1:1", "--journal-max-size", "lots"}, 2, "--journal-max-size: want a size above 0"},
		{"zero journal size", []string{"--tracker", "http://127.0.0.1:1", "--journal-max-size", "0"}, 2, "--journal-max-size"},
		{"bad journal deadline", []string{"--tracker", "http://127.0.0.1:1", "--journal-deadline", "0s"}, 2, "--journal-deadline positive"},
		{"bad tracker URL", []string{"--tracker", "ftp://x", "--listen", "127.0.0.1:0", "--journal", "JOURNAL"}, 2, "not an http(s) URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			for i, a := range args {
				if a == "JOURNAL" {
					args[i] = t.TempDir() + "/j.db"
				}
			}
			var out, errb bytes.Buffer
			err := run(context.Background(), nil, args, &out, &errb)
			code := exitCode(err, &errb)
			if code != tc.code {
				t.Errorf("exit %d, want %d (err %v)\n%s", code, tc.code, err, errb.String())
			}
			if !strings.Contains(out.String()+errb.String(), tc.want) {
				t.Errorf("output lacks %q:\n%s%s", tc.want, out.String(), errb.String())
			}
			if tc.code == 0 && !errors.Is(err, flag.ErrHelp) {
				t.Errorf("err %v, want flag.ErrHelp", err)
			}
		})
	}
}

// A journal that stayed unwritable is exit status 4, as in dcworker.
func TestExitCodeJournalUnwritable(t *testing.T) {
	var errb bytes.Buffer
	err := fmt.Errorf("%w since 2026-12-01T10:00:00Z: journal is full", proxy.ErrJournalUnwritable)
	if code := exitCode(err, &errb); code != 4 || !strings.Contains(errb.String(), "stayed unwritable") {
		t.Fatalf("exit %d, want 4; printed %q", code, errb.String())
	}
}
