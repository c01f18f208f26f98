package session

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Limits the tracker's database imposes, checked or applied before sending.
const (
	// MaxProgressLen is the longest progress text, in characters (runes),
	// the tracker stores; UpdateProgress cuts longer text to this length,
	// because the tracker answers longer text with a misleading 404.
	MaxProgressLen = 255
	// MaxNicknameLen is the longest nickname, in characters (runes), the
	// tracker accepts; Register refuses longer ones (the tracker answers 500).
	MaxNicknameLen = 128
)

// DefaultMaxResponseBytes is the default limit on the size of an answer's
// body (16 MiB). Job data is the only large answer.
const DefaultMaxResponseBytes = 16 << 20

// UserAgent is the default User-Agent header of every request.
const UserAgent = "distcompute-go/0.1"

// RetryPolicy says how a call retries transport errors, 5xx and 429 answers:
// exponential backoff with jitter (github.com/cenkalti/backoff/v4), a fresh
// policy for every call. A zero field takes its value from
// DefaultRetryPolicy, except MaxElapsedTime and MaxRetries, whose zero means
// no limit (the call's context still stops it).
type RetryPolicy struct {
	// InitialInterval is the first wait between attempts.
	InitialInterval time.Duration
	// MaxInterval caps the wait between attempts (before jitter).
	MaxInterval time.Duration
	// Multiplier grows the wait after each attempt; at least 1.
	Multiplier float64
	// RandomizationFactor spreads each wait over
	// [wait*(1-f), wait*(1+f)]; between 0 and 1.
	RandomizationFactor float64
	// MaxElapsedTime gives up retrying once this much time has passed since
	// the call began; 0 means no limit.
	MaxElapsedTime time.Duration
	// MaxRetries gives up after this many retries (attempts after the
	// first); 0 means no limit.
	MaxRetries int
	// AttemptTimeout bounds each attempt: sending the request and reading
	// the whole answer. An attempt that times out is retried.
	AttemptTimeout time.Duration
	// MaxRetryAfter caps the wait a Retry-After header (seconds or HTTP
	// date) of a 429 or 5xx answer may impose; when the header is present
	// its (capped) value replaces the backoff's wait.
	MaxRetryAfter time.Duration
}

// DefaultRetryPolicy returns the default policy: first wait 500 ms, growing
// ×1.5 up to 30 s, ±50 % jitter, giving up after 10 minutes, 30 s per
// attempt, Retry-After honoured up to 60 s, no limit on the number of
// retries.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		InitialInterval:     500 * time.Millisecond,
		MaxInterval:         30 * time.Second,
		Multiplier:          1.5,
		RandomizationFactor: 0.5,
		MaxElapsedTime:      10 * time.Minute,
		AttemptTimeout:      30 * time.Second,
		MaxRetryAfter:       60 * time.Second,
	}
}

// withDefaults fills zero fields from DefaultRetryPolicy and checks the rest.
func (p RetryPolicy) withDefaults() (RetryPolicy, error) {
	d := DefaultRetryPolicy()
	if p.InitialInterval < 0 || p.MaxInterval < 0 || p.MaxElapsedTime < 0 || p.AttemptTimeout < 0 ||
		p.MaxRetryAfter < 0 || p.MaxRetries < 0 {
		return p, fmt.Errorf("session: retry policy: %w: negative value", ErrInvalidArgument)
	}
	if p.Multiplier != 0 && p.Multiplier < 1 {
		return p, fmt.Errorf("session: retry policy: %w: multiplier %v below 1", ErrInvalidArgument, p.Multiplier)
	}
	if p.RandomizationFactor < 0 || p.RandomizationFactor > 1 {
		return p, fmt.Errorf("session: retry policy: %w: randomization factor %v not in [0, 1]", ErrInvalidArgument, p.RandomizationFactor)
	}
	if p.InitialInterval == 0 {
		p.InitialInterval = d.InitialInterval
	}
	if p.MaxInterval == 0 {
		p.MaxInterval = d.MaxInterval
	}
	if p.MaxInterval < p.InitialInterval {
		p.MaxInterval = p.InitialInterval
	}
	if p.Multiplier == 0 {
		p.Multiplier = d.Multiplier
	}
	if p.RandomizationFactor == 0 {
		p.RandomizationFactor = d.RandomizationFactor
	}
	if p.AttemptTimeout == 0 {
		p.AttemptTimeout = d.AttemptTimeout
	}
	if p.MaxRetryAfter == 0 {
		p.MaxRetryAfter = d.MaxRetryAfter
	}
	return p, nil
}

