package worker

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"
	"time"
)

type collected struct {
	mu          sync.Mutex
	progress    []string
	checkpoints [][]byte
}

func (c *collected) addProgress(s string) {
	c.mu.Lock()
	c.progress = append(c.progress, s)
	c.mu.Unlock()
}

func (c *collected) addCheckpoint(b []byte) {
	c.mu.Lock()
	c.checkpoints = append(c.checkpoints, b)
	c.mu.Unlock()
}

func runScript(t *testing.T, script string, mod func(*spec)) (result, *collected) {
	t.Helper()
	dir := t.TempDir()
	c := &collected{}
	s := spec{
		argv:           []string{"/bin/sh", "-c", script},
		env:            append(os.Environ(), "DC_CHECKPOINT_FILE="+filepath.Join(dir, "cp"), "DC_PROGRESS_FILE="+filepath.Join(dir, "progress")),
		checkpointPath: filepath.Join(dir, "cp"),
		progressPath:   filepath.Join(dir, "progress"),
		maxOutput:      1 << 20,
		poll:           20 * time.Millisecond,
		waitDelay:      time.Second,
		onProgress:     c.addProgress,
		onCheckpoint:   c.addCheckpoint,
	}
	os.WriteFile(s.progressPath, nil, 0o600)
	if mod != nil {
		mod(&s)
	}
	p, err := start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return p.wait(), c
}

func TestRunOutputStdinExit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		script   string
		stdin    string
		wantOut  string
		wantCode int
	}{
		{"echo stdin", `cat`, "hello world", "hello world", 0},
		{"exit code", `echo partial; exit 7`, "", "partial\n", 7},
		{"invalid", `exit 65`, "", "", 65},
		{"empty stdin", `wc -c | tr -d ' '`, "", "0\n", 0},
		// Larger than a pipe's buffer: fed by os/exec, not filled before the start.
		{"large stdin", `wc -c | tr -d ' '`, strings.Repeat("x", 1<<20), "1048576\n", 0},
		{"stdin not read", `echo done`, strings.Repeat("y", 1<<20), "done\n", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := runScript(t, tc.script, func(s *spec) { s.stdin = tc.stdin })
			if res.err != nil || res.exitCode != tc.wantCode || string(res.output) != tc.wantOut {
				t.Errorf("got code %d out %q err %v; want code %d out %q", res.exitCode, res.output, res.err, tc.wantCode, tc.wantOut)
			}
		})
	}
}

func TestRunProgressFd3AndFile(t *testing.T) {
	res, c := runScript(t, `echo one >&3; printf 'two\nthree' >> "$DC_PROGRESS_FILE"; echo four >&3`, nil)
	if !res.ok() {
		t.Fatalf("run: %s", res.describe())
	}
	got := strings.Join(c.progress, ",")
	for _, want := range []string{"one", "two", "three", "four"} {
		if !strings.Contains(got, want) {
			t.Errorf("progress %q lacks %q", got, want)
		}
	}
}

func TestRunCheckpointCapture(t *testing.T) {
	res, c := runScript(t, `printf a > "$DC_CHECKPOINT_FILE"; sleep 0.2; printf ab > "$DC_CHECKPOINT_FILE"; sleep 0.2; printf final > "$DC_CHECKPOINT_FILE"`, nil)
	if !res.ok() {
		t.Fatalf("run: %s", res.describe())
	}
	if len(c.checkpoints) < 2 {
		t.Errorf("checkpoints = %q, want the intermediate ones too", c.checkpoints)
	}
	if last := c.checkpoints[len(c.checkpoints)-1]; string(last) != "final" {
		t.Errorf("last checkpoint = %q, want final", last)
	}
}

func TestRunCheckpointPrefilledUnchanged(t *testing.T) {
	res, c := runScript(t, `cat "$DC_CHECKPOINT_FILE"`, func(s *spec) { os.WriteFile(s.checkpointPath, []byte("resume-here"), 0o600) })
	if string(res.output) != "resume-here" {
		t.Errorf("output = %q", res.output)
	}
	if len(c.checkpoints) != 0 {
		t.Errorf("an unchanged pre-filled checkpoint was stored again: %q", c.checkpoints)
	}
}

