package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Errors returned by Conn's methods, wrapped with the endpoint's name (for
// example "session: completeJob: worker holds no job"); test for them with
// errors.Is. Which endpoint returns which error is listed in the package
// documentation.
var (
	// ErrNoJobs is newJob's 403: the stage has no open job right now. Jobs are
	// created dynamically, so the caller may ask again later.
	ErrNoJobs = errors.New("no jobs available")

	// ErrNoJobHeld is the 403 of completeJob and flagInvalidData: the worker
	// holds no job (never claimed, or already completed, flagged or released).
	ErrNoJobHeld = errors.New("worker holds no job")

	// ErrWorkerGone is the 404 NOWORKER of newJob, completeJob,
	// flagInvalidData and bye (and of updateProgress, which answers it only
	// for progress over 255 characters, which Conn never sends): the tracker
	// does not know the token. The worker timed out, said bye, or never
	// existed; its job, if any, was re-opened.
	ErrWorkerGone = errors.New("worker not found: did the worker time out?")

	// ErrInvalidStage is a stage that is not one of a, b, c, d, e: refused
	// locally before sending, or answered 400 by the tracker.
	ErrInvalidStage = errors.New("invalid stage")

	// ErrStageDisabled is register's 400 for a stage the tracker has not
	// enabled ("The worker stage 'c' is disabled.").
	ErrStageDisabled = errors.New("stage disabled")

	// ErrInvalidArgument is an argument refused before anything is sent: a
	// nickname over MaxNicknameLen characters, an empty token, a null
	// completion output, a base URL that is not http or https, bad options.
	ErrInvalidArgument = errors.New("invalid argument")

	// ErrAppliedEarlier is the answer of completeJob (403), flagInvalidData
	// (403) or bye (404) to a retry of the same call after an earlier attempt
	// of that call may have reached the tracker (a transport error after the
	// request may have been written, or a 5xx answer). The tracker applied the
	// earlier attempt and lost or garbled its answer: the completion was
	// accepted, the flag counted, the worker deleted. It is reported instead
	// of ErrNoJobHeld or ErrWorkerGone, never together with them.
	ErrAppliedEarlier = errors.New("applied by an earlier attempt whose answer was lost")

	// ErrInvalidPayload is a payload that cannot be built or read: JSON that
	// is not an array or object, invalid JSON after JSONPrefix, Unmarshal of a
	// payload that is not JSON.
	ErrInvalidPayload = errors.New("invalid payload")

	// ErrResponseTooLarge is an answer longer than Options.MaxResponseBytes.
	// It comes wrapped in a *ServerError and is not retried.
	ErrResponseTooLarge = errors.New("answer too large")
)

// maxErrorBody is how much of an answer's body ServerError and
// ValidationError keep.
const maxErrorBody = 1 << 10

// ServerError is an answer the protocol does not foresee for the endpoint:
// an unexpected status code (a 3xx, 401, 405, a 5xx or 429 after the retries
// gave up...), or a 2xx whose body cannot be read as the endpoint's answer
// (an HTML page, invalid JSON, a count that is not a number, an answer over
// the size limit).
type ServerError struct {
	// Endpoint is the API endpoint's name, such as "newJob".
	Endpoint string
	// Status is the HTTP status code.
	Status int
	// Body is the start of the answer's body: at most 1 KiB, cut on a UTF-8
	// boundary, with the worker's token redacted.
	Body string
	// Err is the reason a 2xx answer was refused (ErrResponseTooLarge, a
	// JSON error, an error wrapping ErrInvalidPayload), or nil when the
	// status code itself was unexpected.
	Err error

	// job is the number of the job a newJob answer over the size limit
	// assigned, 0 if it could not be found; see NewJob.
	job int
}

// Error describes the answer; it never contains the worker's token.
func (e *ServerError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "session: %s: unexpected answer %d", e.Endpoint, e.Status)
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Body != "" {
		fmt.Fprintf(&b, ": %q", e.Body)
	}
	return b.String()
}

// Unwrap returns e.Err.
func (e *ServerError) Unwrap() error { return e.Err }

// ValidationDetail is one entry of a 422 answer's "detail" list.
type ValidationDetail struct {
	// Loc is where the fault is, such as ["body", "data"].
	Loc []any `json:"loc"`
	// Msg is the message, such as "none is not an allowed value".
	Msg string `json:"msg"`
	// Type is the error's type, such as "type_error.none.not_allowed".
	Type string `json:"type"`
}

// ValidationError is a 422 answer: the tracker refused the request's
// parameters or body and applied nothing. The upstream tracker also answers
// 422 to the 5th flag of a job at stage b (a database constraint error in
// the detail), leaving the job held by the worker.
type ValidationError struct {
	// Endpoint is the API endpoint's name, such as "completeJob".
	Endpoint string
	// Detail is the decoded "detail" list; nil if the body could not be read
	// as one.
	Detail []ValidationDetail
	// Body is the start of the body (at most 1 KiB, token redacted).
	Body string
}

// Error lists the detail messages; it never contains the worker's token.
func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "session: %s: rejected (422)", e.Endpoint)
	if len(e.Detail) == 0 {
		if e.Body != "" {
			fmt.Fprintf(&b, ": %q", e.Body)
		}
		return b.String()
	}
	for i, d := range e.Detail {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		for j, l := range d.Loc {
			if j > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, l)
		}
		if len(d.Loc) > 0 {
			b.WriteString(": ")
		}
		b.WriteString(d.Msg)
	}
	return b.String()
}

// cutUTF8 returns at most n bytes of s, never splitting a UTF-8 sequence.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && i > n-utf8.UTFMax && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// cutRunes returns the first n runes of s (an invalid byte counts as one).
func cutRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := 0
	for k := 0; k < n && i < len(s); k++ {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return s[:i]
}

// Redact returns token cut to at most its first 8 characters followed by
// "…" (fewer for a short token, so that never more than half of it shows):
// the form in which a token may appear in messages and logs.
func Redact(token string) string {
	if token == "" {
		return ""
	}
	n := utf8.RuneCountInString(token) / 2
	if n > 8 {
		n = 8
	}
	return cutRunes(token, n) + "…"
}

// redactIn replaces every occurrence of token in s (raw or JSON-escaped) by
// its redacted form.
func redactIn(s, token string) string {
	if token == "" {
		return s
	}
	r := Redact(token)
	s = strings.ReplaceAll(s, token, r)
	if esc := jsonEscape(token); esc != token {
		s = strings.ReplaceAll(s, esc, r)
	}
	return s
}

// jsonEscape returns s as it appears inside a JSON string (without quotes).
func jsonEscape(s string) string {
	b, err := json.Marshal(s)
	if err != nil || len(b) < 2 {
		return s
	}
	return string(b[1 : len(b)-1])
}
