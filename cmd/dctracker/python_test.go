package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestUpstreamClientRequests runs testdata/upstream_requests.py, which makes the requests the
// upstream Python client makes (paths, bodies, "<!json!>" decoding), through its README loop
// for a stage-a and a stage-b worker against dctracker. It needs python3 (standard library
// only) and is skipped without it.
func TestUpstreamClientRequests(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found: skipping the upstream-client request test")
	}
	url, _, stop := startRun(t, "--project", "Demo", "--stages", "CPU,GPU", "--brace", "shard-{1..5}.tar")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "testdata/upstream_requests.py", url).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var got struct {
		Project    string   `json:"project"`
		StageNames []string `json:"stage_names"`
		DoneA      []int    `json:"done_a"`
		DoneB      []int    `json:"done_b"`
		InitGPU    string   `json:"init_gpu"`
		Left       []int    `json:"left"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("summary: %v\n%s", err, out)
	}
	all := "[1 2 3 4 5]"
	if got.Project != "Demo" || strings.Join(got.StageNames, ",") != "CPU,GPU" ||
		fmt.Sprint(got.DoneA) != all || fmt.Sprint(got.DoneB) != all || fmt.Sprint(got.Left) != "[0 0]" {
		t.Fatalf("summary %+v, want every job done at both stages and none left", got)
	}
	if !strings.HasPrefix(got.InitGPU, "400 Invalid worker stage: 'g'.") {
		t.Errorf("init(stage=GPU): %q, want the 400 the upstream tracker gives", got.InitGPU)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
