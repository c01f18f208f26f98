//go:build !linux

package worker

import (
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

// TestFilledPipe: input that fits in a pipe is in it, with its end, before
// the command starts; larger input is left to os/exec (nil).
func TestFilledPipe(t *testing.T) {
	for _, in := range []string{"", "job input", strings.Repeat("z", 4<<10)} {
		f, err := filledPipe(in)
		if err != nil {
			t.Fatal(err)
		}
		if f == nil {
			if runtime.GOOS != "windows" {
				t.Fatalf("%d bytes: no pipe", len(in))
			}
			continue
		}
		got, err := io.ReadAll(f)
		f.Close()
		if err != nil || string(got) != in {
			t.Errorf("%d bytes: read %d bytes, %v", len(in), len(got), err)
		}
	}
	f, err := filledPipe(strings.Repeat("z", 8<<20)) // larger than any pipe buffer
	if err != nil || f != nil {
		t.Errorf("8 MiB: %v, %v; want no pipe", f, err)
	}
}

// TestReadLines: the progress pipe cuts lines as lineSplitter does, from a
// reader that returns one byte at a time.
func TestReadLines(t *testing.T) {
	chunks, want := splitChunks()
	var got []string
	readLines(iotest.OneByteReader(strings.NewReader(strings.Join(chunks, ""))), func(s string) { got = append(got, s) })
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("lines %q\nwant %q", got, want)
	}
}
