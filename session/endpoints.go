package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Registration is what register answers: the new worker's identity.
type Registration struct {
	// Token identifies the worker in every later call. It is a secret:
	// never log it in full (see Redact).
	Token string
	// DisplayName is the worker's public name, such as "pigs-moralizations-818".
	DisplayName string
	// Project is the tracker's project name.
	Project string
	// StageName is the name of the worker's stage, such as "CPU".
	StageName string
}

// Job is a job claimed by newJob.
type Job struct {
	// Number is the job's number (1 and up).
	Number int
	// Data is the job's input. It is Null at stage b and later on the
	// upstream tracker, which never sets it.
	Data Payload
}

// NormalizeStage returns the stage letter s in lower case: one of a, b, c,
// d, e, in either case. Anything else, "GPU" included (never read as its
// first letter), is an error wrapping ErrInvalidStage that quotes s.
func NormalizeStage(s string) (string, error) {
	l, err := normalizeStage(s)
	if err != nil {
		return "", fmt.Errorf("session: %w", err)
	}
	return l, nil
}

// normalizeStage is NormalizeStage with an error that callers prefix.
func normalizeStage(s string) (string, error) {
	if len(s) == 1 {
		l := s[0] | 0x20 // lower case for ASCII letters
		if l >= 'a' && l <= 'e' && (s[0] == l || s[0] == l-0x20) {
			return string(l), nil
		}
	}
	return "", fmt.Errorf("stage %q: %w: choose from a, b, c, d, e", s, ErrInvalidStage)
}

// Register registers a new worker at stage (a to e, either case) under
// nickname: GET /api/new. A nickname over MaxNicknameLen characters, or one
// that is not valid UTF-8 or holds a NUL, is refused with ErrInvalidArgument
// before sending. Errors: ErrInvalidStage, ErrStageDisabled,
// *ValidationError, *ServerError, transport and context errors.
func (c *Conn) Register(ctx context.Context, nickname, stage string) (Registration, error) {
	st, err := normalizeStage(stage)
	if err != nil {
		return Registration{}, fmt.Errorf("session: %s: %w", epRegister, err)
	}
	if n := utf8.RuneCountInString(nickname); n > MaxNicknameLen {
		return Registration{}, fmt.Errorf("session: %s: %w: nickname of %d characters, over %d", epRegister, ErrInvalidArgument, n, MaxNicknameLen)
	}
	if !utf8.ValidString(nickname) || strings.ContainsRune(nickname, 0) {
		return Registration{}, fmt.Errorf("session: %s: %w: nickname is not valid UTF-8 text", epRegister, ErrInvalidArgument)
	}
	a, err := c.call(ctx, request{endpoint: epRegister, query: url.Values{"nickname": {nickname}, "stage": {st}}})
	if err != nil {
		return Registration{}, err
	}
	switch a.status {
	case http.StatusOK:
		var v struct {
			Token       string `json:"token"`
			DisplayName string `json:"display_name"`
			Project     string `json:"project"`
			StageName   string `json:"stage_name"`
		}
		if err := json.Unmarshal(a.body, &v); err != nil {
			var tok string
			a.body, tok = registerErrBody(a.body)
			return Registration{}, c.unexpected(epRegister, a, tok, err)
		}
		if v.Token == "" {
			return Registration{}, c.unexpected(epRegister, a, "", fmt.Errorf("no token in answer"))
		}
		c.tokens.note(v.Token)
		return Registration{Token: v.Token, DisplayName: v.DisplayName, Project: v.Project, StageName: v.StageName}, nil
	}
	var tok string
	a.body, tok = registerErrBody(a.body)
	if a.status == http.StatusBadRequest {
		return Registration{}, c.stageError(epRegister, a, tok)
	}
	return Registration{}, c.otherStatus(epRegister, a, tok)
}

// JobCount returns the number of open jobs at stage (a to e, either case):
// GET /api/jobCount. The tracker answers 0 for a disabled stage. Errors:
// ErrInvalidStage, *ValidationError, *ServerError, transport and context
// errors.
func (c *Conn) JobCount(ctx context.Context, stage string) (int, error) {
	st, err := normalizeStage(stage)
	if err != nil {
		return 0, fmt.Errorf("session: %s: %w", epJobCount, err)
	}
	a, err := c.call(ctx, request{endpoint: epJobCount, query: url.Values{"stage": {st}}})
	if err != nil {
		return 0, err
	}
	switch a.status {
	case http.StatusOK:
		n, err := strconv.Atoi(strings.TrimSpace(string(a.body)))
		if err != nil || n < 0 {
			return 0, c.unexpected(epJobCount, a, "", fmt.Errorf("not a job count"))
		}
		return n, nil
	case http.StatusBadRequest:
		return 0, c.stageError(epJobCount, a, "")
	}
	return 0, c.otherStatus(epJobCount, a, "")
}

