package journal_test

import (
	"bufio"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/journaltest"
	"github.com/distcompute/distcompute-go/journal"
)

const crashChildEnv = "JOURNAL_CRASH_CHILD"

// TestCrashChild is the child of TestCrash: it appends durable events from
// four slots at once, forever, and prints the seq of each to stdout once
// Append returned; it also compacts the file every 40 ms. It is skipped unless TestCrash started it.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("run by TestCrash")
	}
	db, err := journal.Open(path, &journal.Options{Timeout: 10 * time.Second, Retention: -1, ProgressInterval: 5 * time.Millisecond})
	if err != nil {
		fmt.Fprintf(os.Stderr, "child: %v\n", err)
		os.Exit(2)
	}
	os.Stdout.Write([]byte("ready\n"))
	// Compact now and then, so that kills also land mid-compaction.
	go func() {
		for {
			time.Sleep(40 * time.Millisecond)
			if _, _, err := db.Compact(); err != nil {
				fmt.Fprintf(os.Stderr, "child: compact: %v\n", err)
				os.Exit(2)
			}
		}
	}()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slot := fmt.Sprintf("c%d", g)
			rng := rand.New(rand.NewSource(int64(os.Getpid()*10 + g)))
			for {
				st, err := db.State(slot)
				if err != nil {
					fmt.Fprintf(os.Stderr, "child: %v\n", err)
					os.Exit(2)
				}
				orphans, err := db.Orphans()
				if err != nil {
					fmt.Fprintf(os.Stderr, "child: %v\n", err)
					os.Exit(2)
				}
				var mine []uint64
				for _, o := range orphans {
					if o.Slot == slot {
						mine = append(mine, o.Seq)
					}
				}
				e := journaltest.RandomEvent(rng, st, mine, 50)
				if rng.Intn(3) == 0 {
					db.AppendProgress(slot, "working "+strconv.Itoa(rng.Intn(100)))
				}
				got, err := db.Append(e)
				if err != nil {
					fmt.Fprintf(os.Stderr, "child: append: %v\n", err)
					os.Exit(2)
				}
				// A progress event may be replaced by the next one of its
				// slot, by design: only other kinds must survive.
				// So may a checkpoint, by a newer one of its job: it is
				// printed with its slot and job.
				switch got.Kind {
				case journal.KindProgress:
				case journal.KindCheckpoint:
					fmt.Printf("%d %s %d\n", got.Seq, got.Slot, got.Job)
				default:
					os.Stdout.Write([]byte(strconv.FormatUint(got.Seq, 10) + "\n"))
				}
			}
		}()
	}
	wg.Wait()
}

// checkpointRef names a checkpoint event printed by the child.
type checkpointRef struct {
	seq  uint64
	slot string
	job  int
}

// TestCrash SIGKILLs a child process that appends durable events, at random
// moments, JOURNAL_CRASH_KILLS times (default 100). After each kill the
// journal must open, hold every seq the child printed (every Append that
// returned), and pass Verify.
func TestCrash(t *testing.T) {
	kills := 100
	if n, err := strconv.Atoi(os.Getenv("JOURNAL_CRASH_KILLS")); err == nil {
		kills = n
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	rng := rand.New(rand.NewSource(1))
	printed := 0
	killedMidAppend := 0
	for i := 0; i < kills; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var seqs []uint64
		checkpoints := make(map[uint64]checkpointRef)
		first := make(chan struct{})
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			sc := bufio.NewScanner(out)
			once := sync.Once{}
			for sc.Scan() {
				line := sc.Text()
				if line == "ready" {
					continue
				}
				var cp checkpointRef
				n, _ := fmt.Sscanf(line, "%d %s %d", &cp.seq, &cp.slot, &cp.job)
				if n == 3 {
					mu.Lock()
					checkpoints[cp.seq] = cp
					mu.Unlock()
				}
				seq, err := strconv.ParseUint(strings.Fields(line + " x")[0], 10, 64)
				if err != nil || (n != 3 && strings.Contains(line, " ")) {
					continue // a line cut by the kill, or test output
				}
				mu.Lock()
				seqs = append(seqs, seq)
				mu.Unlock()
				once.Do(func() { close(first) })
			}
		}()
		if rng.Intn(4) == 0 {
			// Anywhere, including during Open.
			time.Sleep(time.Duration(rng.Intn(150)) * time.Millisecond)
		} else {
			select {
			case <-first:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("run %d: the child printed nothing: %s", i, stderr.String())
			}
			time.Sleep(time.Duration(rng.Intn(80000)) * time.Microsecond)
			killedMidAppend++
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-readDone
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("run %d: child ended by itself (%v): %s", i, err, stderr.String())
		}
		mu.Lock()
		want := seqs
		mu.Unlock()
		printed += len(want)

		db, err := journal.Open(path, &journal.Options{Retention: -1, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatalf("run %d: open after kill: %v", i, err)
		}
		have := make(map[uint64]bool)
		newest := make(map[checkpointRef]uint64) // by slot and job: the newest checkpoint's seq
		if err := db.Events(journal.Filter{}, func(e journal.Event) error {
			have[e.Seq] = true
			if e.Kind == journal.KindCheckpoint {
				k := checkpointRef{slot: e.Slot, job: e.Job}
				newest[k] = max(newest[k], e.Seq)
			}
			return nil
		}); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		for _, seq := range want {
			cp, isCheckpoint := checkpoints[seq]
			if isCheckpoint && newest[checkpointRef{slot: cp.slot, job: cp.job}] > seq {
				continue // replaced by a newer checkpoint of its job
			}
			if !have[seq] {
				t.Errorf("run %d: seq %d was acknowledged to the child but is not in the journal", i, seq)
			}
		}
		if errs := db.Verify(); errs != nil {
			t.Fatalf("run %d: Verify after kill: %v", i, errs)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path + ".compact"); err == nil {
			t.Errorf("run %d: Open left the interrupted compaction's file", i)
		}
		if t.Failed() {
			return
		}
	}
	t.Logf("%d kills (%d after appends began); %d acknowledged appends all found", kills, killedMidAppend, printed)
}
