// Package session speaks the distcompute tracker's HTTP protocol
// (docs/PROTOCOL.md): one method of Conn per endpoint, typed results, status
// codes mapped to errors once, here, and retries that stay safe for calls
// that are not idempotent. It knows nothing of the journal; it imports only
// the standard library and github.com/cenkalti/backoff/v4.
//
// # Payloads
//
// Job data and output travel as a JSON string or null. A string that starts
// with JSONPrefix ("<!json!>") carries JSON text; any other string is plain.
// Payload keeps the three kinds apart (KindNull, KindString, KindJSON);
// Decode reads the wire form and Payload.Wire writes it. Null data is what
// the upstream tracker serves at stage b and later: it is a valid payload.
//
// # Errors, per endpoint
//
// Every error starts with "session: <endpoint>:" and wraps one of the
// sentinels below, or is a *ValidationError (422, nothing applied) or a
// *ServerError (an answer the protocol does not foresee); test with
// errors.Is and errors.As. No error message and no log line holds a token in
// full (see Redact).
//
//	method           endpoint                   success        4xx answers
//	Register         GET  /api/new              Registration   400 ErrInvalidStage, ErrStageDisabled; 422
//	JobCount         GET  /api/jobCount         int            400 ErrInvalidStage; 422
//	IsAlive          POST /api/validateWorker   true, false    422
//	UpdateProgress   POST /api/updateProgress   nil            404 ErrWorkerGone; 422
//	NewJob           POST /api/newJob           Job            403 ErrNoJobs; 404 ErrWorkerGone; 422
//	CompleteJob      POST /api/completeJob      nil            403 ErrNoJobHeld or ErrAppliedEarlier; 404 ErrWorkerGone; 422
//	FlagInvalidData  POST /api/flagInvalidData  nil            403 ErrNoJobHeld or ErrAppliedEarlier; 404 ErrWorkerGone; 422
//	Bye              POST /api/bye              nil            404 ErrWorkerGone or ErrAppliedEarlier; 422
//
// NewJob whose data starts with JSONPrefix but is not valid JSON returns the
// Job it claimed (Data holding the raw text) with a *ServerError wrapping
// ErrInvalidPayload, so that the caller can flag it. Null data is no error.
//
// On every endpoint:
//   - Arguments are checked before anything is sent (ErrInvalidArgument,
//     ErrInvalidStage): a stage is a..e in either case (never the first
//     letter of a word such as "GPU"), a nickname at most MaxNicknameLen
//     characters, a token not empty, a completion output not Null. Progress
//     text is cut to MaxProgressLen characters instead.
//   - Transport errors, 5xx and 429 are retried (see RetryPolicy); when the
//     retries give up, a 5xx or 429 is a *ServerError, a transport error is
//     returned wrapped. A cancelled or expired context ends the call at once
//     with an error wrapping ctx.Err().
//   - Any other status (3xx: redirects are never followed, 401, 405, a 403 or
//     404 whose body is not the tracker's but a proxy's or an unknown path's)
//     is a *ServerError, never retried.
//   - A 2xx whose body is not what the endpoint answers (an HTML page,
//     invalid JSON, a count that is not a number, neither "True" nor "False",
//     not "200 OK", over Options.MaxResponseBytes) is a *ServerError, never a
//     panic; an answer over the limit wraps ErrResponseTooLarge.
//
// ErrAppliedEarlier: completeJob, flagInvalidData and bye are not
// idempotent, but the tracker recognisably refuses a second application
// (403 "no job held", 404 "no such worker"). When that refusal answers a
// retry after an earlier attempt of the same call may have reached the
// tracker (a transport error after the request may have been written, or a
// 5xx), the earlier attempt was applied: the output was accepted, the flag
// counted, the worker deleted.
//
// # Concurrency
//
// A Conn holds no per-worker state and is safe for concurrent use. Each call
// runs its own retry loop with a fresh backoff policy.
package session
