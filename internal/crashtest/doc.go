// Package crashtest proves that the client loses nothing: it runs workers
// against an in-memory tracker (trackertest), kills them with SIGKILL at the
// named points of DESIGN.md "Testing" and at random moments, restarts each on
// its own journal, and checks the tracker's side afterwards:
//
//   - every job is closed, and no job is held by anyone;
//   - every stage of every job was completed exactly once;
//   - every output the tracker holds is what a worker computed for that job
//     and stage (outputs are a deterministic function of stage and input, see
//     Compute, and every worker records what it computed before it submits);
//   - every journal opens and verifies, and no slot is left with a pending
//     completion, flag or bye.
//
// The same invariants are checked under network chaos (internal/faultnet:
// requests dropped before sending, answers dropped after the tracker applied
// them, 502s, latency).
//
// The non-test part of this package is the worker loop (Work) shared by the
// worker program crashworker, which the multi-process test builds and runs,
// and by the in-process chaos test. The tests print their figures (kills,
// resubmissions, applied-earlier, orphans) counted from the replay reports and
// the journals, never assumed.
//
// The default run meets the numbers of issue 4 within the CI budget; set
// CRASHTEST_FULL=1 for a larger run and CRASHTEST_SEED=n to replay a run's
// random choices (the seed is printed).
package crashtest
