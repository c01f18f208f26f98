// Package worker is the engine of cmd/dcworker: it runs any command as a
// distcompute worker, one job per run of the command, on a journaled
// client.Pool of one or more slots.
//
// For each job the command gets the job's input on stdin and the job's
// identity in its environment (see the DC_* constants); what it prints on
// stdout is the job's output, the lines it writes to fd 3 (or appends to
// $DC_PROGRESS_FILE) become progress (client.Log), and what it writes to
// $DC_CHECKPOINT_FILE is stored durably (client.Checkpoint) and handed back,
// pre-filled in that file, when an interrupted job is resumed.
//
// Exit status 0 completes the job; Config.InvalidExitCode (default 65,
// EX_DATAERR) flags its input as invalid; any other failure is retried
// Config.Retries times, then the job is released and the failure journaled.
// A job the client cannot take (data that cannot be decoded, an answer over
// the size limit) never reaches the command: the client flags or releases
// it within the claim (see client.Client.RefusedJobs), and it is counted
// in dcworker_jobs_refused_total.
//
// Config.StatusAddr serves /status and /metrics, which hold no secret, and
// with Config.StatusJournal a snapshot of the journal at /journal, which
// holds them all.
//
// When the journal cannot be written (a full, read-only or failing disk:
// client.ErrNotRecorded), the engine claims no job, holds outputs, flags and
// releases in memory and tries again (JournalRetryMin doubling to
// JournalRetryMax), says so in one log line per change, in /status and in
// the dcworker_journal_* metrics, and carries on when the disk is back; past
// Config.JournalDeadline it drains and Run returns ErrJournalUnwritable.
//
// On the first stop signal (or a cloud preemption notice) the engine stops
// claiming, passes the signal to the running commands' process groups, waits
// Config.Grace, completes what finished in time and leaves the rest held in
// the journal, resumable on restart (or releases it, Config.ReleaseOnExit).
// A second signal, or the end of Run's context, kills the commands at once.
package worker
