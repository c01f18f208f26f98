package crashtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/distcompute/distcompute-go/client"
)

// Compute returns the output a crash-test worker computes for job number job
// at stage from its input (wire form, nil for null data). It is a pure
// function of its arguments, so the test can check every output the tracker
// holds. The job number only enters when the input is null (the upstream
// tracker's stage-b bug), where nothing else tells jobs apart.
func Compute(stage string, job int, input *string) string {
	in := "null#" + strconv.Itoa(job)
	if input != nil {
		in = *input
	}
	sum := sha256.Sum256([]byte(stage + "\x00" + in))
	return stage + "(" + in + ")#" + hex.EncodeToString(sum[:4])
}

// ShouldFlag reports whether a worker flags this input as invalid (once per
// worker): a deterministic draw with probability rate.
func ShouldFlag(stage string, input *string, rate float64) bool {
	if rate <= 0 || input == nil {
		return false
	}
	sum := sha256.Sum256([]byte("flag\x00" + stage + "\x00" + *input))
	return float64(sum[0])/256 < rate
}

// FlagKey names a (stage, job, input) for a FlagSet.
func FlagKey(stage string, job int, input *string) string {
	in := "null"
	if input != nil {
		sum := sha256.Sum256([]byte(*input))
		in = hex.EncodeToString(sum[:8])
	}
	return stage + "/" + strconv.Itoa(job) + "/" + in
}

// Computation records what a worker computed for a job, before it submits the
// output: the test checks each output the tracker holds against these.
type Computation struct {
	Worker string  `json:"worker"`
	Stage  string  `json:"stage"`
	Job    int     `json:"job"`
	Input  *string `json:"input"`
	Output string  `json:"output"`
	// Resumed is true when the job was handed back by recovery after a
	// restart (possibly with a checkpoint) rather than claimed by NewJob.
	Resumed bool `json:"resumed,omitempty"`
}

// FlagSet remembers which jobs a worker has flagged, so that it flags each at
// most once: with at most 4 workers per stage no job reaches the 5 flags that
// would send it back a stage, which keeps "completed exactly once" a fair
// invariant.
type FlagSet interface {
	Has(key string) bool
	Add(key string) error
}

// MapFlagSet is an in-memory FlagSet. It is not safe for concurrent use.
type MapFlagSet map[string]bool

// Has implements FlagSet.
func (m MapFlagSet) Has(key string) bool { return m[key] }

// Add implements FlagSet.
func (m MapFlagSet) Add(key string) error { m[key] = true; return nil }

// Config configures Work.
type Config struct {
	Name  string // worker name, copied into each Computation
	Stage string // the stage the client works at

	// Done reports that the test has seen all work finished: a worker whose
	// claim finds no job then says bye and returns nil.
	Done func() bool
	// PollInterval is the wait after a claim found no job (default 10ms).
	PollInterval time.Duration

	// Steps and StepDelay shape the computation of one job: Steps steps of
	// StepDelay each, a Log call per step and, with Checkpoint, a checkpoint
	// halfway (a resumed job goes on from its last checkpoint).
	Steps      int
	StepDelay  time.Duration
	Checkpoint bool

	// FlagRate is the probability that a worker flags an input (see
	// ShouldFlag); FlagFirst makes it flag the first job it gets that it has
	// not flagged before, so that a run reliably reaches the flag points.
	FlagRate  float64
	FlagFirst bool
	Flagged   FlagSet // required when flagging; nil: never flag

	// Record is called with each computation before its output is
	// submitted; an error stops Work.
	Record func(Computation) error
	// MidJob, if set, is called once per job halfway through its
	// computation, right after the checkpoint (the crash worker kills
	// itself there). It needs Checkpoint.
	MidJob func(job int)
}

