package corruption_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/session"
	"github.com/distcompute/distcompute-go/trackertest"
	bolt "go.etcd.io/bbolt"
)

// Caps every run of a tool on a damaged file must stay under.
const (
	timeCap = 10 * time.Second
	// memCap is the address space each child may map (ulimit -v): a Go
	// program reserves some hundreds of MiB of it at start, and each thread
	// its stack, so it is set well above what a tool on a 1 MiB file needs
	// and well below what a runaway walk takes (the huge overflow field of
	// the issue took half a GiB in 10 s).
	memCap = 2 << 30
)

// envChild, set to "init" in a child's environment, makes the test binary
// call client.Init on the journal $CORRUPTION_JOURNAL against the dead
// tracker $CORRUPTION_URL, and exit 0 (Init succeeded), 3 (the journal was
// refused: ErrCorrupt, ErrNotJournal or a format error) or 1 (any other
// error, such as the unreachable tracker).
const envChild = "CORRUPTION_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "init" {
		os.Exit(initChild())
	}
	os.Exit(m.Run())
}

func initChild() int {
	policy := session.DefaultRetryPolicy()
	policy.MaxElapsedTime = 300 * time.Millisecond
	policy.AttemptTimeout = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := client.Init(ctx, os.Getenv("CORRUPTION_URL"), "a",
		client.WithJournal(os.Getenv("CORRUPTION_JOURNAL")), client.WithRetry(policy),
		client.WithLogger(slog.New(slog.DiscardHandler)))
	if err == nil {
		c.Close()
		return 0
	}
	fmt.Fprintln(os.Stderr, "init:", strings.ReplaceAll(err.Error(), "\n", " "))
	if errors.Is(err, journal.ErrCorrupt) || errors.Is(err, journal.ErrNotJournal) ||
		errors.Is(err, journal.ErrNewerFormat) || errors.Is(err, journal.ErrOldFormat) {
		return 3
	}
	return 1
}

// tool is one program run on a damaged file.
type tool struct {
	name     string
	readOnly bool  // must leave the file's bytes unchanged
	codes    []int // the exit codes it may give
	args     func(path, out string) []string
}

func tools(dcjournal, deadURL string) []tool {
	self, _ := os.Executable()
	dc := func(a ...string) func(path, out string) []string {
		return func(path, out string) []string {
			r := []string{dcjournal}
			for _, x := range a {
				switch x {
				case "F":
					x = path
				case "OUT":
					x = out
				}
				r = append(r, x)
			}
			return r
		}
	}
	return []tool{
		{"inspect", true, []int{0, 3}, dc("inspect", "F")},
		{"inspect --json", true, []int{0, 3}, dc("inspect", "--json", "F")},
		{"verify", true, []int{0, 1, 3}, dc("verify", "F")},
		{"export", true, []int{0, 1, 3}, dc("export", "F", "--all", "--out", "OUT")},
		{"report", true, []int{0, 1, 3}, dc("report", "F", "--out", "OUT")},
		{"replay", false, []int{0, 1, 3, 5}, dc("replay", "F", "--tracker", deadURL, "--timeout", "300ms")},
		{"compact", false, []int{0, 1, 3}, dc("compact", "F")},
		{"client.Init", false, []int{0, 1, 3}, func(path, out string) []string { return []string{self, "-test.run=^$"} }},
	}
}

// result is one run of one tool on one variant.
type result struct {
	code    int
	stdout  string
	stderr  string
	elapsed time.Duration
	hung    bool
	signal  string
	changed bool
}

func (r result) outOfMemory() bool {
	return strings.Contains(r.stderr, "out of memory") || strings.Contains(r.stderr, "cannot allocate") ||
		strings.Contains(r.stderr, "pthread_create failed")
}

func (r result) panicked() bool {
	return strings.Contains(r.stderr, "panic:") || strings.Contains(r.stderr, "goroutine ") ||
		(r.code == 2 && strings.Contains(r.stderr, "runtime"))
}

