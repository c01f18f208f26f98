// Package proxy is dcproxy's engine: a local server that speaks the
// tracker's own protocol to worker programs written for the tracker (the
// upstream Python client, unchanged) and forwards their work to the real
// tracker through the journaled client (package client), so that such a
// program gets the journal's guarantees by changing one URL.
//
// Each local registration (GET /api/new) is a local worker: a slot of one
// journal with its own client.Client and tracker token. The program gets a
// local token; the tracker token never leaves the proxy, so when the tracker
// loses the worker the client registers afresh and the program does not
// notice.
//
// What the program sees, call by call:
//
//   - newJob: a job claimed by the slot's client, durable before the answer
//     for a program started beside the proxy (see claimDurable). A job the
//     slot holds that this program has not been given yet (the proxy
//     restarted while the answer was on its way, or a dead program's job
//     handed to the next program of its stage) is handed over instead of
//     claiming.
//   - completeJob, flagInvalidData: recorded durably, then answered once
//     settled (accepted, or applied by an earlier attempt whose answer was
//     lost: both 200). While the tracker is unreachable the call waits and
//     the client retries. An acceptance is answered as soon as the tracker's
//     200 arrives; its record follows in the background (see acceptWatch).
//     With AckJournal the answer comes once the record is durable and the
//     settle runs in the background. Either way the worker's next action
//     waits for the settle's record. A resend of the last completion (or
//     flag) after it settled, as the upstream client does when its
//     connection broke, answers 200.
//   - updateProgress answers at once (latest text wins, sent in the
//     background); validateWorker answers locally; jobCount and every other
//     path are passed through to the tracker.
//   - A jobCount above zero that follows a completion (or flag) on the
//     program's connection starts the claim of its next job in the
//     background (see claimAhead): the program's newJob then finds the job
//     held and durable instead of waiting for the claim's round trip and
//     commit. The count answered is the tracker's, taken before that claim.
//
// Programs: with Config.Command the proxy runs the program itself, each copy
// with its own URL path (DISTCOMPUTE_URL), restarts it when it fails, and
// when a copy dies its local workers' jobs go to the first newJob of a
// worker at the same stage. A job held by a program that died
// Config.PoisonAfter times in a row is released, recorded in the journal
// (a "failed" event) and never handed out by this proxy again. Without a
// command, a local worker silent for Config.DeadAfter counts as dead and its
// job is released at once.
//
// Restarted on the same journal, the proxy replays every slot first (the
// client's recovery), then serves.
package proxy
