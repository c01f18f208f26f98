package worker

import "github.com/distcompute/distcompute-go/internal/statusserver"

// counterHelp names and explains each counter of [engine.counters] as a
// metric, and labels those the live page shows.
var counterHelp = []statusserver.Counter{
	{Key: "completed", Metric: "dcworker_jobs_completed_total", Help: "Jobs completed (output accepted or journaled for resubmission).", Label: "completed"},
	{Key: "failed", Metric: "dcworker_jobs_failed_total", Help: "Jobs released after the command failed on every attempt.", Label: "failed"},
	{Key: "flagged", Metric: "dcworker_jobs_flagged_total", Help: "Jobs whose input was flagged invalid.", Label: "flagged"},
	{Key: "resubmitted", Metric: "dcworker_jobs_resubmitted_total", Help: "Completions resubmitted from the journal (on start, or orphaned output on a new claim).", Label: "resubmitted"},
	{Key: "refused", Metric: "dcworker_jobs_refused_total", Help: "Jobs refused at a claim (data that cannot be decoded: flagged; an answer over the size limit, a refused flag, a job refused before: released)."},
	{Key: "orphaned", Metric: "dcworker_jobs_orphaned_total", Help: "Completions orphaned: the worker had timed out (found on start, or answered on completion).", Label: "orphaned"},
	{Key: "sessions_lost", Metric: "dcworker_sessions_lost_total", Help: "Times the tracker lost a worker identity (timed out) and the client registered afresh.", Label: "sessions lost"},
	{Key: "heartbeat_failures", Metric: "dcworker_heartbeat_failures_total", Help: "Progress/heartbeat requests that failed.", Label: "heartbeat failures"},
	{Key: "tracker_failures", Metric: "dcworker_tracker_request_failures_total", Help: "Requests to the tracker that got no answer or a 5xx/429 answer (each attempt).", Label: "tracker failures"},
	{Key: "command_failures", Metric: "dcworker_command_failures_total", Help: "Command runs that failed (each attempt).", Label: "command failures"},
	{Key: "command_runs", Metric: "dcworker_command_runs_total", Help: "Command runs started (each attempt, counted when the process has started).", Label: "command runs"},
	{Key: "checkpoints", Metric: "dcworker_checkpoints_total", Help: "Checkpoints stored.", Label: "checkpoints"},
	{Key: "preemption_notices", Metric: "dcworker_preemption_notices_total", Help: "Cloud preemption notices received.", Label: "preemption notices"},
}