func TestRunOutputLimit(t *testing.T) {
	res, _ := runScript(t, `head -c 5000 /dev/zero; echo done >&2`, func(s *spec) { s.maxOutput = 1000 })
	if !res.tooLarge || res.ok() || res.exitCode != 0 {
		t.Errorf("tooLarge=%v ok=%v code=%d", res.tooLarge, res.ok(), res.exitCode)
	}
	if !strings.Contains(res.describe(), "size limit") {
		t.Errorf("describe = %q", res.describe())
	}
}

func TestRunStderrTail(t *testing.T) {
	var seen bytes.Buffer
	res, _ := runScript(t, `head -c 10000 /dev/zero | tr '\0' x >&2; echo THE-END >&2; exit 3`, func(s *spec) { s.stderr = &seen })
	if res.exitCode != 3 {
		t.Fatalf("code = %d", res.exitCode)
	}
	if len(res.stderrTail) != stderrTailSize || !bytes.HasSuffix(res.stderrTail, []byte("THE-END\n")) {
		t.Errorf("tail: %d bytes, ends %q", len(res.stderrTail), res.stderrTail[len(res.stderrTail)-10:])
	}
	if seen.Len() != 10008 {
		t.Errorf("stderr passed through: %d bytes, want 10008", seen.Len())
	}
}

