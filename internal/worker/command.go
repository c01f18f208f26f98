package worker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
)

// stderrTailSize is how much of the end of a command's stderr is kept for the
// journal's failed event.
const stderrTailSize = 4 << 10

// maxProgressLine caps one progress line read from fd 3 or the progress file;
// the client cuts it further to what the tracker accepts.
const maxProgressLine = 4 << 10

// spec is one run of the user's command for one job.
type spec struct {
	argv           []string
	path           string   // argv[0] resolved (exec.LookPath); empty: resolved by os/exec at each run
	env            []string // full environment
	stdin          string   // the job's input, handed to the command without a copy
	checkpointPath string   // pre-filled by the caller
	// checkpointEmpty: the caller left the checkpoint file empty (a first
	// run without a checkpoint): nothing to read before the run.
	checkpointEmpty bool
	progressPath    string // created empty by the caller
	maxOutput       int64
	poll            time.Duration
	stderr          io.Writer // also receives the command's stderr; may be nil
	waitDelay       time.Duration
	noPidFD         bool // Linux: wait without the command's pidfd, as on a kernel before 5.2 (tests)

	onProgress   func(line string)
	onCheckpoint func(data []byte)
	// onCheckpointTooBig is told when the checkpoint file exceeds maxOutput
	// (it is then not stored).
	onCheckpointTooBig func(size int64)
}

// result is how a run ended.
type result struct {
	exitCode   int            // -1 when killed by a signal or not started
	signal     syscall.Signal // the terminating signal, 0 if none
	output     []byte         // stdout, at most maxOutput bytes
	tooLarge   bool           // stdout exceeded maxOutput (the rest was discarded)
	stderrTail []byte
	err        error // could not start, or I/O failure
}

// ok reports whether the command ran and exited 0 with acceptable output:
// within the size limit, and text. The tracker stores strings: bytes that
// are not UTF-8 would arrive as U+FFFD, the output silently changed, so
// such output is a failed run that says so (encode binary output first).
func (r result) ok() bool {
	return r.err == nil && r.exitCode == 0 && !r.tooLarge && utf8.Valid(r.output)
}

// describe is a short human account of the outcome, for logs and the journal.
func (r result) describe() string {
	switch {
	case r.err != nil:
		return r.err.Error()
	case r.signal != 0:
		return "killed by signal " + r.signal.String()
	case r.tooLarge:
		return fmt.Sprintf("exit status %d, output over the size limit", r.exitCode)
	case r.exitCode == 0 && !utf8.Valid(r.output):
		return fmt.Sprintf("exit status 0, output is not UTF-8 text (byte %d of %d is not): the tracker stores text; encode binary output (base64, say)",
			invalidAt(r.output), len(r.output))
	}
	return fmt.Sprintf("exit status %d", r.exitCode)
}

