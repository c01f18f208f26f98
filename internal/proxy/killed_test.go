package proxy_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/proxy"
	"github.com/distcompute/distcompute-go/trackertest"
)

// childEnv makes the test binary a proxy that kills itself at a hook point
// (childProxy, called by TestMain): a real process, really killed, at the
// moment a test names.
const childEnv = "DCPROXY_TEST_CHILD"

// childProxy runs proxy.Run with the configuration in the environment
// (DCPROXY_TEST_TRACKER, _JOURNAL, _ADDR: a file to write the address to,
// _KILL: "POINT:OP:N", the Nth call of the hook at POINT for OP) and
// SIGKILLs itself at that call, after writing "killed" to _ADDR.killed.
// It returns the exit status.
func childProxy() int {
	var n atomic.Int64
	var point, op string
	var at int64
	if parts := strings.Split(os.Getenv(childEnv+"_KILL"), ":"); len(parts) == 3 {
		point, op = parts[0], parts[1]
		at, _ = strconv.ParseInt(parts[2], 10, 64)
	}
	addrFile := os.Getenv(childEnv + "_ADDR")
	cfg := proxy.Config{
		TrackerURL: os.Getenv(childEnv + "_TRACKER"),
		Journal:    os.Getenv(childEnv + "_JOURNAL"),
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	proxy.SetHook(&cfg, func(p, o string) {
		if p == point && o == op && n.Add(1) == at {
			_ = os.WriteFile(addrFile+".killed", []byte("killed"), 0o600)
			self, _ := os.FindProcess(os.Getpid())
			_ = self.Kill()
			select {} // the kill is on its way
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	tmp := addrFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(ln.Addr().String()), 0o600); err != nil || os.Rename(tmp, addrFile) != nil {
		fmt.Fprintln(os.Stderr, "writing the address:", err)
		return 2
	}
	if err := proxy.Run(context.Background(), cfg, ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startKillingProxy starts the test binary as a proxy that kills itself at
// the kill point ("POINT:OP:N") and returns its URL, the file whose
// existence says it killed itself, and the running command.
func startKillingProxy(t *testing.T, trackerURL, jpath, kill string) (string, string, *exec.Cmd) {
	t.Helper()
	addrFile := filepath.Join(t.TempDir(), "addr")
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childEnv+"_TRACKER="+trackerURL,
		childEnv+"_JOURNAL="+jpath, childEnv+"_ADDR="+addrFile, childEnv+"_KILL="+kill)
	logf, err := os.Create(filepath.Join(t.TempDir(), "child.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("the killed proxy's log:\n%s", b)
		}
	})
	cmd.Stdout, cmd.Stderr = logf, logf
	dieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(addrFile); err == nil {
			return "http://" + string(b), addrFile + ".killed", cmd
		}
		if time.Now().After(deadline) {
			t.Fatal("the child proxy wrote no address within a minute")
		}
	}
}

// TestKilledMidClaimAhead: dcproxy is SIGKILLed after the tracker answered
// a claim ahead and before the claim was recorded: the job is held at the
// tracker under the proxy's upstream worker and is in no journal. The
// restarted proxy still knows the program's token, the program's next
// newJob releases the job (the tracker's newJob releases the one a worker
// holds), and every job is then completed exactly once with the program's
// output; none is left held.
func TestKilledMidClaimAhead(t *testing.T) {
	jobs := []any{"j-1", "j-2", "j-3", "j-4", "j-5"}
	srv := trackertest.Start(t, trackertest.Options{Jobs: jobs, Seed: 11})
	jpath := filepath.Join(t.TempDir(), "proxy.db")
	// The program's newJob is the first claim, the claim ahead the second.
	url, killed, cmd := startKillingProxy(t, srv.URL, jpath, "after-send:claim:2")

	prog := newProgram(t, url)
	token := prog.register()
	complete := func(p *program, n int) {
		t.Helper()
		if code, body := p.complete(token, fmt.Sprintf("out-%d", n)); code != http.StatusOK {
			t.Fatalf("completeJob of job %d: %d %s", n, code, body)
		}
	}
	first := prog.newJob(token)
	complete(prog, first)
	// This jobCount starts the claim ahead, which kills the proxy; its own
	// answer may or may not have left first.
	if resp, err := prog.hc.Get(url + "/api/jobCount?stage=a"); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case <-waited:
	case <-time.After(time.Minute):
		t.Fatal("the proxy did not kill itself at the claim ahead within a minute")
	}
	if _, err := os.Stat(killed); err != nil {
		t.Fatalf("the proxy ended without reaching the claim ahead's kill point: %v", err)
	}
	ahead := waitHeld(t, srv)
	if ahead == first {
		t.Fatalf("the tracker holds job %d, the one just completed", ahead)
	}

	rp := startProxy(t, srv.URL, func(c *proxy.Config) { c.Journal = jpath })
	prog = newProgram(t, rp.URL)
	for i := 0; ; i++ {
		if i > len(jobs) {
			t.Fatalf("more than %d claims for %d jobs", i, len(jobs))
		}
		if code, body := prog.do(http.MethodGet, "/api/jobCount?stage=a", ""); code != http.StatusOK {
			t.Fatalf("jobCount: %d %s", code, body)
		} else if body == "0" {
			break
		}
		n := prog.newJob(token)
		complete(prog, n)
	}
	for _, j := range srv.Tracker.Jobs() {
		want := fmt.Sprintf("out-%d", j.Number)
		if j.State != trackertest.JobClosed || j.Completions["a"] != 1 || j.Outputs["a"] == nil || *j.Outputs["a"] != want {
			t.Errorf("job %d: %s, %d completions, output %v; want closed once with %q", j.Number, j.State, j.Completions["a"], deref(j.Outputs["a"]), want)
		}
	}
	if held := srv.Tracker.JobCounts()[trackertest.JobHeld]; held != 0 {
		t.Errorf("%d jobs held at the tracker at the end", held)
	}
}