func TestRunSignalGroupAndGrandchild(t *testing.T) {
	dir := t.TempDir()
	// The grandchild (a background sleep) holds stdout open; a group signal
	// must reach it too.
	p, err := start(context.Background(), spec{
		argv:      []string{"/bin/sh", "-c", `sleep 30 & echo started; wait`},
		env:       os.Environ(),
		poll:      20 * time.Millisecond,
		waitDelay: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = dir
	time.Sleep(200 * time.Millisecond)
	t0 := time.Now()
	p.signal(syscall.SIGTERM)
	res := p.wait()
	if res.signal != syscall.SIGTERM {
		t.Errorf("signal = %v, want SIGTERM (%s)", res.signal, res.describe())
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("took %v after the group signal", d)
	}
}

func TestRunContextKills(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p, err := start(ctx, spec{argv: []string{"/bin/sh", "-c", `trap '' TERM; sleep 30`}, env: os.Environ(), waitDelay: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	res := p.wait()
	if res.signal != syscall.SIGKILL {
		t.Errorf("signal = %v (%s)", res.signal, res.describe())
	}
}

func TestRunNotFound(t *testing.T) {
	_, err := start(context.Background(), spec{argv: []string{"/nonexistent/cmd"}})
	if err == nil {
		t.Fatal("started a missing command")
	}
}

func TestTailBuffer(t *testing.T) {
	tb := &tailBuffer{max: 4}
	tb.Write([]byte("ab"))
	tb.Write([]byte("cde"))
	if got := string(tb.bytes()); got != "bcde" {
		t.Errorf("got %q", got)
	}
	tb.Write([]byte("123456"))
	if got := string(tb.bytes()); got != "3456" {
		t.Errorf("got %q", got)
	}
}

// TestRunUnreadStdin: a command that ignores a large input still succeeds.
func TestRunUnreadStdin(t *testing.T) {
	res, _ := runScript(t, `echo ok`, func(s *spec) { s.stdin = strings.Repeat("x", 4<<20) })
	if !res.ok() || string(res.output) != "ok\n" {
		t.Errorf("ok=%v output %q: %s", res.ok(), res.output, res.describe())
	}
}

func TestPrefixWriter(t *testing.T) {
	var out bytes.Buffer
	var mu sync.Mutex
	p := &prefixWriter{mu: &mu, w: &out, prefix: "[s j] "}
	p.Write([]byte("one\ntw"))
	p.Write([]byte("o\nthree"))
	p.flush()
	if got, want := out.String(), "[s j] one\n[s j] two\n[s j] three\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestEmptyFile: emptyFile leaves an empty regular file whatever was at the
// path, and writes nothing to a file that is empty already.
func TestEmptyFile(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(dir, "outside")
	if err := os.WriteFile(outside, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		make func(path string) error
	}{
		{"missing", func(string) error { return nil }},
		{"empty", func(p string) error { return os.WriteFile(p, nil, 0o600) }},
		{"written", func(p string) error { return os.WriteFile(p, []byte("old checkpoint"), 0o600) }},
		{"directory", func(p string) error { return os.MkdirAll(filepath.Join(p, "sub"), 0o700) }},
		{"symlink", func(p string) error { return os.Symlink(outside, p) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if err := tc.make(p); err != nil {
				t.Fatal(err)
			}
			if err := emptyFile(p); err != nil {
				t.Fatalf("emptyFile: %v", err)
			}
			fi, err := os.Lstat(p)
			if err != nil || !fi.Mode().IsRegular() || fi.Size() != 0 {
				t.Fatalf("after emptyFile: %v, %v; want an empty regular file", fi, err)
			}
		})
	}
	if b, err := os.ReadFile(outside); err != nil || string(b) != "keep" {
		t.Errorf("the symlink's target: %q, %v; want it untouched", b, err)
	}
}

// TestWritersReadFrom: the stdout and stderr writers read a command's pipe
// themselves (os/exec's copy would allocate 32 KiB per run) and keep what
// Write would have kept: stdout up to the limit, the tail of stderr, which
// also goes on to the log.
func TestWritersReadFrom(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       string
		limit    int64
		want     string
		tooLarge bool
	}{
		{"empty", "", 10, "", false},
		{"under", "0123456789", 10, "0123456789", false},
		{"over", "0123456789a", 10, "", true},
		{"large", strings.Repeat("x", 100<<10), 0, strings.Repeat("x", 100<<10), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &limitWriter{limit: tc.limit}
			n, err := w.ReadFrom(iotest.HalfReader(strings.NewReader(tc.in)))
			out, tooLarge := w.result()
			if n != int64(len(tc.in)) || err != nil || string(out) != tc.want || tooLarge != tc.tooLarge {
				t.Errorf("ReadFrom = %d, %v; kept %d bytes, too large %v; want %d, nil, %d bytes, %v",
					n, err, len(out), tooLarge, len(tc.in), len(tc.want), tc.tooLarge)
			}
		})
	}
	var log bytes.Buffer
	tb := &tailBuffer{max: 4, also: &log}
	if _, err := tb.ReadFrom(iotest.OneByteReader(strings.NewReader("abcdef"))); err != nil {
		t.Fatal(err)
	}
	if string(tb.bytes()) != "cdef" || log.String() != "abcdef" {
		t.Errorf("tail %q, log %q; want cdef, abcdef", tb.bytes(), log.String())
	}
}

// splitChunks is what a command writes, in chunks, and the progress lines
// it makes: CRLF ends a line, blank lines are left out, a long line is cut
// to maxProgressLine, the last line counts without its newline.
var splitChunks = func() (chunks, lines []string) {
	long := strings.Repeat("L", maxProgressLine+10)
	return []string{"one\r\ntw", "o\n\nthr", long[:100], long[100:] + "\nfour", "\n\r\nlast"},
		[]string{"one", "two", "thr" + long[:maxProgressLine-3], "four", "last"}
}

// TestLineSplitter: fd 3 and the progress file cut lines alike.
func TestLineSplitter(t *testing.T) {
	chunks, want := splitChunks()
	var got []string
	l := &lineSplitter{fn: func(s string) { got = append(got, s) }}
	for _, c := range chunks {
		l.write([]byte(c))
	}
	l.end()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("lineSplitter: lines %q\nwant %q", got, want)
	}

	// The progress file, read after each chunk is appended (and once more
	// after the file is truncated and written afresh).
	got = nil
	path := filepath.Join(t.TempDir(), "progress")
	ft := &fileTail{path: path, lines: lineSplitter{fn: func(s string) { got = append(got, s) }}}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chunks {
		if _, err := f.WriteString(c); err != nil {
			t.Fatal(err)
		}
		ft.read(false)
	}
	ft.read(true)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("fileTail: lines %q\nwant %q", got, want)
	}
	got = nil
	if err := os.WriteFile(path, []byte("again\npart"), 0o600); err != nil {
		t.Fatal(err)
	}
	ft.read(true)
	if strings.Join(got, "|") != "again|part" {
		t.Errorf("fileTail after truncation: lines %q, want [again part]", got)
	}
}
