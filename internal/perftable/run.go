package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// configs are the table's rows, in the order each round runs them.
var configs = []struct{ name, what string }{
	{"upstream", "upstream Python client, 1 worker"},
	{"go-1", "Go client, journal on disk, 1 slot"},
	{"go-nosync", "Go client, journal NoSync, 1 slot"},
	{"pool-4", "Go Pool, 4 slots"},
	{"pool-16", "Go Pool, 16 slots"},
	{"pool-32", "Go Pool, 32 slots"},
	{"dcworker-1", "dcworker + /bin/cat, 1 slot"},
	{"dcworker-8", "dcworker + /bin/cat, 8 slots"},
	{"session", "session only (newJob + completeJob, no journal)"},
	{"fsync4", "raw: 4 × (200 B append + fdatasync), same disk"},
	{"bolt2", "bare bbolt: 2 transactions of one 250 B put, synced (4 fdatasync)"},
	{"bolt2-nosync", "bare bbolt: the same, NoSync"},
	{"spawn", "spawn floor: /bin/cat by os/exec alone, no client"},
}

type params struct {
	rounds, cycles, warmup int
	dctracker, python      string
	upstream, pyScript     string
	dir, before, profiles  string
	only                   string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("perftable", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var ca childArgs
	fs.StringVar(&ca.config, "child", "", "run one configuration and print its figures (internal)")
	fs.StringVar(&ca.tracker, "tracker", "", "tracker URL (child)")
	fs.StringVar(&ca.profile, "cpuprofile", "", "CPU profile of the window (child)")
	var p params
	fs.IntVar(&p.rounds, "rounds", 5, "rounds; each runs every configuration once")
	fs.IntVar(&p.cycles, "cycles", 2000, "measured job cycles per run")
	fs.IntVar(&p.warmup, "warmup", 100, "job cycles before the measured ones")
	fs.StringVar(&p.dctracker, "dctracker", "", "dctracker binary (required)")
	fs.StringVar(&p.python, "python", "python3", "python3 with requests")
	fs.StringVar(&p.upstream, "upstream", "", "directory of the upstream client (distcompute-client-1.0.0); empty: no upstream row")
	fs.StringVar(&p.pyScript, "pyscript", "scripts/upstream-cycles.py", "the Python side")
	fs.StringVar(&p.dir, "dir", os.TempDir(), "directory for the journals (the disk measured)")
	fs.StringVar(&p.before, "before", "", "this program built against older code: its Go rows run too")
	fs.StringVar(&p.profiles, "profiles", "", "write CPU profiles of pool-16 and dcworker-1 (last round) to this directory")
	fs.StringVar(&p.only, "configs", "", "comma-separated configurations (default: all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if ca.config != "" {
		ca.cycles, ca.warmup = p.cycles, p.warmup
		ca.dir = p.dir
		return runChild(ctx, ca, stdout)
	}
	if p.dctracker == "" {
		return fmt.Errorf("-dctracker is required")
	}
	return table(ctx, p, stdout, stderr)
}

// sample is one run of one configuration from one binary.
type sample struct {
	figures
	trackerCPU float64
}

// key names a row: configuration and side ("" now, "before").
type key struct{ config, side string }

func table(ctx context.Context, p params, stdout, stderr io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var names []string
	for _, c := range configs {
		if p.only == "" || slices.Contains(strings.Split(p.only, ","), c.name) {
			if c.name == "upstream" && p.upstream == "" {
				continue
			}
			names = append(names, c.name)
		}
	}
	sides := []string{""}
	if p.before != "" {
		sides = append(sides, "before")
	}
	jobs := p.rounds*len(names)*len(sides)*(p.cycles+p.warmup+100) + 1000
	trackerPID, url, stopTracker, err := startTracker(ctx, p.dctracker, jobs)
	if err != nil {
		return err
	}
	defer stopTracker()
	load0 := loadavg()
	start := time.Now()
	fmt.Fprintf(stderr, "tracker %s (%d jobs), %d rounds of %d cycles (+%d warm-up), load %s\n", url, jobs, p.rounds, p.cycles, p.warmup, load0)
	got := map[key][]sample{}
	for r := 1; r <= p.rounds; r++ {
		for _, name := range names {
			for _, side := range sides {
				if (side == "before") && floorOnly(name) {
					continue
				}
				bin := self
				if side == "before" {
					bin = p.before
				}
				prof := ""
				if p.profiles != "" && r == p.rounds && (name == "pool-16" || name == "dcworker-1") {
					prof = filepath.Join(p.profiles, name+map[string]string{"": "-after", "before": "-before"}[side]+".pprof")
				}
				dir, err := os.MkdirTemp(p.dir, "perftable-")
				if err != nil {
					return err
				}
				t0 := procCPU(trackerPID)
				s, err := runOne(ctx, p, bin, name, url, dir, prof)
				s.trackerCPU = procCPU(trackerPID) - t0
				os.RemoveAll(dir)
				if err != nil {
					return fmt.Errorf("round %d, %s %s: %w", r, name, side, err)
				}
				got[key{name, side}] = append(got[key{name, side}], s)
				fmt.Fprintf(stderr, "round %d %-11s %-6s %8.0f cycles/s  cpu %.3f ms/cycle  tracker %.3f ms/cycle\n",
					r, name, side, float64(s.Cycles)/s.Wall, 1e3*s.CPU/float64(s.Cycles), 1e3*s.trackerCPU/float64(s.Cycles))
			}
		}
	}
	fmt.Fprintf(stdout, "%d rounds of %d cycles (+%d warm-up) per configuration, alternated in each round; %s; load average %s at the start, %s at the end; %s\n\n",
		p.rounds, p.cycles, p.warmup, time.Now().UTC().Format("2006-01-02 15:04 UTC"), load0, loadavg(), time.Since(start).Round(time.Second))
	printTable(stdout, p, names, sides, got)
	return nil
}

// runOne runs one configuration in a child process.
func runOne(ctx context.Context, p params, bin, name, url, dir, prof string) (sample, error) {
	var cmd *exec.Cmd
	if name == "upstream" {
		cmd = exec.CommandContext(ctx, p.python, p.pyScript, url, strconv.Itoa(p.cycles), strconv.Itoa(p.warmup))
		cmd.Env = append(os.Environ(), "PYTHONPATH="+p.upstream)
	} else {
		args := []string{"-child", name, "-tracker", url, "-cycles", strconv.Itoa(p.cycles), "-warmup", strconv.Itoa(p.warmup), "-dir", dir}
		if prof != "" {
			args = append(args, "-cpuprofile", prof)
		}
		cmd = exec.CommandContext(ctx, bin, args...)
	}
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	// The upstream client logs a line per claim on stderr: its cost is part
	// of that client's; only the end of the text is kept, for errors.
	cmd.Stderr = &tailWriter{b: &errb}
	if err := cmd.Run(); err != nil {
		return sample{}, fmt.Errorf("%v: %s", err, lastLines(errb.String(), 5))
	}
	var s sample
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &s.figures); err != nil {
		return sample{}, fmt.Errorf("figures: %v: %q", err, out.String())
	}
	if name == "upstream" {
		s.Syncs = -1
	}
	return s, nil
}

