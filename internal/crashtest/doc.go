// Package crashtest proves that the client loses nothing: it runs
// workers against an in-memory tracker (trackertest), kills them with SIGKILL
// at the named points of docs/DESIGN.md "Testing" and at random moments, restarts
// each on its own journal, and checks the tracker's side:
//
//   - every job is closed, and no job is held by anyone;
//   - every stage of every job was completed exactly once (also checked
//     before every restart);
//   - every output the tracker holds is what the pipeline computes for that
//     job and stage (outputs are a deterministic function of stage and input,
//     see Compute) and what some worker recorded computing before it
//     submitted;
//   - every output a journal still holds as an orphan is the right one and
//     is the one the tracker holds (the job was redone, nothing was lost);
//   - every journal opens and verifies (also after every kill), and no slot
//     is left with a held job or a pending completion, flag or bye.
//
// The tests:
//
//   - TestCrashPipeline: 4 worker processes (2 per stage) over 200 jobs,
//     killed at each named point (after-journal: register, checkpoint,
//     complete, flag, bye; after-send: register, claim, complete, flag, bye;
//     mid-job) and at 220 random moments (at least 200 must land before the
//     work is done), some lives recovering with WithRelease, and idle-timeout
//     episodes (a fake tracker clock moves past the idle timeout while a
//     killed worker is down: its worker is deleted, its completion orphaned).
//   - TestCrashPipelineQuirks: the same, smaller, against the upstream bugs
//     (stage b served null) and with journals pruned to 3 jobs of history.
//   - TestChaosPipeline: 1,000 jobs through 8 worker processes whose every
//     request goes through the network chaos (ChaosTransport: 20%
//     dropped before sending, 20% answers dropped after the tracker applied
//     them, 5% 502, 0-5 ms latency).
//   - TestChaosInProcess: the chaos with in-process clients (a Pool at stage
//     a, lone clients at stage b), so that the race detector sees the
//     client; 200 jobs under -race, 1,000 without.
//
// The worker processes are crashworker, built once per test binary without
// -race; the tracker runs in the test process. The non-test part of this
// package is what both kinds of worker share: the worker loop (Work), the
// pipeline's function (Compute) and the chaos transport.
//
// Each test prints a line of figures ("crashtest: ... kills=
// resubmitted= applied-earlier= orphans= ..."), counted from the replay
// reports each start records, the journals' events and the tracker's
// counters, never assumed. Environment:
//
//	CRASHTEST_FULL=1         larger runs: 1,000 jobs and 1,100 random kills;
//	                         200 random kills added to the chaos
//	CRASHTEST_SEED=n         replay a run's random choices (the seed is logged)
//	CRASHTEST_CHAOS_JOBS=n   jobs of TestChaosInProcess
//	CRASHTEST_CHAOS_LONE=1   TestChaosInProcess with lone clients only
package crashtest
