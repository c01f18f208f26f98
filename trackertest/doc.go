// Package trackertest is an in-memory distcompute tracker, faithful to the upstream Python
// tracker (FastAPI + PostgreSQL + Redis) down to status codes, content types and body texts,
// including FastAPI's 422 validation answers. It serves tests, local development and
// cmd/dctracker, and imports nothing but the standard library.
//
// A Tracker is an http.Handler. Start serves one on a loopback port for a test; Serve serves
// one on a listener until a context ends. Both run the idle sweep, which deletes workers not
// seen for Options.IdleTimeout and re-opens their jobs; a FakeClock makes that deterministic.
//
// # Two behaviours
//
// By default the tracker keeps the documented contract: the output of stage X becomes the
// input served at the next enabled stage, completing the last enabled stage closes the job,
// and after 5 flags at one stage a job goes back to the previous stage, open, with that
// stage's input.
//
// With Options.Quirks it reproduces the upstream tracker as it really behaves:
//   - completing stage X overwrites the stage-X input with the output, and a later stage is
//     served the column nothing sets: "data": null;
//   - the 5th flag of a job at stage b answers 422 with the database's not-null error, saves
//     nothing and leaves the job held; every later flag of that job at stage b fails alike;
//   - concurrent completions by one worker all apply (the last output wins) and, when the
//     worker's nickname has no leaderboard row yet, all but one answer 500 (RaceWindow).
//
// Behaviour common to both: newJob first releases the job the worker holds, then picks a
// random open job of its stage (maybe the same); bye re-opens the held job and deletes the
// worker; updateProgress answers "200 OK" for an unknown token, and 404 NOWORKER for progress
// over 255 characters; a nickname over 128 characters answers 500; only a successful newJob,
// completeJob, flagInvalidData or updateProgress refreshes a worker's last-seen time.
//
// Faults can be injected per request with SetFault; Jobs, Workers and Stats are read-only
// views for assertions.
package trackertest
