//go:build unix

package worker

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// BenchmarkRunCat is one run of /bin/cat as dcworker runs a job's command
// (start and wait, with the job's files prepared), beside
// BenchmarkExecCat, the same process started by os/exec alone: the
// difference is what the runner adds to spawning the command.
func BenchmarkRunCat(b *testing.B) {
	files := newJobFiles(b.TempDir(), 0)
	env := os.Environ()
	for b.Loop() {
		if err := files.prepare(nil); err != nil {
			b.Fatal(err)
		}
		if err := files.emptyProgress(); err != nil {
			b.Fatal(err)
		}
		p, err := start(context.Background(), spec{argv: []string{"/bin/cat"}, env: env, stdin: "job input",
			checkpointPath: files.checkpoint, checkpointEmpty: true, progressPath: files.progress, maxOutput: DefaultMaxOutput,
			onProgress: func(string) {}, onCheckpoint: func([]byte) {}})
		if err != nil {
			b.Fatal(err)
		}
		if res := p.wait(); !res.ok() || string(res.output) != "job input" {
			b.Fatalf("%s, output %q", res.describe(), res.output)
		}
	}
}

func BenchmarkExecCat(b *testing.B) {
	env := os.Environ()
	for b.Loop() {
		cmd := exec.Command("/bin/cat")
		cmd.Env = env
		cmd.Stdin = strings.NewReader("job input")
		out, err := cmd.Output()
		if err != nil || string(out) != "job input" {
			b.Fatal(err, string(out))
		}
	}
}