// IsAlive reports whether the tracker knows the worker: POST
// /api/validateWorker. It answers false for unknown, deleted and timed-out
// workers, and does not keep the worker alive. Errors: ErrInvalidArgument
// (empty token), *ValidationError, *ServerError, transport and context
// errors.
func (c *Conn) IsAlive(ctx context.Context, token string) (bool, error) {
	if err := checkToken(epValidateWorker, token); err != nil {
		return false, err
	}
	a, err := c.call(ctx, request{endpoint: epValidateWorker, body: tokenBody{token}, token: token})
	if err != nil {
		return false, err
	}
	if a.status == http.StatusOK {
		switch strings.TrimSpace(string(a.body)) {
		case "True":
			return true, nil
		case "False":
			return false, nil
		}
		return false, c.unexpected(epValidateWorker, a, token, fmt.Errorf("neither True nor False"))
	}
	return false, c.otherStatus(epValidateWorker, a, token)
}

// UpdateProgress sets the worker's progress text and keeps it alive: POST
// /api/updateProgress. The text is cut to MaxProgressLen characters
// (runes, never splitting one); invalid UTF-8 is replaced by U+FFFD and NUL
// characters are dropped, since the tracker's database refuses them and
// answers a misleading 404. The tracker answers success also for unknown
// and timed-out workers: use IsAlive to detect them. Errors:
// ErrInvalidArgument (empty token), ErrWorkerGone (which here does not
// prove the worker gone), *ValidationError, *ServerError, transport and
// context errors.
func (c *Conn) UpdateProgress(ctx context.Context, token, progress string) error {
	if err := checkToken(epUpdateProgress, token); err != nil {
		return err
	}
	progress = strings.ReplaceAll(strings.ToValidUTF8(progress, "\uFFFD"), "\x00", "")
	progress = cutRunes(progress, MaxProgressLen)
	a, err := c.call(ctx, request{endpoint: epUpdateProgress, body: progressBody{token, progress}, token: token})
	if err != nil {
		return err
	}
	switch a.status {
	case http.StatusOK:
		return c.okBody(epUpdateProgress, a, token)
	case http.StatusNotFound:
		if !foreign(a.body) {
			return fmt.Errorf("session: %s: %w", epUpdateProgress, ErrWorkerGone)
		}
	}
	return c.otherStatus(epUpdateProgress, a, token)
}

// NewJob claims a job at the worker's stage: POST /api/newJob. A worker
// that already holds a job releases it first (the tracker's rule), so never
// call NewJob while a completion is unsettled. Null data is valid.
//
// Errors: ErrNoJobs (403: nothing open now), ErrWorkerGone (404),
// ErrInvalidArgument (empty token), *ValidationError, *ServerError,
// transport and context errors. If the job's data starts with JSONPrefix
// but is not valid JSON, NewJob returns the Job (the worker now holds it;
// Data is the raw wire text as a String payload, so the caller can flag it)
// together with a *ServerError wrapping ErrInvalidPayload. If the answer is
// over Options.MaxResponseBytes, the error is a *ServerError wrapping
// ErrResponseTooLarge and the Job has the number of the job the tracker
// assigned (if it could be found in the answer's last bytes; else 0) and
// Null data: the worker holds that job.
func (c *Conn) NewJob(ctx context.Context, token string) (Job, error) {
	if err := checkToken(epNewJob, token); err != nil {
		return Job{}, err
	}
	a, err := c.call(ctx, request{endpoint: epNewJob, body: tokenBody{token}, token: token})
	if err != nil {
		var se *ServerError
		if errors.As(err, &se) && se.job > 0 {
			return Job{Number: se.job}, err
		}
		return Job{}, err
	}
	switch a.status {
	case http.StatusOK:
		// The data field is kept as a reference into the answer and
		// unquoted once: a job costs its answer and its string, no more.
		var v struct {
			Data   rawRef          `json:"data"`
			Number json.RawMessage `json:"number"`
		}
		if err := json.Unmarshal(a.body, &v); err != nil {
			return Job{}, c.unexpected(epNewJob, a, token, err)
		}
		var num int
		if err := json.Unmarshal(v.Number, &num); err != nil || num < 1 {
			return Job{}, c.unexpected(epNewJob, a, token, fmt.Errorf("no valid job number"))
		}
		if v.Data == nil {
			return Job{}, c.unexpected(epNewJob, a, token, fmt.Errorf("no data field"))
		}
		var wire *string
		if string(v.Data) != "null" {
			s, ok := unquote(v.Data)
			if !ok {
				return Job{}, c.unexpected(epNewJob, a, token, fmt.Errorf("data is neither a string nor null"))
			}
			wire = &s
		}
		data, err := Decode(wire)
		if err != nil {
			return Job{Number: num, Data: String(*wire)}, c.unexpected(epNewJob, a, token, fmt.Errorf("job %d: %w", num, err))
		}
		return Job{Number: num, Data: data}, nil
	case http.StatusForbidden:
		if !foreign(a.body) {
			return Job{}, fmt.Errorf("session: %s: %w", epNewJob, ErrNoJobs)
		}
	case http.StatusNotFound:
		if !foreign(a.body) {
			return Job{}, fmt.Errorf("session: %s: %w", epNewJob, ErrWorkerGone)
		}
	}
	return Job{}, c.otherStatus(epNewJob, a, token)
}

