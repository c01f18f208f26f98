package proxy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/proxy"
	"github.com/distcompute/distcompute-go/trackertest"
)

// program is a program's HTTP client: one connection, as the upstream
// client's requests.Session keeps.
type program struct {
	t   *testing.T
	url string
	hc  *http.Client
}

func newProgram(t *testing.T, url string) *program {
	tr := &http.Transport{MaxConnsPerHost: 1}
	t.Cleanup(tr.CloseIdleConnections)
	return &program{t, url, &http.Client{Transport: tr}}
}

func (p *program) do(method, path, body string) (int, string) {
	p.t.Helper()
	req, err := http.NewRequest(method, p.url+path, strings.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// register registers a worker for stage a and returns its token.
func (p *program) register() string {
	p.t.Helper()
	code, body := p.do(http.MethodGet, "/api/new?nickname=n&stage=a", "")
	var reg struct{ Token string }
	if code != http.StatusOK || json.Unmarshal([]byte(body), &reg) != nil {
		p.t.Fatalf("register: %d %s", code, body)
	}
	return reg.Token
}

// newJob claims a job for token and returns its number.
func (p *program) newJob(token string) int {
	p.t.Helper()
	code, body := p.do(http.MethodPost, "/api/newJob", fmt.Sprintf(`{"token":%q}`, token))
	var j struct{ Number int }
	if code != http.StatusOK || json.Unmarshal([]byte(body), &j) != nil {
		p.t.Fatalf("newJob: %d %s", code, body)
	}
	return j.Number
}

// complete sends token's completion with out and returns the answer.
func (p *program) complete(token, out string) (int, string) {
	p.t.Helper()
	return p.do(http.MethodPost, "/api/completeJob", fmt.Sprintf(`{"token":%q,"data":%q}`, token, out))
}

// waitHeld waits until the tracker's only worker holds a job and returns it.
func waitHeld(t *testing.T, srv *trackertest.Server) int {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ws := srv.Tracker.Workers(); len(ws) == 1 && ws[0].Job != 0 {
			return ws[0].Job
		}
	}
	t.Fatal("no job claimed ahead at the tracker within a minute")
	return 0
}

// TestClaimAhead: a jobCount that follows a completion on the program's
// connection starts the claim of its next job, which its newJob gets
// (after a restart of the proxy too). The count the program sees is the
// tracker's; a completion before the job is handed out is answered as with
// no job held and does not reach the job claimed ahead.
func TestClaimAhead(t *testing.T) {
	srv := trackertest.Start(t, trackertest.Options{Jobs: []any{"j-1", "j-2", "j-3", "j-4"}, Seed: 3})
	rp := startProxy(t, srv.URL, nil)
	prog := newProgram(t, rp.URL)
	token := prog.register()
	complete := func(out string) (int, string) { return prog.complete(token, out) }
	newJob := func() int { return prog.newJob(token) }
	count := func(p *program, want string) {
		t.Helper()
		if code, body := p.do(http.MethodGet, "/api/jobCount?stage=a", ""); code != http.StatusOK || body != want {
			t.Errorf("jobCount: %d %q, want %s", code, body, want)
		}
	}

	// No completion yet: a jobCount claims nothing.
	count(prog, "4")
	first := newJob()
	if code, body := complete("o1"); code != http.StatusOK {
		t.Fatalf("completeJob: %d %s", code, body)
	}
	count(prog, "3") // the tracker's, taken before the claim ahead
	ahead := waitHeld(t, srv)
	if ahead == first {
		t.Fatalf("claimed ahead the job just completed (%d)", ahead)
	}
	count(prog, "3")                  // 2 open at the tracker, and the program's own
	count(newProgram(t, rp.URL), "2") // another program's: the tracker's
	// The resent completion is answered as applied, another one as the
	// tracker would with no job held; neither completes the job ahead.
	if code, body := complete("o1"); code != http.StatusOK {
		t.Errorf("resent completeJob: %d %s, want 200", code, body)
	}
	if code, body := complete("other"); code != http.StatusForbidden || body != "You do not have an open job." {
		t.Errorf("completeJob before newJob: %d %q, want the tracker's 403", code, body)
	}
	if j, _ := srv.Tracker.Job(ahead); j.State != trackertest.JobHeld || srv.Tracker.Leaderboard()["n"] != 1 {
		t.Fatalf("the job claimed ahead is %s, completions %d: want held, 1", j.State, srv.Tracker.Leaderboard()["n"])
	}
	if n := newJob(); n != ahead {
		t.Fatalf("newJob gave job %d, want %d (claimed ahead)", n, ahead)
	}
	if code, body := complete("o2"); code != http.StatusOK {
		t.Fatalf("completeJob: %d %s", code, body)
	}

	// A job claimed ahead is durable before it is handed out: a proxy
	// restarted on the journal hands it to the program (its token lives on).
	count(prog, "2")
	ahead = waitHeld(t, srv)
	// Held at the tracker is not yet durable: the program's next jobCount
	// waits for the claim ahead to end (its commit included).
	count(prog, "2")
	if err := rp.Stop(); err != nil && err != proxy.ErrStopped {
		t.Fatal(err)
	}
	rp2 := startProxy(t, srv.URL, func(c *proxy.Config) { c.Journal = rp.Journal })
	prog = newProgram(t, rp2.URL)
	if n := newJob(); n != ahead {
		t.Fatalf("newJob after a restart gave job %d, want %d (claimed ahead)", n, ahead)
	}
	if code, body := complete("o3"); code != http.StatusOK {
		t.Fatalf("completeJob after a restart: %d %s", code, body)
	}
	if j, _ := srv.Tracker.Job(ahead); j.Outputs["a"] == nil || *j.Outputs["a"] != "o3" {
		t.Errorf("job %d's output at the tracker: %+v, want o3", ahead, j.Outputs)
	}
	if n := srv.Tracker.Leaderboard()["n"]; n != 3 {
		t.Errorf("completions at the tracker: %d, want 3", n)
	}
}
