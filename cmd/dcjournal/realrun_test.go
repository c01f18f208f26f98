package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/internal/hooks"
	"github.com/distcompute/distcompute-go/session"
	"github.com/distcompute/distcompute-go/trackertest"
)

// Journals made by real client runs against a real (in-memory) tracker in another
// process, killed mid-way: the leftovers an operator finds after a preemption.

// trackerMain: tracker ADDRFILE NJOBS. Serves a trackertest tracker with NJOBS JSON
// jobs ({"shard": N}) and a fake clock, writes its URL to ADDRFILE, and serves two
// test endpoints: GET /_test/jobs (the jobs' states) and POST /_test/advance?d=3h
// (advance the clock, then run the idle sweep).
func trackerMain() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: tracker ADDRFILE NJOBS")
		os.Exit(2)
	}
	n, _ := strconv.Atoi(os.Args[2])
	var jobs []any
	for i := 1; i <= n; i++ {
		jobs = append(jobs, map[string]any{"shard": i})
	}
	clock := trackertest.NewFakeClock(time.Now())
	tr := trackertest.New(trackertest.Options{Project: "laion-demo", Jobs: jobs, Clock: clock, Seed: 1})
	mux := http.NewServeMux()
	mux.Handle("/", tr)
	mux.HandleFunc("GET /_test/jobs", func(w http.ResponseWriter, r *http.Request) {
		views := tr.Jobs()
		sort.Slice(views, func(i, k int) bool { return views[i].Number < views[k].Number })
		for _, v := range views {
			fmt.Fprintf(w, "job %d %s %s completions=%d\n", v.Number, v.Stage, v.State, v.Completions[v.Stage]+v.Completions["a"])
		}
	})
	mux.HandleFunc("POST /_test/advance", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		clock.Advance(d)
		tr.CheckIdle()
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tracker:", err)
		os.Exit(1)
	}
	go http.Serve(ln, mux)
	tmp := os.Args[1] + ".tmp"
	os.WriteFile(tmp, []byte("http://"+ln.Addr().String()), 0o644)
	os.Rename(tmp, os.Args[1])
	waitSignal()
}

// trackerctlMain: trackerctl URL jobs | trackerctl URL advance DURATION.
func trackerctlMain() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: trackerctl URL jobs|advance D")
		os.Exit(2)
	}
	var resp *http.Response
	var err error
	switch os.Args[2] {
	case "jobs":
		resp, err = http.Get(os.Args[1] + "/_test/jobs")
	case "advance":
		resp, err = http.Post(os.Args[1]+"/_test/advance?d="+os.Args[3], "text/plain", nil)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "trackerctl:", err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	b := make([]byte, 1<<16)
	n, _ := resp.Body.Read(b)
	os.Stdout.Write(b[:n])
	if resp.StatusCode != 200 {
		os.Exit(1)
	}
}

// crashworkerMain: crashworker URL JOURNAL complete|held. A worker that claims a job,
// logs progress and checkpoints, then dies by SIGKILL: "complete" right after its
// completion is journaled and before it is sent; "held" while it holds the job.
func crashworkerMain() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: crashworker URL JOURNAL complete|held")
		os.Exit(2)
	}
	url, path, scenario := os.Args[1], os.Args[2], os.Args[3]
	die := func() {
		if self, err := os.FindProcess(os.Getpid()); err == nil {
			self.Kill() // SIGKILL on Unix, TerminateProcess on Windows
		}
		select {}
	}
	ctx := hooks.With(context.Background(), func(p hooks.Point, op string) {
		if scenario == "complete" && p == hooks.AfterJournal && op == "complete" {
			die()
		}
	})
	c, err := client.Init(ctx, url, "a",
		client.WithJournal(path), client.WithNickname("spot-7"), client.WithSlot("0"),
		client.WithRetry(session.RetryPolicy{InitialInterval: 10 * time.Millisecond, MaxElapsedTime: 5 * time.Second}))
	if err != nil {
		fmt.Fprintln(os.Stderr, "crashworker:", err)
		os.Exit(1)
	}
	if err := c.NewJob(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "crashworker:", err)
		os.Exit(1)
	}
	var in map[string]any
	if err := c.Job().Unmarshal(&in); err != nil {
		fmt.Fprintln(os.Stderr, "crashworker:", err)
		os.Exit(1)
	}
	c.Log("resized 10/10")
	if err := c.Checkpoint(ctx, []byte(`{"done":10}`)); err != nil {
		fmt.Fprintln(os.Stderr, "crashworker:", err)
		os.Exit(1)
	}
	fmt.Printf("job %d\n", c.JobID())
	if scenario == "held" {
		die()
	}
	out, _ := json.Marshal(map[string]any{"shard": in["shard"], "images": 1000})
	raw, _ := session.RawJSON(out)
	c.CompleteJob(ctx, raw)
	fmt.Fprintln(os.Stderr, "crashworker: the hook did not fire")
	os.Exit(1)
}
