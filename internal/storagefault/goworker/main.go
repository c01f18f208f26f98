// Command goworker is the Go client program of the storage-fault suite
// (package storagefault): a worker written against package client as its
// README shows, that computes "done:" + input for every job of its stage
// and exits once the stage has no open job and it holds nothing.
//
// When the client cannot record an action durably (client.ErrNotRecorded:
// nothing recorded, nothing sent), goworker keeps the output in memory and
// calls again after a pause that doubles from -retry-min to -retry-max; the
// client reopens its journal by itself on that call. Every attempt prints a
// line "goworker: not recorded ..." on stderr, so that the suite counts the
// attempts; the end prints "goworker: done completed=N not_recorded=M".
//
// -compact-every N compacts the journal (journal.DB.Compact, what the
// journal's flusher runs on a large file) after every N completions, so that
// a fault can be injected mid-compaction.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/journal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "goworker:", err)
		os.Exit(1)
	}
}

type worker struct {
	pool               *client.Pool
	c                  *client.Client
	retryMin, retryMax time.Duration
	completed          int
	notRecorded        int
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("goworker", flag.ContinueOnError)
	tracker := fs.String("tracker", "", "tracker URL")
	path := fs.String("journal", "", "journal path")
	compactEvery := fs.Int("compact-every", 0, "compact the journal after every N completions (0: never)")
	minFree := fs.Int64("min-free", 0, "journal.Options.MinFree (0: the default, -1: no check, so that a full disk answers ENOSPC)")
	w := &worker{}
	fs.DurationVar(&w.retryMin, "retry-min", time.Second, "first pause after an action not recorded")
	fs.DurationVar(&w.retryMax, "retry-max", 30*time.Second, "longest pause after an action not recorded")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *tracker == "" || *path == "" {
		return errors.New("-tracker and -journal are required")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var err error
	w.pool, err = client.OpenPool(ctx, *tracker, "a", 1, client.WithJournal(*path), client.WithLogger(log),
		client.WithJournalOptions(&journal.Options{MinFree: *minFree}),
		client.WithNickname("goworker"), client.WithWaitBackoff(10*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		return err
	}
	defer w.pool.Close()
	w.c = w.pool.Clients()[0]
	for ctx.Err() == nil {
		done, err := w.claim(ctx)
		if err != nil || done {
			fmt.Fprintf(os.Stderr, "goworker: done completed=%d not_recorded=%d\n", w.completed, w.notRecorded)
			return err
		}
		out := "done:" + w.c.Job().Text()
		if err := w.complete(ctx, out); err != nil {
			return err
		}
		if *compactEvery > 0 && w.completed%*compactEvery == 0 {
			before, after, err := w.pool.Journal().Compact()
			if err != nil {
				fmt.Fprintf(os.Stderr, "goworker: compaction failed: %v\n", err)
			} else {
				fmt.Fprintf(os.Stderr, "goworker: compacted %d -> %d bytes\n", before, after)
			}
		}
	}
	return ctx.Err()
}

// claim gets a job (or the one the journal hands back), waiting out
// actions not recorded. done reports an empty stage with nothing held.
func (w *worker) claim(ctx context.Context) (done bool, err error) {
	pause := w.retryMin
	for {
		err := w.c.NewJob(ctx)
		switch {
		case err == nil:
			return false, nil
		case errors.Is(err, client.ErrNoJobs):
			n, err := w.c.JobCount(ctx)
			if err == nil && n == 0 {
				return true, nil
			}
			if !sleep(ctx, 20*time.Millisecond) {
				return false, ctx.Err()
			}
		case errors.Is(err, client.ErrNotRecorded):
			if !w.wait(ctx, "claim", err, &pause) {
				return false, ctx.Err()
			}
		default:
			return false, err
		}
	}
}

// complete completes the held job with out, holding out in memory while
// the client cannot record it.
func (w *worker) complete(ctx context.Context, out string) error {
	pause := w.retryMin
	n := w.c.JobID()
	for {
		err := w.c.CompleteJob(ctx, out)
		switch {
		case err == nil:
			w.completed++
			return nil
		case errors.Is(err, client.ErrNotRecorded):
			if !w.wait(ctx, fmt.Sprintf("output of job %d", n), err, &pause) {
				return ctx.Err()
			}
		case errors.Is(err, client.ErrNoJobHeld):
			// The claim was lost with the commit that failed: the tracker
			// re-opens the job at the next claim, and it is done again.
			fmt.Fprintf(os.Stderr, "goworker: job %d: claim not journaled, output dropped: %v\n", n, err)
			return nil
		default:
			return fmt.Errorf("job %d: %w", n, err)
		}
	}
}

func (w *worker) wait(ctx context.Context, what string, err error, pause *time.Duration) bool {
	w.notRecorded++
	fmt.Fprintf(os.Stderr, "goworker: not recorded (%s held in memory), retrying in %s: %v\n", what, *pause, err)
	ok := sleep(ctx, *pause)
	*pause = min(2**pause, w.retryMax)
	return ok
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