// CompleteJob submits output for the job the worker holds: POST
// /api/completeJob. A Null output is refused before sending
// (ErrInvalidArgument): the tracker stores strings only. The output travels
// in a JSON string, so invalid UTF-8 in it arrives as U+FFFD; callers with
// binary output should encode it (base64, for example) first.
//
// Errors: ErrNoJobHeld (403), ErrAppliedEarlier (403 to a retry: the output
// was accepted), ErrWorkerGone (404), *ValidationError, *ServerError,
// transport and context errors. After a transport error or a *ServerError
// the output may or may not have been stored.
func (c *Conn) CompleteJob(ctx context.Context, token string, output Payload) error {
	if err := checkToken(epCompleteJob, token); err != nil {
		return err
	}
	if output.IsNull() {
		return fmt.Errorf("session: %s: %w: null output", epCompleteJob, ErrInvalidArgument)
	}
	a, err := c.call(ctx, request{endpoint: epCompleteJob, body: completeBody{token, *output.Wire()}, token: token})
	if err != nil {
		return err
	}
	return c.mapApplied(epCompleteJob, a, token, http.StatusForbidden, ErrNoJobHeld)
}

// FlagInvalidData reports the held job's input as invalid and releases the
// job: POST /api/flagInvalidData.
//
// Errors: ErrNoJobHeld (403), ErrAppliedEarlier (403 to a retry: the flag
// was counted), ErrWorkerGone (404), *ValidationError (also the upstream
// tracker's answer to the 5th flag of a job at stage b, which leaves the
// job held), *ServerError, transport and context errors.
func (c *Conn) FlagInvalidData(ctx context.Context, token string) error {
	if err := checkToken(epFlag, token); err != nil {
		return err
	}
	a, err := c.call(ctx, request{endpoint: epFlag, body: tokenBody{token}, token: token})
	if err != nil {
		return err
	}
	return c.mapApplied(epFlag, a, token, http.StatusForbidden, ErrNoJobHeld)
}

// Bye deletes the worker, re-opening the job it holds: POST /api/bye.
//
// Errors: ErrWorkerGone (404), ErrAppliedEarlier (404 to a retry: the
// worker was deleted by the earlier attempt), ErrInvalidArgument (empty
// token), *ValidationError, *ServerError, transport and context errors.
func (c *Conn) Bye(ctx context.Context, token string) error {
	if err := checkToken(epBye, token); err != nil {
		return err
	}
	a, err := c.call(ctx, request{endpoint: epBye, body: tokenBody{token}, token: token})
	if err != nil {
		return err
	}
	return c.mapApplied(epBye, a, token, http.StatusNotFound, ErrWorkerGone)
}