// Options configure a Conn. The zero value (or nil) gives the documented
// defaults.
type Options struct {
	// HTTPClient sends the requests. Conn uses a shallow copy of it whose
	// CheckRedirect refuses to follow redirects (requests carry the token in
	// their body), so the caller's client is left unchanged. Nil: a private
	// client with its own transport (never http.DefaultClient).
	HTTPClient *http.Client
	// Logger receives retry notices (Warn), recoveries (Info) and one Debug
	// line per attempt. Tokens are logged only redacted. Nil: discard.
	Logger *slog.Logger
	// Retry is the retry policy; nil: DefaultRetryPolicy().
	Retry *RetryPolicy
	// MaxResponseBytes limits an answer's body; a longer answer is a
	// *ServerError wrapping ErrResponseTooLarge. 0: DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// UserAgent is the User-Agent header; "": UserAgent.
	UserAgent string
}

// Conn talks to one tracker. It holds no worker state (tokens are passed to
// each call), is safe for concurrent use by many goroutines, and needs no
// closing.
type Conn struct {
	base      *url.URL // without trailing slash
	client    *http.Client
	log       *slog.Logger
	retry     RetryPolicy
	maxBody   int64
	userAgent string
	tokens    tokenSet // tokens seen, redacted from every error
	// urls holds each endpoint's URL without a query, built by New; the
	// header values every request carries are built once too (requests
	// share them: nothing writes to a request's header values in place).
	urls                map[string]string
	hUA, hAccept, hJSON []string
}

// New returns a Conn for the tracker at baseURL, an http or https URL with a
// host and an optional path prefix, with or without a trailing slash. A
// malformed URL or a bad option is an error wrapping ErrInvalidArgument.
func New(baseURL string, opts *Options) (*Conn, error) {
	if opts == nil {
		opts = &Options{}
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("session: tracker URL: %w: %v", ErrInvalidArgument, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("session: tracker URL %q: %w: scheme must be http or https", u.Redacted(), ErrInvalidArgument)
	}
	if u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("session: tracker URL %q: %w: no host", u.Redacted(), ErrInvalidArgument)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fmt.Errorf("session: tracker URL %q: %w: must have no query or fragment", u.Redacted(), ErrInvalidArgument)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/")
	if u.RawPath != "" && u.RawPath == u.EscapedPath() {
		u.RawPath = ""
	}

	c := &Conn{base: u, log: opts.Logger, maxBody: opts.MaxResponseBytes, userAgent: opts.UserAgent}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.maxBody < 0 {
		return nil, fmt.Errorf("session: %w: negative MaxResponseBytes", ErrInvalidArgument)
	}
	if c.maxBody == 0 {
		c.maxBody = DefaultMaxResponseBytes
	}
	if c.userAgent == "" {
		c.userAgent = UserAgent
	}
	c.hUA, c.hAccept, c.hJSON = []string{c.userAgent}, []string{"application/json, text/plain"}, []string{"application/json"}
	c.urls = make(map[string]string)
	for _, ep := range []string{epRegister, epJobCount, epValidateWorker, epUpdateProgress, epNewJob, epCompleteJob, epFlag, epBye} {
		c.urls[ep] = c.endpointURL(ep, nil)
	}
	rp := DefaultRetryPolicy()
	if opts.Retry != nil {
		rp = *opts.Retry
	}
	if c.retry, err = rp.withDefaults(); err != nil {
		return nil, err
	}
	if opts.HTTPClient != nil {
		hc := *opts.HTTPClient
		c.client = &hc
	} else {
		c.client = &http.Client{Transport: newTransport()}
	}
	// Every request but register carries the token; none is ever sent on
	// to a place the tracker redirects to. A 3xx is a *ServerError.
	c.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c, nil
}

// newTransport returns a transport of our own, configured like
// http.DefaultTransport.
func newTransport() http.RoundTripper {
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		return t.Clone()
	}
	return &http.Transport{Proxy: http.ProxyFromEnvironment}
}

// URL returns the tracker's base URL as Conn uses it: without a trailing
// slash. It contains the password if baseURL had one.
func (c *Conn) URL() string { return c.base.String() }

// CloseIdleConnections closes the idle keep-alive connections of the
// Conn's HTTP client.
func (c *Conn) CloseIdleConnections() { c.client.CloseIdleConnections() }

// target returns the URL of endpoint name with query q (see endpointURL),
// built once per endpoint when q is empty.
func (c *Conn) target(name string, q url.Values) string {
	if len(q) == 0 {
		if u, ok := c.urls[name]; ok {
			return u
		}
	}
	return c.endpointURL(name, q)
}

// endpointURL returns the URL of /api/<name> under the base URL, never with
// a trailing slash (the tracker answers one with 307).
func (c *Conn) endpointURL(name string, q url.Values) string {
	u := *c.base
	u.Path = c.base.Path + "/api/" + name
	if c.base.RawPath != "" {
		u.RawPath = c.base.RawPath + "/api/" + name
	}
	u.RawQuery = q.Encode()
	return u.String()
}
