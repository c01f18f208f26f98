package session

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Endpoint names, as they appear in paths, errors and logs.
const (
	epRegister       = "new"
	epJobCount       = "jobCount"
	epValidateWorker = "validateWorker"
	epUpdateProgress = "updateProgress"
	epNewJob         = "newJob"
	epCompleteJob    = "completeJob"
	epFlag           = "flagInvalidData"
	epBye            = "bye"
)

// Log attribute keys.
const (
	logKeyEndpoint = "endpoint"
	logKeyWorker   = "worker"
	logKeyAttempt  = "attempt"
	logKeyStatus   = "status"
	logKeyWait     = "wait"
	logKeyErr      = "err"
	logKeyDuration = "duration"
)

// request is one API call, sent and retried by Conn.call.
type request struct {
	endpoint string
	query    url.Values // GET parameters; nil for POST
	body     any        // JSON body of a POST; nil for GET
	token    string     // the worker's token, redacted from errors; "" if none
}

// answer is the answer a call settled on: a status the endpoint has to map,
// never a 5xx or 429 (those are retried, then returned as *ServerError).
type answer struct {
	status int
	body   []byte
	// mayBeApplied is set when an earlier attempt of the same call may have
	// reached the tracker: a transport error after the request may have been
	// written, or a 5xx answer.
	mayBeApplied bool
}

// retryable marks an attempt's error as worth retrying and carries the wait
// a Retry-After header asked for.
type retryable struct {
	err        error
	retryAfter time.Duration // 0: none
}

func (e *retryable) Error() string { return e.err.Error() }
func (e *retryable) Unwrap() error { return e.err }

// callLog is the logger of one call: the Conn's, with the endpoint and the
// redacted token attached when the call first logs (most calls log
// nothing: attaching them to every call cost a few allocations each).
type callLog struct {
	base     *slog.Logger
	endpoint string
	token    string
	with     *slog.Logger
}

func (l *callLog) get() *slog.Logger {
	if l.with == nil {
		l.with = l.base.With(slog.String(logKeyEndpoint, l.endpoint))
		if l.token != "" {
			l.with = l.with.With(slog.String(logKeyWorker, Redact(l.token)))
		}
	}
	return l.with
}

// call sends r, retrying transport errors, 5xx and 429 answers under the
// Conn's retry policy, and returns the first other answer.
//
// Why retrying is safe, endpoint by endpoint (docs/DESIGN.md, "Retries": retry only what
// cannot have been applied, or what the protocol lets you recognise as
// applied):
//   - jobCount and validateWorker only read; updateProgress only overwrites.
//   - register applied twice leaves a second worker that holds no job and is
//     deleted after the idle timeout: harmless.
//   - newJob applied twice releases the first claim (claiming releases what
//     the worker holds) and claims again: only the job this call returns is
//     held.
//   - completeJob, flagInvalidData and bye are not idempotent, but their
//     second application is recognisable: see mapApplied.
func (c *Conn) call(ctx context.Context, r request) (answer, error) {
	var body []byte
	if r.body != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(r.body); err != nil {
			return answer{}, fmt.Errorf("session: %s: %w: %v", r.endpoint, ErrInvalidArgument, err)
		}
		body = bytes.TrimRight(buf.Bytes(), "\n")
	}
	method := http.MethodGet
	if r.body != nil {
		method = http.MethodPost
	}
	c.tokens.note(r.token)
	target := c.target(r.endpoint, r.query)
	log := &callLog{base: c.log, endpoint: r.endpoint, token: r.token}

	var (
		ans      answer
		attempts int
		mayBe    bool // an attempt so far may have reached the tracker
		lastErr  error
	)
	bo := &policyBackOff{p: c.retry}
	op := func() error {
		attempts++
		a, sent, err := c.attempt(ctx, r, method, target, body, log, attempts)
		if err == nil {
			a.mayBeApplied = mayBe
			ans = a
			return nil
		}
		if sent {
			mayBe = true
		}
		if ctx.Err() == nil {
			lastErr = err // keep the last failure that was not the caller's doing
		}
		var re *retryable
		if errors.As(err, &re) {
			bo.retryAfter = re.retryAfter
			return err
		}
		return backoff.Permanent(err)
	}
	notify := func(err error, wait time.Duration) {
		log.get().Warn("session: retrying", slog.Int(logKeyAttempt, attempts), slog.Duration(logKeyWait, wait), slog.String(logKeyErr, err.Error()))
	}
	err := backoff.RetryNotify(op, backoff.WithContext(bo, ctx), notify)
	if err == nil {
		if attempts > 1 {
			log.get().Info("session: recovered", slog.Int(logKeyAttempt, attempts))
		}
		return ans, nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
		if lastErr != nil && !errors.Is(lastErr, ctxErr) {
			return answer{}, fmt.Errorf("session: %s: %w (after %d attempts; last: %v)", r.endpoint, ctxErr, attempts, lastErr)
		}
		return answer{}, fmt.Errorf("session: %s: %w", r.endpoint, ctxErr)
	}
	if re, ok := err.(*retryable); ok {
		return answer{}, re.err // the retries gave up
	}
	return answer{}, err
}