// TestCorpus runs every tool on every damaged variant of real journals and
// counts panics, hangs, breaches of the memory cap, undocumented exit codes,
// errors of more than one line and read-only commands that changed the
// file. CORRUPTION_FULL=1 runs a larger corpus.
func TestCorpus(t *testing.T) {
	if testing.Short() {
		t.Skip("builds dcjournal and runs it a thousand times")
	}
	start := time.Now()
	dir := t.TempDir()
	dcjournal := filepath.Join(dir, "dcjournal")
	build := exec.Command("go", "build", "-o", dcjournal, "github.com/distcompute/distcompute-go/cmd/dcjournal")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build dcjournal: %v\n%s", err, out)
	}
	deadURL := deadTracker(t)
	bases := makeBases(t, dir)
	full := os.Getenv("CORRUPTION_FULL") == "1"
	variants := makeVariants(t, bases, full)
	if !full && len(variants) < 200 {
		t.Fatalf("the corpus has %d variants, want at least 200", len(variants))
	}
	t.Logf("%d variants of %d journals built in %v", len(variants), len(bases), time.Since(start).Round(time.Millisecond))

	tls := tools(dcjournal, deadURL)
	type failure struct{ variant, tool, what string }
	var (
		mu       sync.Mutex
		failures []failure
		counts   = map[string]map[string]int{} // what -> tool -> n
		verified = map[string]bool{}           // variants verify accepts
		initOK   int                           // variants verify rejects that client.Init opened
	)
	fail := func(v, tl, what, detail string) {
		mu.Lock()
		defer mu.Unlock()
		if counts[what] == nil {
			counts[what] = map[string]int{}
		}
		counts[what][tl]++
		failures = append(failures, failure{v, tl, what + ": " + detail})
	}
	work := make(chan variant)
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := range work {
				res := make(map[string]result)
				for _, tl := range tls {
					r := runTool(t, dir, tl, v, deadURL)
					res[tl.name] = r
					detail := fmt.Sprintf("exit %d after %v; stderr: %.300q", r.code, r.elapsed.Round(time.Millisecond), r.stderr)
					switch {
					case r.hung:
						fail(v.name, tl.name, "hang", detail)
					case r.outOfMemory():
						fail(v.name, tl.name, "memory cap", detail)
					case r.panicked():
						fail(v.name, tl.name, "panic", detail)
					case r.signal != "":
						fail(v.name, tl.name, "killed by "+r.signal, detail)
					case !contains(tl.codes, r.code):
						fail(v.name, tl.name, "undocumented exit code", detail)
					}
					if !r.panicked() && !oneLineError(tl, r.stderr) {
						fail(v.name, tl.name, "error of more than one line", detail)
					}
					if tl.readOnly && r.changed {
						fail(v.name, tl.name, "changed the file", detail)
					}
				}
				// What a damaged file must not get away with: a clean verify
				// is the reference, and a file it rejects is not compacted or
				// replayed without --force, and inspect says it is damaged.
				vr := res["verify"]
				if vr.code == 0 {
					mu.Lock()
					verified[v.name] = true
					mu.Unlock()
					continue
				}
				if r := res["compact"]; r.code == 0 {
					fail(v.name, "compact", "accepted a file verify rejects", fmt.Sprintf("verify exit %d: %.200q", vr.code, vr.stdout+vr.stderr))
				}
				if r := res["replay"]; r.code == 0 {
					fail(v.name, "replay", "accepted a file verify rejects", fmt.Sprintf("verify exit %d", vr.code))
				}
				for _, name := range []string{"inspect", "inspect --json"} {
					if r := res[name]; r.code == 0 {
						fail(v.name, name, "did not say the file is damaged", fmt.Sprintf("verify exit %d; stdout %.200q", vr.code, r.stdout))
					}
				}
				if res["client.Init"].code != 3 {
					mu.Lock()
					initOK++
					mu.Unlock()
				}
			}
		}()
	}
	for _, v := range variants {
		work <- v
	}
	close(work)
	wg.Wait()

	sort.Slice(failures, func(i, k int) bool { return failures[i].variant < failures[k].variant })
	crashed := map[string]bool{}
	for _, f := range failures {
		if strings.HasPrefix(f.what, "panic") || strings.HasPrefix(f.what, "hang") || strings.HasPrefix(f.what, "killed") || strings.HasPrefix(f.what, "memory") {
			crashed[f.variant] = true
		}
	}
	whats := make([]string, 0, len(counts))
	for w := range counts {
		whats = append(whats, w)
	}
	sort.Strings(whats)
	for _, w := range whats {
		t.Logf("%s: %v", w, counts[w])
	}
	t.Logf("%d variants, %d tools, %d runs in %v; %d variants crash or hang a tool; verify accepts %d; client.Init opens %d that verify rejects",
		len(variants), len(tls), len(variants)*len(tls), time.Since(start).Round(time.Millisecond), len(crashed), len(verified), initOK)
	for i, f := range failures {
		if i == 40 {
			t.Errorf("... and %d more", len(failures)-i)
			break
		}
		t.Errorf("%s: %s: %s", f.variant, f.tool, f.what)
	}
}