// invalidAt is the offset of the first byte of b that is not part of a
// valid UTF-8 sequence.
func invalidAt(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// proc is a started command.
type proc struct {
	cmd    *exec.Cmd // os/exec's command (not on Linux, where start forks itself)
	pid    int       // the command's process id (on Unix, its process group's too)
	res    result
	group  procGroup   // the command and its descendants (per OS)
	killed atomic.Bool // kill was called

	collect  func() // waits for the command and fills res (run once, by wait)
	waitOnce sync.Once

	// mu orders the signals sent to the command (a context's kill, a
	// drain's signal) with its end: once it has been waited for (ended),
	// its pid and process group may belong to another process.
	mu    sync.Mutex
	ended bool

	// cutPipes, when not zero, is when (Unix nanoseconds) the wait for
	// pipes that a descendant holds open after the command's exit ends,
	// if that is sooner than the usual delay (see stopWaitingAt).
	cutPipes atomic.Int64
}

// stopWaitingAt bounds the wait for the command's pipes after its exit by
// t: a drain's grace period, or now on a hard stop. A descendant that
// escaped the stop signal (it ignores SIGTERM, or the signal came while
// its shell was forking it) may hold stdout open after the command saved
// its work and exited; the output it wrote is complete then, and waiting
// the full delay would spend the time the drain leaves to submit it. On
// Linux only: elsewhere os/exec's Wait returns only once the pipes are
// closed, so the command counts as running (whileRunning) until then, and
// the kill at the grace period's end reaches the process group (on
// Windows, the job object) that holds them.
func (p *proc) stopWaitingAt(t time.Time) {
	n := t.UnixNano()
	for {
		old := p.cutPipes.Load()
		if old != 0 && old <= n || p.cutPipes.CompareAndSwap(old, n) {
			return
		}
	}
}

// watchFiles follows a run's checkpoint and progress files. They are polled
// by a timer that re-arms itself, not by a goroutine with a ticker: a short
// command (most of them) never sees a tick, and stopping needs no hand-over
// to another goroutine. finish stops the polling (waiting for a tick in
// progress) and reads both files a last time: the last checkpoint the
// command wrote, the progress it appended.
func watchFiles(s spec) (finish func()) {
	cw := &checkpointWatch{path: s.checkpointPath, fn: s.onCheckpoint, max: s.maxOutput, tooBig: s.onCheckpointTooBig}
	if !s.checkpointEmpty {
		// Else the file is as a primed watch would find it, but for its
		// modification time, which the first tick reads (if there is one).
		cw.prime()
	}
	ft := &fileTail{path: s.progressPath, lines: lineSplitter{fn: s.onProgress}}
	var (
		mu      sync.Mutex // held by a tick; stopped under it
		stopped bool
		poll    *time.Timer
	)
	mu.Lock() // a tick reads poll
	poll = time.AfterFunc(s.poll, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		cw.check(false)
		ft.read(false)
		poll.Reset(s.poll)
	})
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		poll.Stop()
		mu.Unlock()
		cw.check(true)
		ft.read(true)
	}
}

// wait blocks until the command has exited and its output is collected,
// collecting it in the first caller's goroutine.
func (p *proc) wait() result {
	p.waitOnce.Do(p.collect)
	return p.res
}

// whileRunning calls fn, which signals the command, unless the command has
// been waited for; the wait does not end meanwhile. It reports whether fn
// was called.
func (p *proc) whileRunning(fn func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return false
	}
	fn()
	return true
}