// sendTrace is an attempt's client trace and what it saw: whether the
// transport took a connection and wrote the request's headers (one
// allocation for the three).
type sendTrace struct {
	traced, wrote atomic.Bool
	trace         httptrace.ClientTrace
}

// attempt sends the request once. sent reports whether the request may have
// reached the tracker. A retryable failure comes as a *retryable.
func (c *Conn) attempt(ctx context.Context, r request, method, target string, body []byte, log *callLog, n int) (a answer, sent bool, err error) {
	if err := ctx.Err(); err != nil {
		return answer{}, false, err
	}
	actx, cancel := context.WithTimeout(ctx, c.retry.AttemptTimeout)
	defer cancel()

	// Whether the request was written: the transport reports through the
	// trace. A transport that reports nothing (a custom RoundTripper) may
	// have written it.
	t := &sendTrace{}
	t.trace.GetConn = func(string) { t.traced.Store(true) }
	t.trace.WroteHeaders = func() { t.wrote.Store(true) }
	actx = httptrace.WithClientTrace(actx, &t.trace)

	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, method, target, rd)
	if err != nil {
		return answer{}, false, fmt.Errorf("session: %s: %w: %v", r.endpoint, ErrInvalidArgument, err)
	}
	// The keys are canonical already (what Header.Set would store).
	req.Header["User-Agent"] = c.hUA
	req.Header["Accept"] = c.hAccept
	if body != nil {
		req.Header["Content-Type"] = c.hJSON
	}

	start := time.Now()
	resp, err := c.client.Do(req)
	if err != nil {
		sent = t.wrote.Load() || !t.traced.Load()
		return answer{}, sent, c.transportError(ctx, actx, r, err)
	}
	defer resp.Body.Close()
	data, over, err := readBody(resp.Body, resp.ContentLength, c.maxBody)
	if log.base.Enabled(context.Background(), slog.LevelDebug) {
		log.get().Debug("session: answer", slog.Int(logKeyAttempt, n), slog.Int(logKeyStatus, resp.StatusCode), slog.Duration(logKeyDuration, time.Since(start)))
	}
	if err != nil {
		// The tracker answered, so it had the request: it may have applied it.
		return answer{}, true, c.transportError(ctx, actx, r, fmt.Errorf("reading answer %d: %w", resp.StatusCode, err))
	}
	st := resp.StatusCode
	retry := st >= 500 || st == http.StatusTooManyRequests
	eb, tok := data, r.token // what an error may quote, and the token to redact
	if r.endpoint == epRegister {
		eb, tok = registerErrBody(data)
	}
	if over {
		se := &ServerError{Endpoint: r.endpoint, Status: st, Body: c.errBody(eb, tok),
			Err: fmt.Errorf("%w: over %d bytes", ErrResponseTooLarge, c.maxBody)}
		if r.endpoint == epNewJob && st == http.StatusOK {
			// The tracker assigned a job this worker cannot take: find its
			// number, so that the client can record what it hands back.
			se.job = jobNumberOf(data, resp.Body, c.maxBody)
		}
		if !retry {
			return answer{}, true, se
		}
		return answer{}, true, &retryable{err: se, retryAfter: c.retryAfter(resp.Header, time.Now())}
	}
	if retry {
		se := &ServerError{Endpoint: r.endpoint, Status: st, Body: c.errBody(eb, tok)}
		// A 5xx may come after the tracker applied the request (a 500 of
		// concurrent completions stored the output anyway); a 429 turned the
		// request away before handling it.
		return answer{}, st >= 500, &retryable{err: se, retryAfter: c.retryAfter(resp.Header, time.Now())}
	}
	if st >= 300 && st < 400 {
		return answer{}, false, &ServerError{Endpoint: r.endpoint, Status: st, Body: c.errBody(eb, tok),
			Err: fmt.Errorf("redirect to %q not followed", c.redact(resp.Header.Get("Location"), tok))}
	}
	return answer{status: st, body: data}, false, nil
}