// Work runs the worker loop on c until cfg.Done holds and no job is left:
// claim (or take the job recovery handed back), compute with progress and a
// checkpoint, record, complete; flag now and then. It says bye before it
// returns nil. A job lost with the worker (client.ErrWorkerGone: the
// tracker timed it out) is left behind and the loop goes on; other errors
// from the client are returned wrapped, as is ctx's error.
func Work(ctx context.Context, c *client.Client, cfg Config) error {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 10 * time.Millisecond
	}
	if cfg.Steps <= 0 {
		cfg.Steps = 1
	}
	flagFirst := cfg.FlagFirst
	for {
		resumed := false
		if c.HasJob() {
			resumed = true
		} else {
			err := c.NewJob(ctx)
			switch {
			case err == nil:
			case errors.Is(err, client.ErrNoJobs):
				if cfg.Done != nil && cfg.Done() {
					if err := c.Bye(ctx); err != nil {
						return fmt.Errorf("bye: %w", err)
					}
					return nil
				}
				if err := sleep(ctx, cfg.PollInterval); err != nil {
					return err
				}
				continue
			default:
				return fmt.Errorf("newJob: %w", err)
			}
		}
		job := c.JobID()
		input := c.Job().Wire()

		if cfg.Flagged != nil {
			key := FlagKey(cfg.Stage, job, input)
			if !cfg.Flagged.Has(key) && (flagFirst || ShouldFlag(cfg.Stage, input, cfg.FlagRate)) {
				flagFirst = false
				if err := cfg.Flagged.Add(key); err != nil {
					return err
				}
				if err := c.FlagInvalidData(ctx); err != nil && !errors.Is(err, client.ErrWorkerGone) {
					return fmt.Errorf("flag job %d: %w", job, err)
				}
				continue
			}
		}

		first := 0
		if resumed {
			if cp := c.LastCheckpoint(); cp != nil {
				j, step, err := parseCheckpoint(cp)
				if err != nil || j != job {
					return fmt.Errorf("job %d resumed with checkpoint %q (not its own)", job, cp)
				}
				first = step // the checkpoint names the next step
			}
		}
		half := cfg.Steps / 2
		for step := first; step < cfg.Steps; step++ {
			c.Log(fmt.Sprintf("job %d: step %d of %d", job, step+1, cfg.Steps))
			if step == half && cfg.Checkpoint {
				err := c.Checkpoint(ctx, []byte(fmt.Sprintf("%d/%d", job, step+1)))
				if errors.Is(err, client.ErrWorkerGone) {
					break // the job was lost with the worker: claim another
				}
				if err != nil {
					return fmt.Errorf("checkpoint job %d: %w", job, err)
				}
				if cfg.MidJob != nil {
					cfg.MidJob(job)
				}
			}
			if err := sleep(ctx, cfg.StepDelay); err != nil {
				return err
			}
		}
		if !c.HasJob() {
			continue // lost with the worker (the tracker timed it out)
		}
		out := Compute(cfg.Stage, job, input)
		if cfg.Record != nil {
			rec := Computation{Worker: cfg.Name, Stage: cfg.Stage, Job: job, Input: input, Output: out, Resumed: resumed}
			if err := cfg.Record(rec); err != nil {
				return err
			}
		}
		// ErrWorkerGone: the tracker timed the worker out and re-opened the
		// job; the client keeps the output as an orphan (submitted if the
		// job comes round again) and registers afresh on the next claim.
		if err := c.CompleteJob(ctx, out); err != nil && !errors.Is(err, client.ErrWorkerGone) {
			return fmt.Errorf("complete job %d: %w", job, err)
		}
	}
}

func parseCheckpoint(b []byte) (job, step int, err error) {
	j, s, ok := strings.Cut(string(b), "/")
	if !ok {
		return 0, 0, errors.New("malformed")
	}
	if job, err = strconv.Atoi(j); err != nil {
		return 0, 0, err
	}
	if step, err = strconv.Atoi(s); err != nil {
		return 0, 0, err
	}
	return job, step, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