// mapApplied maps the answer of completeJob, flagInvalidData or bye: 200 is
// success, 404 (NOWORKER) is ErrWorkerGone, and appliedStatus (the answer
// the tracker gives once the call has been applied: 403 "no job held" for
// complete and flag, 404 for bye) is plain.
//
// The rule that makes retrying these calls safe: none of them is
// idempotent, but the tracker recognisably refuses a second application.
// So when appliedStatus answers an attempt and an EARLIER attempt of this
// same call may have reached the tracker (a transport error after the
// request may have been written, or a 5xx; never a 429 or a connection
// that could not be made), the earlier attempt was applied and its answer
// lost: ErrAppliedEarlier, not plain. Without such an attempt it is the
// plain error: the call was refused and never applied.
func (c *Conn) mapApplied(ep string, a answer, token string, appliedStatus int, plain error) error {
	switch a.status {
	case http.StatusOK:
		return c.okBody(ep, a, token)
	case appliedStatus:
		if foreign(a.body) {
			break
		}
		if a.mayBeApplied {
			return fmt.Errorf("session: %s: %w (a retry was answered %d %q)", ep, ErrAppliedEarlier, a.status, c.errBody(a.body, token))
		}
		return fmt.Errorf("session: %s: %w", ep, plain)
	case http.StatusNotFound:
		if !foreign(a.body) {
			return fmt.Errorf("session: %s: %w", ep, ErrWorkerGone)
		}
	}
	return c.otherStatus(ep, a, token)
}

// okBody checks the body of a 200 that should read "200 OK". Anything else
// (an HTML page from a proxy or captive portal) is a *ServerError.
func (c *Conn) okBody(ep string, a answer, token string) error {
	if strings.TrimSpace(string(a.body)) == "200 OK" {
		return nil
	}
	return c.unexpected(ep, a, token, fmt.Errorf("expected 200 OK"))
}

// stageError maps a 400 of register or jobCount.
func (c *Conn) stageError(ep string, a answer, token string) error {
	if foreign(a.body) {
		return c.unexpected(ep, a, token, nil)
	}
	text := c.errBody(a.body, token)
	if strings.Contains(text, "disabled") {
		return fmt.Errorf("session: %s: %w: %s", ep, ErrStageDisabled, text)
	}
	return fmt.Errorf("session: %s: %w: %s", ep, ErrInvalidStage, text)
}

// otherStatus maps the answers every endpoint shares: 422 is a
// *ValidationError, anything else a *ServerError.
func (c *Conn) otherStatus(ep string, a answer, token string) error {
	if a.status == http.StatusUnprocessableEntity {
		body := c.redact(string(a.body), token)
		ve := &ValidationError{Endpoint: ep, Body: strings.TrimSpace(cutUTF8(body, maxErrorBody))}
		var v struct {
			Detail []ValidationDetail `json:"detail"`
		}
		if json.Unmarshal([]byte(body), &v) == nil {
			ve.Detail = v.Detail
		}
		return ve
	}
	return c.unexpected(ep, a, token, nil)
}

// unexpected returns a *ServerError for an answer the endpoint does not
// foresee.
func (c *Conn) unexpected(ep string, a answer, token string, err error) error {
	return &ServerError{Endpoint: ep, Status: a.status, Body: c.errBody(a.body, token), Err: err}
}

// foreign reports whether a 403 or 404 body comes from something other
// than the tracker's handlers (an unknown path, a proxy's HTML page), so
// that a wrong base URL is not mistaken for a lost worker.
func foreign(body []byte) bool {
	t := strings.TrimSpace(string(body))
	return t == "" || t == "Not Found" || t == `{"detail":"Not Found"}` || strings.HasPrefix(t, "<")
}

// registerErrBody returns what an error about a register answer may quote
// of its body, and the token to redact from it. The request carries no
// token, but a failed answer may name one (a tracker, or a proxy in front of
// it, that registered a worker and then failed): it is redacted, and a body
// with a "token" key whose value cannot be read is left out.
func registerErrBody(body []byte) ([]byte, string) {
	if tok := tokenIn(body); tok != "" {
		return body, tok
	}
	if tokenKey.Match(body) {
		return []byte("(body left out: it may hold a token)"), ""
	}
	return body, ""
}

// tokenKey finds a "token" key with its value, readable or not.
var tokenKey = regexp.MustCompile(`"token"\s*:`)

// tokenIn returns the token of a register answer that could not be read as
// a whole, so that it can be redacted from the error; "" if there is none.
func tokenIn(body []byte) string {
	var v map[string]json.RawMessage
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	var t string
	if json.Unmarshal(v["token"], &t) != nil {
		return ""
	}
	return t
}

// checkToken refuses an empty token before sending.
func checkToken(ep, token string) error {
	if token == "" {
		return fmt.Errorf("session: %s: %w: empty token", ep, ErrInvalidArgument)
	}
	return nil
}

// Request bodies.
type (
	tokenBody struct {
		Token string `json:"token"`
	}
	progressBody struct {
		Token    string `json:"token"`
		Progress string `json:"progress"`
	}
	completeBody struct {
		Token string `json:"token"`
		Data  string `json:"data"`
	}
)