// transportError wraps a failed attempt's error: permanent if the caller's
// context ended, retryable otherwise (including the attempt's own timeout).
func (c *Conn) transportError(ctx, actx context.Context, r request, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("session: %s: %w", r.endpoint, ctx.Err())
	}
	msg := c.redact(err.Error(), r.token)
	if actx.Err() != nil {
		return &retryable{err: fmt.Errorf("session: %s: attempt timed out after %v: %s", r.endpoint, c.retry.AttemptTimeout, msg)}
	}
	// Keep the error chain (for errors.As on *url.Error) only when its
	// message holds no token; it never does for the standard transport.
	if msg == err.Error() {
		return &retryable{err: fmt.Errorf("session: %s: %w", r.endpoint, err)}
	}
	return &retryable{err: fmt.Errorf("session: %s: %s", r.endpoint, msg)}
}

// errBody returns the start of an answer's body for an error: token and
// every token the Conn has seen redacted (an answer of jobCount, which
// carries no token, may echo one), at most 1 KiB, cut on a UTF-8
// boundary, surrounding space trimmed.
func (c *Conn) errBody(b []byte, token string) string {
	if len(b) > 64*maxErrorBody {
		// Redaction only shortens: 64 KiB is plenty for 1 KiB of output
		// (and a tracker that echoes a token knows it already).
		b = b[:64*maxErrorBody]
	}
	return strings.TrimSpace(cutUTF8(c.redact(string(b), token), maxErrorBody))
}

// retryAfter parses a Retry-After header (delay in seconds or HTTP date)
// and caps it at the policy's MaxRetryAfter. 0 means none or unreadable.
func (c *Conn) retryAfter(h http.Header, now time.Time) time.Duration {
	d := parseRetryAfter(h.Get("Retry-After"), now)
	if d > c.retry.MaxRetryAfter {
		d = c.retry.MaxRetryAfter
	}
	return d
}

// parseRetryAfter reads the value of a Retry-After header: a number of
// seconds or an HTTP date. It returns 0 for an empty, unreadable or past
// value.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(24*time.Hour/time.Second) {
			secs = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	if d := t.Sub(now); d > 0 {
		return d
	}
	return 0
}

// policyBackOff is the backoff.BackOff of one call: exponential with
// jitter, a limit on retries, and a Retry-After override set by the failed
// attempt. It is not safe for concurrent use; each call makes its own.
type policyBackOff struct {
	p          RetryPolicy
	exp        *backoff.ExponentialBackOff
	retries    int
	retryAfter time.Duration
}

// Reset starts the policy afresh; backoff.RetryNotify calls it first.
func (b *policyBackOff) Reset() {
	b.exp = &backoff.ExponentialBackOff{
		InitialInterval:     b.p.InitialInterval,
		RandomizationFactor: b.p.RandomizationFactor,
		Multiplier:          b.p.Multiplier,
		MaxInterval:         b.p.MaxInterval,
		MaxElapsedTime:      b.p.MaxElapsedTime,
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock,
	}
	b.exp.Reset()
	b.retries = 0
	b.retryAfter = 0
}

// NextBackOff returns the wait before the next attempt, or backoff.Stop.
func (b *policyBackOff) NextBackOff() time.Duration {
	ra := b.retryAfter
	b.retryAfter = 0
	if b.p.MaxRetries > 0 && b.retries >= b.p.MaxRetries {
		return backoff.Stop
	}
	b.retries++
	next := b.exp.NextBackOff()
	if next == backoff.Stop || ra <= 0 {
		return next
	}
	if b.p.MaxElapsedTime > 0 && b.exp.GetElapsedTime()+ra > b.p.MaxElapsedTime {
		return backoff.Stop
	}
	return ra
}