// oneLineError reports whether stderr holds at most one line, or for replay
// (which reports each slot's progress on stderr) at most one error line, the
// last.
func oneLineError(tl tool, stderr string) bool {
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if tl.name != "replay" {
		return len(lines) <= 1
	}
	errs := 0
	for i, l := range lines {
		if strings.HasPrefix(l, "dcjournal: ") {
			errs++
			if i != len(lines)-1 {
				return false
			}
		}
	}
	return errs <= 1
}

func contains(s []int, x int) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// runTool runs tl on a private copy of v under the caps.
func runTool(t *testing.T, dir string, tl tool, v variant, deadURL string) result {
	work, err := os.MkdirTemp(dir, "run-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(work)
	path := filepath.Join(work, "journal.db")
	if err := os.WriteFile(path, v.data, 0o600); err != nil {
		t.Fatal(err)
	}
	before := sha256.Sum256(v.data)
	argv := tl.args(path, filepath.Join(work, "out"))
	// ulimit -v caps the address space; exec keeps the pid, so the kill on
	// timeout reaches the tool itself.
	sh := append([]string{"-c", fmt.Sprintf("ulimit -v %d && exec \"$@\"", memCap>>10), "sh"}, argv...)
	ctx, cancel := context.WithTimeout(context.Background(), timeCap)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", sh...)
	cmd.Env = append(os.Environ(), envChild+"=", "NO_COLOR=1")
	if tl.name == "client.Init" {
		cmd.Env = append(cmd.Env, envChild+"=init", "CORRUPTION_JOURNAL="+path, "CORRUPTION_URL="+deadURL)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	begin := time.Now()
	err = cmd.Run()
	r := result{elapsed: time.Since(begin), stdout: stdout.String(), stderr: stderr.String()}
	r.hung = ctx.Err() != nil
	if cmd.ProcessState != nil {
		r.code = cmd.ProcessState.ExitCode()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && !r.hung {
			r.signal = ws.Signal().String()
		}
	} else if err != nil {
		t.Fatalf("%s: %v", tl.name, err)
	}
	if tl.readOnly {
		after, err := os.ReadFile(path)
		r.changed = err != nil || sha256.Sum256(after) != before
	}
	return r
}

// deadTracker returns the URL of a loopback port nothing listens on.
func deadTracker(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// base is an intact journal and its page map.
type base struct {
	name  string
	data  []byte
	pages pageMap
}

// makeBases writes journals through the client's job cycle against an
// in-process tracker: three slots, each completing jobs with small and
// large (overflow page) outputs and checkpoints, the last slot left holding
// a job; then the same file after one bbolt commit that writes the
// freelist (as a journal over FreelistSyncSize has).
func makeBases(t *testing.T, dir string) []base {
	tr := trackertest.New(trackertest.Options{Project: "corpus", Jobs: jobList(300), Seed: 1})
	srv := httptest.NewServer(tr)
	defer srv.Close()
	path := filepath.Join(dir, "base.db")
	ctx := context.Background()
	for s := 0; s < 3; s++ {
		c, err := client.Init(ctx, srv.URL, "a", client.WithJournal(path), client.WithSlot(fmt.Sprintf("slot-%d", s)),
			client.WithJournalOptions(&journal.Options{NoSync: true}), client.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatalf("client.Init: %v", err)
		}
		for j := 0; j < 25; j++ {
			if err := c.NewJob(ctx); err != nil {
				t.Fatalf("NewJob: %v", err)
			}
			if err := c.Checkpoint(ctx, bytes.Repeat([]byte{byte(j)}, 100+j*40)); err != nil {
				t.Fatalf("Checkpoint: %v", err)
			}
			out := fmt.Sprintf("slot %d job %d", s, j)
			if j%5 == 0 {
				out = strings.Repeat(out+" large output; ", 600) // several pages: overflow
			}
			if s == 2 && j == 24 {
				break // left held: replay has work to do
			}
			if err := c.CompleteJob(ctx, out); err != nil {
				t.Fatalf("CompleteJob: %v", err)
			}
		}
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	plain, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The same journal with bbolt's freelist written.
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{NoFreelistSync: false})
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket([]byte("meta"))
		return m.Put([]byte("format"), append([]byte(nil), m.Get([]byte("format"))...))
	})
	bdb.Close()
	if err != nil {
		t.Fatal(err)
	}
	withFreelist, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var bases []base
	for _, b := range []base{{name: "plain", data: plain}, {name: "freelist", data: withFreelist}} {
		pm, err := mapPages(b.data)
		if err != nil {
			t.Fatalf("%s: %v", b.name, err)
		}
		b.pages = pm
		for _, k := range []pageKind{kindBranch, kindLeaf, kindOverflow} {
			if len(pm.byKind[k]) == 0 {
				t.Fatalf("%s journal has no %s page", b.name, k)
			}
		}
		bases = append(bases, b)
	}
	if len(bases[1].pages.byKind[kindFreelist]) == 0 {
		t.Fatal("the freelist journal has no freelist page")
	}
	return bases
}

func jobList(n int) []any {
	jobs := make([]any, n)
	for i := range jobs {
		jobs[i] = fmt.Sprintf("input %d", i+1)
	}
	return jobs
}

// bbolt's on-disk layout (go.etcd.io/bbolt/internal/common), read here
// independently of package journal's check so that the corpus does not
// share its blind spots.
type pageKind string

const (
	kindMeta     pageKind = "meta"
	kindBranch   pageKind = "branch"
	kindLeaf     pageKind = "leaf"
	kindOverflow pageKind = "overflow"
	kindFreelist pageKind = "freelist"
)

type pageMap struct {
	pageSize int
	meta     int // the current meta page (0 or 1)
	root     uint64
	hwm      uint64
	byKind   map[pageKind][]uint64
	// children: branch page -> offset of its elements' pgid fields
	branchRefs map[uint64][]int
	// bucketRefs: offsets of the root pgid of non-inline bucket values
	bucketRefs []int
}

var le = binary.LittleEndian

func mapPages(data []byte) (pageMap, error) {
	pm := pageMap{byKind: map[pageKind][]uint64{}, branchRefs: map[uint64][]int{}}
	ps := int(le.Uint32(data[16+8:]))
	pm.pageSize = ps
	t0, t1 := le.Uint64(data[16+48:]), le.Uint64(data[ps+16+48:])
	if t1 > t0 {
		pm.meta = 1
	}
	m := data[pm.meta*ps+16:]
	pm.root, pm.hwm = le.Uint64(m[16:]), le.Uint64(m[40:])
	pm.byKind[kindMeta] = []uint64{0, 1}
	if fl := le.Uint64(m[32:]); fl != ^uint64(0) {
		pm.byKind[kindFreelist] = append(pm.byKind[kindFreelist], fl)
	}
	seen := map[uint64]bool{}
	var walk func(id uint64, depth int) error
	walk = func(id uint64, depth int) error {
		if seen[id] || depth > 20 || int(id+1)*ps > len(data) {
			return fmt.Errorf("page %d: bad reference", id)
		}
		seen[id] = true
		p := data[int(id)*ps:]
		flags, count, overflow := le.Uint16(p[8:]), int(le.Uint16(p[10:])), le.Uint32(p[12:])
		for i := uint32(1); i <= overflow; i++ {
			pm.byKind[kindOverflow] = append(pm.byKind[kindOverflow], id+uint64(i))
		}
		switch flags {
		case 0x01:
			pm.byKind[kindBranch] = append(pm.byKind[kindBranch], id)
			for i := 0; i < count; i++ {
				off := int(id)*ps + 16 + i*16 + 8
				pm.branchRefs[id] = append(pm.branchRefs[id], off)
				if err := walk(le.Uint64(data[off:]), depth+1); err != nil {
					return err
				}
			}
		case 0x02:
			pm.byKind[kindLeaf] = append(pm.byKind[kindLeaf], id)
			for i := 0; i < count; i++ {
				e := int(id)*ps + 16 + i*16
				eflags, pos, ksize, vsize := le.Uint32(data[e:]), int(le.Uint32(data[e+4:])), int(le.Uint32(data[e+8:])), int(le.Uint32(data[e+12:]))
				if eflags&1 == 0 || vsize < 16 {
					continue
				}
				v := e + pos + ksize
				if r := le.Uint64(data[v:]); r != 0 {
					pm.bucketRefs = append(pm.bucketRefs, v)
					if err := walk(r, depth+1); err != nil {
						return err
					}
				}
			}
		default:
			return fmt.Errorf("page %d: flags %#x", id, flags)
		}
		return nil
	}
	return pm, walk(pm.root, 0)
}

// variant is one damaged file.
type variant struct {
	name string
	data []byte
}

// setMeta rewrites meta page i's field at off (in the meta, after the page
// header) and recomputes its checksum, so that bbolt takes it as valid.
func setMeta(data []byte, ps, i, off int, v uint64, width int) {
	m := data[i*ps+16:]
	if width == 4 {
		le.PutUint32(m[off:], uint32(v))
	} else {
		le.PutUint64(m[off:], v)
	}
	h := fnv.New64a()
	h.Write(m[:56])
	le.PutUint64(m[56:], h.Sum64())
}

func makeVariants(t *testing.T, bases []base, full bool) []variant {
	rnd := rand.New(rand.NewSource(11))
	var vs []variant
	add := func(name string, data []byte) { vs = append(vs, variant{name, data}) }
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00")
	sqlite := append([]byte("SQLite format 3\x00\x10\x00\x01\x01\x00\x40\x20\x20"), make([]byte, 4096)...)
	add("empty", []byte{})
	add("text", []byte("this is not a journal\n"))
	add("text-8k", bytes.Repeat([]byte("journal.db\n"), 800))
	add("png", append(png, make([]byte, 5000)...))
	add("sqlite", sqlite)
	add("zeros-16k", make([]byte, 16384))
	random := make([]byte, 12288)
	rnd.Read(random)
	add("random-12k", random)

	for _, b := range bases {
		ps, pm := b.pages.pageSize, b.pages
		clone := func() []byte { return append([]byte(nil), b.data...) }
		name := func(f string, a ...any) string { return b.name + "/" + fmt.Sprintf(f, a...) }
		// Truncations: inside and at the edge of the meta pages, at page
		// boundaries, and at random offsets.
		cuts := []int{1, 15, 16, 100, ps - 1, ps, ps + 80, 2*ps - 1, 2 * ps, 2*ps + 1, 3 * ps, len(b.data) - ps, len(b.data) - 1}
		n := 12
		if full {
			n = 120
		}
		for i := 0; i < n; i++ {
			cuts = append(cuts, 2*ps+rnd.Intn(len(b.data)-2*ps))
		}
		for _, c := range cuts {
			add(name("truncate-%d", c), clone()[:c])
		}
		// Zeroed meta pages.
		for _, z := range [][]int{{0}, {1}, {0, 1}} {
			d := clone()
			for _, i := range z {
				clear(d[i*ps : (i+1)*ps])
			}
			add(name("zero-meta-%v", z), d)
		}
		// Meta fields rewritten with a valid checksum: page size, root,
		// freelist and high-water mark out of range; and the other meta
		// page's txid higher, so that the damaged one is current.
		for _, f := range []struct {
			what  string
			off   int
			v     uint64
			width int
		}{
			{"pagesize-0", 8, 0, 4}, {"pagesize-1000", 8, 1000, 4}, {"pagesize-1G", 8, 1 << 30, 4},
			{"root-past-end", 16, pm.hwm + 50, 8}, {"root-0", 16, 0, 8}, {"root-1", 16, 1, 8},
			{"freelist-past-end", 32, pm.hwm + 7, 8}, {"freelist-root", 32, pm.root, 8},
			{"hwm-huge", 40, 1 << 40, 8}, {"hwm-small", 40, 3, 8}, {"version-3", 4, 3, 4},
		} {
			for _, i := range []int{0, 1} {
				d := clone()
				setMeta(d, ps, i, f.off, f.v, f.width)
				setMeta(d, ps, i, 48, 1<<40, 8) // make it the current meta
				add(name("meta%d-%s", i, f.what), d)
			}
		}
		// Huge and looping overflow fields.
		for _, k := range []pageKind{kindBranch, kindLeaf} {
			id := pm.byKind[k][0]
			if k == kindBranch {
				id = pm.root
			}
			for _, ov := range []uint32{0x7F000000, 0xFFFFFFFF, uint32(pm.hwm)} {
				d := clone()
				le.PutUint32(d[int(id)*ps+12:], ov)
				add(name("%s-%d-overflow-%#x", k, id, ov), d)
			}
		}
		// Branch references past the end, to the meta pages, to itself (a
		// loop), to the root (a loop), and twice to one child.
		for id, refs := range pm.branchRefs {
			for _, target := range []struct {
				what string
				v    uint64
			}{{"past-end", pm.hwm + 3}, {"huge", 1 << 50}, {"meta", 1}, {"self", id}, {"root", pm.root}} {
				d := clone()
				le.PutUint64(d[refs[len(refs)-1]:], target.v)
				add(name("branch-%d-ref-%s", id, target.what), d)
			}
			if len(refs) > 1 {
				d := clone()
				le.PutUint64(d[refs[1]:], le.Uint64(d[refs[0]:]))
				add(name("branch-%d-ref-twice", id), d)
			}
			if !full {
				break
			}
		}
		// Bucket roots past the end, and pointing at the root (a loop).
		for i, off := range pm.bucketRefs {
			for _, v := range []uint64{pm.hwm + 1, pm.root} {
				d := clone()
				le.PutUint64(d[off:], v)
				add(name("bucket-%d-root-%d", i, v), d)
			}
		}
		// Byte flips in every kind of page: in the header (id, flags,
		// count, overflow) and in the body.
		flips := 6
		if full {
			flips = 60
		}
		for _, k := range []pageKind{kindMeta, kindBranch, kindLeaf, kindOverflow, kindFreelist} {
			ids := pm.byKind[k]
			if len(ids) == 0 {
				continue
			}
			for _, hdr := range []int{0, 3, 8, 10, 11, 12, 15} {
				id := ids[rnd.Intn(len(ids))]
				d := clone()
				d[int(id)*ps+hdr] ^= 0x01 << rnd.Intn(8)
				add(name("flip-%s-%d-header-%d", k, id, hdr), d)
			}
			for i := 0; i < flips; i++ {
				id := ids[rnd.Intn(len(ids))]
				off := int(id)*ps + 16 + rnd.Intn(ps-16)
				if k == kindMeta {
					off = int(id)*ps + 16 + rnd.Intn(64)
				}
				d := clone()
				d[off] ^= 0x01 << rnd.Intn(8)
				add(name("flip-%s-%d-at-%d", k, id, off), d)
			}
		}
		// The example: one byte at 2*4096+12 (page 2's overflow).
		d := clone()
		d[2*ps+12] ^= 1
		add(name("issue-example"), d)
	}
	if full {
		// Every 1021st byte of the plain journal flipped.
		b := bases[0]
		for off := 0; off < len(b.data); off += 1021 {
			d := append([]byte(nil), b.data...)
			d[off] ^= 0xFF
			add(fmt.Sprintf("plain/flip-every-1021-at-%d", off), d)
		}
	}
	return vs
}