// tailWriter keeps the last 4 KiB written.
type tailWriter struct{ b *bytes.Buffer }

func (t *tailWriter) Write(p []byte) (int, error) {
	t.b.Write(p)
	if t.b.Len() > 8<<10 {
		rest := append([]byte(nil), t.b.Bytes()[t.b.Len()-4<<10:]...)
		t.b.Reset()
		t.b.Write(rest)
	}
	return len(p), nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// startTracker starts dctracker with n jobs at stage a and returns its pid,
// URL and a stop function.
func startTracker(ctx context.Context, bin string, n int) (int, string, func(), error) {
	cmd := exec.CommandContext(ctx, bin, "--addr", "127.0.0.1:0", "--quiet", "--seed", "1", "--brace", fmt.Sprintf("job-{1..%d}", n))
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, "", nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, "", nil, err
	}
	stop := func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop()
		return 0, "", nil, fmt.Errorf("dctracker printed no URL: %v", err)
	}
	go io.Copy(io.Discard, out)
	return cmd.Process.Pid, strings.TrimSpace(line), stop, nil
}

// procCPU is a process's user + system CPU seconds, from /proc (0 if it
// cannot be read).
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (in parentheses, which may hold
	// spaces): state is field 3, utime 14, stime 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}

// floorOnly reports whether a configuration measures a floor (or the
// upstream client) rather than this code: it does not run for -before.
func floorOnly(name string) bool {
	switch name {
	case "upstream", "session", "fsync4", "bolt2", "bolt2-nosync", "spawn":
		return true
	}
	return false
}

// oneSlot reports whether a configuration runs one cycle at a time, so
// that the time between two completions is a cycle.
func oneSlot(name string) bool { return !strings.HasPrefix(name, "pool-") && name != "dcworker-8" }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func printTable(w io.Writer, p params, names, sides []string, got map[key][]sample) {
	rate := func(s sample) float64 { return float64(s.Cycles) / s.Wall }
	ms := func(s sample) float64 { return 1e3 * s.Wall / float64(s.Cycles) }
	per := func(k key, f func(sample) float64) []float64 {
		var v []float64
		for _, s := range got[k] {
			v = append(v, f(s))
		}
		return v
	}
	// ratio is the median over rounds of a(round) / b(round).
	ratio := func(a, b key, f func(sample) float64) (float64, bool) {
		x, y := got[a], got[b]
		if len(x) == 0 || len(x) != len(y) {
			return 0, false
		}
		var v []float64
		for i := range x {
			v = append(v, f(x[i])/f(y[i]))
		}
		return median(v), true
	}
	what := map[string]string{}
	for _, c := range configs {
		what[c.name] = c.what
	}
	fmt.Fprintln(w, "| configuration | cycles/s, median (min–max) | × upstream | ms/cycle (mean) | median cycle | client CPU/cycle | tracker CPU/cycle | fdatasync/cycle | requests/cycle |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, name := range names {
		for _, side := range sides {
			k := key{name, side}
			if len(got[k]) == 0 {
				continue
			}
			r := per(k, rate)
			label := what[name]
			if side != "" {
				label += " (" + side + ")"
			}
			up := "—"
			if x, ok := ratio(k, key{"upstream", ""}, rate); ok {
				up = fmt.Sprintf("%.2f×", x)
			}
			syncs, reqs := "—", "—"
			if s := median(per(k, func(s sample) float64 { return s.Syncs })); s >= 0 {
				syncs = fmt.Sprintf("%.2f", s)
			}
			if q := median(per(k, func(s sample) float64 { return float64(s.Requests) / float64(s.Cycles) })); q >= 0 {
				reqs = fmt.Sprintf("%.2f", q)
			}
			med := "—" // one slot only: a pool's completions overlap
			if oneSlot(name) {
				med = fmt.Sprintf("%.3f", median(per(k, func(s sample) float64 { return s.Median })))
			}
			fmt.Fprintf(w, "| %s | %.0f (%.0f–%.0f) | %s | %.3f | %s | %.3f ms | %.3f ms | %s | %s |\n",
				label, median(r), slices.Min(r), slices.Max(r), up, median(per(k, ms)), med,
				median(per(k, func(s sample) float64 { return 1e3 * s.CPU / float64(s.Cycles) })),
				median(per(k, func(s sample) float64 { return 1e3 * s.trackerCPU / float64(s.Cycles) })),
				syncs, reqs)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Targets (medians over the rounds of per-round figures; this code):")
	check := func(ok bool, format string, args ...any) {
		mark := "not met"
		if ok {
			mark = "met"
		}
		fmt.Fprintf(w, "- %s: %s\n", fmt.Sprintf(format, args...), mark)
	}
	now := func(n string) key { return key{n, ""} }
	if x, ok := ratio(now("pool-16"), now("upstream"), rate); ok {
		check(x >= 8, "Pool 16 / upstream = %.2f× (target ≥ 8×)", x)
	}
	if x, ok := ratio(now("pool-32"), now("pool-16"), rate); ok {
		check(x >= 0.97, "Pool 32 / Pool 16 = %.2f× (target: not slower; 3%% allowed for noise)", x)
	}
	cpu := func(n string) (float64, bool) {
		v := per(now(n), func(s sample) float64 { return 1e3 * s.CPU / float64(s.Cycles) })
		return median(v), len(v) > 0
	}
	if x, ok := cpu("go-1"); ok {
		check(x <= 0.8, "client CPU per cycle, journal on disk = %.3f ms (target ≤ 0.8 ms)", x)
	}
	if x, ok := cpu("go-nosync"); ok {
		check(x <= 0.4, "client CPU per cycle, NoSync = %.3f ms (target ≤ 0.4 ms)", x)
	}
	medianMS := func(s sample) float64 { return s.Median }
	if a, b := got[now("dcworker-1")], got[now("go-1")]; len(a) > 0 && len(a) == len(b) {
		c := got[now("spawn")]
		for _, f := range []struct {
			what string
			fn   func(sample) float64
		}{{"mean", ms}, {"median", medianMS}} {
			var v, floor, above []float64
			for i := range a {
				d := f.fn(a[i]) - f.fn(b[i])
				v = append(v, d)
				if len(c) == len(a) {
					floor = append(floor, f.fn(c[i]))
					above = append(above, d-f.fn(c[i]))
				}
			}
			x := median(v)
			spawned := ""
			if len(floor) > 0 {
				spawned = fmt.Sprintf("; spawn floor (/bin/cat by os/exec alone) %.3f ms, dcworker above it %.3f ms", median(floor), median(above))
			}
			check(x <= 1, "dcworker 1 slot − Go client 1 slot = %.3f ms per job, %s cycles (target ≤ 1 ms)%s", x, f.what, spawned)
		}
	}
	if x, ok := ratio(now("dcworker-1"), now("upstream"), rate); ok {
		check(x >= 1.5, "dcworker 1 slot / upstream = %.2f× (target ≥ 1.5×)", x)
	}
	if a, b, c := got[now("go-1")], got[now("session")], got[now("fsync4")]; len(a) > 0 && len(a) == len(b) && len(a) == len(c) {
		for _, f := range []struct {
			what string
			fn   func(sample) float64
		}{{"mean", ms}, {"median", medianMS}} {
			var v []float64
			for i := range a {
				v = append(v, f.fn(a[i])/(f.fn(b[i])+f.fn(c[i])))
			}
			x := median(v)
			check(x <= 1.15, "1-slot cycle / (session-only cycle + 4 fdatasync) = %.3f, %s cycles (target ≤ 1.15)", x, f.what)
		}
	}
	if v := per(now("go-1"), func(s sample) float64 { return s.Syncs }); len(v) > 0 {
		check(slices.Max(v) <= 4.02, "fdatasync per cycle, 1 slot: at most %.3f (target ≤ 4)", slices.Max(v))
	}
	if v := per(now("go-1"), func(s sample) float64 { return float64(s.Requests) / float64(s.Cycles) }); len(v) > 0 {
		check(slices.Max(v) <= 3, "requests per cycle, 1 slot: at most %.3f (newJob + completeJob = 2; before: + updateProgress)", slices.Max(v))
	}
	printFloors(w, got)
}

// printFloors prints, next to the targets, the floors under them that the
// same rounds measured: what the session alone, bare bbolt transactions and
// a bare spawn of /bin/cat cost, and so what each target leaves for this
// code's own work. Each figure is the median over rounds of the per-round
// sum (rows of one round ran minutes apart at most).
func printFloors(w io.Writer, got map[key][]sample) {
	cpu := func(s sample) float64 { return 1e3 * s.CPU / float64(s.Cycles) }
	ms := func(s sample) float64 { return 1e3 * s.Wall / float64(s.Cycles) }
	med := func(s sample) float64 { return s.Median }
	// sum is the median over rounds of f summed over the configurations;
	// false if one of them did not run in every round.
	sum := func(f func(sample) float64, names ...string) (float64, bool) {
		n := -1
		for _, name := range names {
			k := len(got[key{name, ""}])
			if k == 0 || (n >= 0 && k != n) {
				return 0, false
			}
			n = k
		}
		var v []float64
		for i := range n {
			t := 0.0
			for _, name := range names {
				t += f(got[key{name, ""}][i])
			}
			v = append(v, t)
		}
		return median(v), true
	}
	// diff is the median over rounds of f(a) minus f summed over names;
	// false unless all of them ran in the same rounds.
	diff := func(f func(sample) float64, a string, names ...string) (float64, bool) {
		if _, ok := sum(f, append([]string{a}, names...)...); !ok {
			return 0, false
		}
		var v []float64
		for i, s := range got[key{a, ""}] {
			t := f(s)
			for _, name := range names {
				t -= f(got[key{name, ""}][i])
			}
			v = append(v, t)
		}
		return median(v), true
	}
	// taken says what this code takes above a floor, if its row ran.
	taken := func(x float64, ok bool) string {
		if !ok {
			return ""
		}
		return fmt.Sprintf("; they take %.3f ms", x)
	}
	var lines []string
	add := func(format string, args ...any) { lines = append(lines, fmt.Sprintf("- "+format, args...)) }
	if x, ok := sum(cpu, "session", "bolt2"); ok {
		add("client CPU, journal on disk: session + bare bbolt (4 fdatasync) = %.3f ms, so the target of 0.8 ms leaves %.3f ms for the client and journal%s", x, 0.8-x, taken(diff(cpu, "go-1", "session", "bolt2")))
	}
	if x, ok := sum(cpu, "session", "bolt2-nosync"); ok {
		add("client CPU, NoSync: session + bare bbolt NoSync = %.3f ms, so the target of 0.4 ms leaves %.3f ms for the client and journal%s", x, 0.4-x, taken(diff(cpu, "go-nosync", "session", "bolt2-nosync")))
	}
	if x, ok := sum(med, "session", "bolt2"); ok {
		if y, ok := sum(med, "go-1"); ok {
			add("1-slot cycle, median: session + bare bbolt = %.3f ms; the client's cycle %.3f ms is %.3f× that (target 4 allows 1.15× of session + raw 4 fdatasync)", x, y, y/x)
		}
	}
	if up, ok := sum(ms, "upstream"); ok {
		if x, ok := sum(ms, "go-1", "spawn"); ok {
			add("dcworker 1 slot ≥ 1.5× upstream needs a cycle of at most %.3f ms (upstream %.3f ms / 1.5); the Go client's cycle + the bare spawn of /bin/cat = %.3f ms (mean cycles), before dcworker does anything of its own", up/1.5, up, x)
		}
	}
	if x, ok := sum(ms, "spawn"); ok {
		m, _ := sum(med, "spawn")
		add("dcworker − Go client ≤ 1 ms includes spawning /bin/cat, which alone costs %.3f ms (mean), %.3f ms (median) by os/exec", x, m)
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Floors under the targets (same rounds; medians over rounds of per-round sums):")
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}