// closeAll closes the files that are not nil.
func closeAll(files ...*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// limitWriter keeps at most limit bytes (limit <= 0: no limit) and discards
// the rest, so the command never blocks on a full pipe.
type limitWriter struct {
	mu       sync.Mutex
	limit    int64
	buf      bytes.Buffer
	tooLarge bool
}

func (w *limitWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.tooLarge {
		return len(p), nil
	}
	if w.limit > 0 && int64(w.buf.Len()+len(p)) > w.limit {
		w.tooLarge = true
		w.buf = bytes.Buffer{}
		return len(p), nil
	}
	return w.buf.Write(p)
}

// ReadFrom reads r to its end into the buffer itself: os/exec copies a
// command's stdout with io.Copy, which would otherwise allocate a 32 KiB
// buffer per run (most of what a run allocated).
func (w *limitWriter) ReadFrom(r io.Reader) (int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var n int64
	var discard []byte // over the limit: read and dropped
	for {
		k, err := w.fill(r, &discard)
		n += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// fill reads from r once, into the buffer's own spare room (no copy to new
// memory) or, over the limit, into *discard (made when first needed), whose
// bytes are dropped. w.mu is held.
func (w *limitWriter) fill(r io.Reader, discard *[]byte) (int, error) {
	var b []byte
	if w.tooLarge {
		if *discard == nil {
			*discard = make([]byte, 4<<10)
		}
		b = *discard
	} else {
		w.buf.Grow(512)
		b = w.buf.AvailableBuffer()
		b = b[:cap(b)]
	}
	k, err := r.Read(b)
	if k > 0 && !w.tooLarge {
		if w.limit > 0 && int64(w.buf.Len()+k) > w.limit {
			w.tooLarge = true
			w.buf = bytes.Buffer{}
		} else {
			w.buf.Write(b[:k])
		}
	}
	return k, err
}

func (w *limitWriter) result() ([]byte, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Bytes(), w.tooLarge
}

func trimLine(b []byte) string {
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	return string(b)
}

// tailBuffer keeps the last max bytes written to it and passes them on to
// also, if set (the command's stderr, prefixed).
type tailBuffer struct {
	mu   sync.Mutex
	max  int
	buf  []byte
	also io.Writer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.also != nil {
		_, _ = t.also.Write(p) // the tail is kept even if the log cannot be written
	}
	n := len(p)
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return n, nil
}

// copyBufs are tailBuffer.ReadFrom's buffers, reused from run to run.
var copyBufs = sync.Pool{New: func() any { return new([1 << 10]byte) }}

// ReadFrom copies r through a small buffer: io.Copy would allocate 32 KiB
// per run for a stderr that is most often empty.
func (t *tailBuffer) ReadFrom(r io.Reader) (int64, error) {
	buf := copyBufs.Get().(*[1 << 10]byte)
	defer copyBufs.Put(buf)
	b := buf[:]
	var n int64
	for {
		k, err := r.Read(b)
		if k > 0 {
			n += int64(k)
			_, _ = t.Write(b[:k])
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func (t *tailBuffer) bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.buf...)
}

// checkpointWatch notices when the checkpoint file changes (by size and
// modification time, or by content on the final check) and hands the new
// content to fn. It only runs from one goroutine at a time.
type checkpointWatch struct {
	path   string
	fn     func([]byte)
	max    int64       // larger checkpoints are refused (tooBig is told)
	tooBig func(int64) // may be nil
	size   int64
	mtime  time.Time
	last   []byte // content last handed over (or pre-filled)
}

func (c *checkpointWatch) prime() {
	if c.path == "" {
		return
	}
	fi, err := os.Stat(c.path)
	if err != nil {
		return
	}
	c.size, c.mtime = fi.Size(), fi.ModTime()
	if fi.Size() > 0 { // an empty file (a job without a checkpoint) need not be read
		c.last, _ = os.ReadFile(c.path)
	}
}

func (c *checkpointWatch) check(final bool) {
	if c.path == "" || c.fn == nil {
		return
	}
	fi, err := os.Stat(c.path)
	if err != nil {
		return
	}
	if !final && fi.Size() == c.size && fi.ModTime().Equal(c.mtime) {
		return
	}
	c.size, c.mtime = fi.Size(), fi.ModTime()
	if c.max > 0 && fi.Size() > c.max {
		if c.tooBig != nil {
			c.tooBig(fi.Size())
		}
		return
	}
	var data []byte // an empty file is not read
	if fi.Size() > 0 {
		if data, err = os.ReadFile(c.path); err != nil {
			return
		}
	}
	if bytes.Equal(data, c.last) {
		return
	}
	if len(data) == 0 && len(c.last) == 0 {
		return
	}
	c.last = data
	c.fn(append([]byte(nil), data...))
}

// fileTail follows a file that the command appends progress lines to.
type fileTail struct {
	path  string
	off   int64
	lines lineSplitter
}

func (f *fileTail) read(final bool) {
	if f.path == "" || f.lines.fn == nil {
		return
	}
	defer func() {
		if final {
			f.lines.end()
		}
	}()
	// Most commands never write the file: a stat tells that it has not
	// grown, without opening and reading it.
	if fi, err := os.Stat(f.path); err != nil || fi.Size() == f.off {
		return
	}
	file, err := os.Open(f.path)
	if err != nil {
		return
	}
	defer file.Close()
	if fi, err := file.Stat(); err == nil && fi.Size() < f.off {
		f.off = 0 // truncated: start over
		f.lines.line = f.lines.line[:0]
	}
	if _, err := file.Seek(f.off, io.SeekStart); err != nil {
		return
	}
	data, _ := io.ReadAll(io.LimitReader(file, 1<<20))
	f.off += int64(len(data))
	f.lines.write(data)
}

// lineSplitter cuts what a command writes (to fd 3, or to the progress
// file) into progress lines for fn: without the newline (nor a carriage
// return before it), a line longer than maxProgressLine cut to that
// length, blank lines left out, the last line given at the end even
// without its newline.
type lineSplitter struct {
	fn   func(string)
	line []byte
}

func (l *lineSplitter) write(b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		frag := b
		if i >= 0 {
			frag = b[:i+1]
		}
		if room := maxProgressLine - len(l.line); room > 0 {
			l.line = append(l.line, frag[:min(room, len(frag))]...)
		}
		if i < 0 {
			return
		}
		l.emit()
		b = b[i+1:]
	}
}

// end gives the last line, if it had no newline.
func (l *lineSplitter) end() { l.emit() }

func (l *lineSplitter) emit() {
	if s := trimLine(l.line); s != "" && l.fn != nil {
		l.fn(s)
	}
	l.line = l.line[:0]
}

// prefixWriter writes each line to w with a prefix, holding a partial line
// until its newline (or flush). mu serialises the lines of all commands.
type prefixWriter struct {
	mu      *sync.Mutex
	w       io.Writer
	prefix  string
	partial []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			p.partial = append(p.partial, b...)
			if len(p.partial) > maxProgressLine {
				p.flush()
			}
			break
		}
		p.partial = append(p.partial, b[:i+1]...)
		p.emit()
		b = b[i+1:]
	}
	return n, nil
}

func (p *prefixWriter) emit() {
	p.mu.Lock()
	_, _ = p.w.Write(append([]byte(p.prefix), p.partial...))
	p.mu.Unlock()
	p.partial = p.partial[:0]
}

// flush writes a held partial line, ending it with a newline.
func (p *prefixWriter) flush() {
	if len(p.partial) > 0 {
		p.partial = append(p.partial, '\n')
		p.emit()
	}
}

// jobFiles are a slot's checkpoint and progress files ($DC_CHECKPOINT_FILE,
// $DC_PROGRESS_FILE). They are kept from job to job and emptied before each
// run rather than created and removed per job: creating and unlinking two
// files per job cost a directory update each on the disk (openat with
// O_CREAT was an eighth of dcworker's CPU per job). A file the command
// replaced or removed is made afresh.
type jobFiles struct {
	dir, checkpoint, progress string
}

func newJobFiles(workDir string, slot int) jobFiles {
	dir := filepath.Join(workDir, "slot-"+strconv.Itoa(slot))
	return jobFiles{dir: dir, checkpoint: filepath.Join(dir, "checkpoint"), progress: filepath.Join(dir, "progress")}
}

// prepare fills the checkpoint file with data.
func (f jobFiles) prepare(data []byte) error {
	return f.inDir(func() error {
		if len(data) == 0 {
			return emptyFile(f.checkpoint)
		}
		return os.WriteFile(f.checkpoint, data, 0o600)
	})
}

// emptyProgress empties the progress file for a run.
func (f jobFiles) emptyProgress() error {
	return f.inDir(func() error { return emptyFile(f.progress) })
}

// inDir calls fn, and once more after making the slot's directory if fn
// found it missing (the first job, or a command removed it): the
// directory is kept from job to job, and making sure of it before each job
// cost a stat per job.
func (f jobFiles) inDir(fn func() error) error {
	err := fn()
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(f.dir, 0o700); err != nil {
			return err
		}
		err = fn()
	}
	return err
}

// remove deletes the files (the slot stops).
func (f jobFiles) remove() {
	os.Remove(f.checkpoint)
	os.Remove(f.progress)
}

// emptyFile leaves an empty regular file at path: an empty one is left as it
// is (no write), a longer one truncated, anything else (missing, replaced by
// a link or a directory) made afresh.
func emptyFile(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case err == nil && fi.Mode().IsRegular():
		if fi.Size() == 0 {
			return nil
		}
		return os.Truncate(path, 0)
	case err == nil:
		if err := os.RemoveAll(path); err != nil {
			return err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	return os.WriteFile(path, nil, 0o600)
}
