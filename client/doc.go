// Package client is the distcompute worker API in Go: the upstream Python
// client's init, job_count, new_job, complete_job, log, is_alive,
// flag_invalid_data and bye, with ctx first, journaled and self-healing.
//
//	c, err := client.Init(ctx, "https://tracker.example.com/", "a", client.WithNickname("Cluster 2 on AWS"))
//	...
//	defer c.Close()
//	for {
//		if err := c.WaitForJob(ctx); err != nil { ... }
//		out := process(c.Job(), c.Log)
//		if err := c.CompleteJob(ctx, out); err != nil { ... }
//	}
//
// # Journal
//
// Every action is recorded in a local bbolt journal (package journal) before
// its request leaves the machine: registration (before the token is used),
// completion with its output, flag, bye, checkpoints. The journal is at
// DefaultJournalPath unless WithJournal or $DISTCOMPUTE_JOURNAL says
// otherwise; journaling is always on. A journal holds slots, one per worker
// (WithSlot, Pool); one process at a time may open it.
//
// # After a crash
//
// Init on a journal whose slot holds unsettled work runs package replay
// first: a pending bye is resent; the worker's liveness is checked
// (validateWorker) and it is refreshed at once; a pending completion is resent
// with the same token (403 means an earlier attempt was applied, 404 that the
// worker timed out: the output is kept as an orphan); a pending flag is
// resent; a held job is resumed (Resumed, LastCheckpoint) or released
// (WithRelease). If the worker is gone, a fresh one is registered. When a
// later claim returns a job whose output is orphaned, that output is
// submitted instead of handing the job to the program again
// (WithResubmitOrphans). Report says what recovery did.
//
// # Which calls release a held job
//
// A job the worker holds stays held until the program ends it: NewJob and
// WaitForJob hand a held job back (the one resumed after a crash, or one
// the program did not finish) and never release it. The held job is given
// back to the tracker only by:
//   - CompleteJob (the job is done) and FlagInvalidData (the tracker
//     re-opens it; a flag the tracker refuses leaves it held);
//   - Release, for a job the program gives up (a bye, then a fresh worker);
//   - Bye, which ends the worker;
//   - WithRelease, which makes recovery at Init release a held job instead
//     of handing it back;
//   - the tracker itself, when the worker timed out (ErrWorkerGone).
//
// Close does not release: the next Init on the same journal resumes the job.
//
// # Staying alive
//
// The tracker deletes a worker not refreshed for its idle timeout (7200 s
// upstream) and only updateProgress, newJob, completeJob and flagInvalidData
// refresh it. A background goroutine sends the last progress text every
// heartbeat (idle timeout / 8 by default), also while WaitForJob waits, and
// checks liveness with validateWorker (updateProgress answers 200 even for a
// deleted worker). When the tracker lost the worker, SessionLost's channel is
// closed, the loss is recorded, and a fresh worker registered (at once if no
// job was held, else at the next action); CompleteJob and FlagInvalidData of
// the lost job return ErrWorkerGone, CompleteJob keeping the output as an
// orphan.
//
// # Errors
//
// Errors match the upstream ones through errors.Is and errors.As: ErrNoJobs
// (ZeroJobError), ErrWorkerGone (worker timed out), *ServerError (server
// error), ErrInvalidArgument, ErrInvalidStage, ErrStageDisabled,
// *ValidationError. They are package session's, so either name matches. No
// error or log line holds the worker's token in full.
//
// # Concurrency
//
// A Client's actions are serialised by a mutex (the tracker misbehaves on
// concurrent completions from one token). Log returns at once, whatever the
// network does. Use a Pool for several workers in one process.
package client
