// Package preempt watches a cloud provider's instance metadata service for the
// advance notice it gives before it reclaims a spot / preemptible VM, so a
// worker can drain before the SIGTERM (or the power cut) arrives.
//
// Three providers are supported, each through its own documented endpoint:
//
//   - AWS: GET /latest/meta-data/spot/instance-action, with an IMDSv2 session
//     token from PUT /latest/api/token. 404 until a notice exists, then 200 with
//     a JSON body {"action":"terminate","time":"..."}.
//   - GCP: GET /computeMetadata/v1/instance/preempted with header
//     "Metadata-Flavor: Google": "FALSE" until the VM is preempted, then "TRUE".
//     The watcher long-polls with ?wait_for_change=true.
//   - Azure: GET /metadata/scheduledevents?api-version=2020-07-01 with header
//     "Metadata: true": JSON whose Events list gains an event with
//     EventType "Preempt".
//
// The metadata service lives at DefaultAddr (the link-local 169.254.169.254) on
// all three clouds. Options.Addr overrides it; tests always pass the address
// of a fake server on loopback and never let a request reach DefaultAddr.
package preempt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultAddr is the address of the instance metadata service on AWS, GCP and
// Azure. It is link-local: only a VM of that cloud can reach it.
const DefaultAddr = "169.254.169.254"

// DefaultInterval is how often a watcher polls when the provider has no
// long-poll: AWS recommends checking every 5 seconds; the notice comes 2
// minutes (AWS), 30 seconds (GCP) or at least 30 seconds (Azure) ahead.
const DefaultInterval = 5 * time.Second

// DefaultRequestTimeout bounds one metadata request (a GCP long-poll gets this
// plus the server-side wait).
const DefaultRequestTimeout = 2 * time.Second

// Provider names a cloud whose preemption notice can be watched.
type Provider string

// The supported providers.
const (
	AWS   Provider = "aws"
	GCP   Provider = "gcp"
	Azure Provider = "azure"
)

// Errors returned by ParseProvider and Watch.
var (
	// ErrUnknownProvider is returned for a provider name other than aws, gcp, azure.
	ErrUnknownProvider = errors.New("preempt: unknown provider (want aws, gcp or azure)")
)

// ParseProvider maps "aws", "gcp" or "azure" (any case) to a Provider.
func ParseProvider(s string) (Provider, error) {
	switch p := Provider(strings.ToLower(strings.TrimSpace(s))); p {
	case AWS, GCP, Azure:
		return p, nil
	}
	return "", fmt.Errorf("%w: %q", ErrUnknownProvider, s)
}

// Notice is an advance notice of preemption.
type Notice struct {
	Provider Provider
	// Action is what the provider will do: "terminate", "stop", "hibernate"
	// (AWS), "preempted" (GCP), "Preempt" (Azure).
	Action string
	// Time is when it will happen, zero when the provider does not say.
	Time time.Time
	// Detail is the raw answer of the metadata service (at most 1 KiB).
	Detail string
}

// Options configures Watch. The zero value is usable.
type Options struct {
	// Addr is the metadata service address: "host:port", "host" or an
	// "http://host:port" URL. Empty means DefaultAddr.
	Addr string
	// HTTPClient sends the requests; nil means a private client with no proxy
	// (the metadata service must be reached directly). Tests inject a client
	// whose transport refuses anything but loopback.
	HTTPClient *http.Client
	// Interval between polls; 0 means DefaultInterval.
	Interval time.Duration
	// RequestTimeout bounds each request; 0 means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// Logger receives debug lines about failed polls; nil discards.
	Logger *slog.Logger
}

// BaseURL returns the metadata service base URL that opts selects.
func (o *Options) BaseURL() string {
	addr := ""
	if o != nil {
		addr = o.Addr
	}
	if addr == "" {
		addr = DefaultAddr
	}
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return strings.TrimRight(addr, "/")
	}
	return "http://" + addr
}

// Watch polls the metadata service of provider p until it announces a
// preemption, and returns that notice. It returns ctx's error when ctx ends
// first. Failed requests (the service unreachable, unexpected answers) are
// logged at debug level and retried at the poll interval: a watcher never
// gives up on its own. Watch is safe to call from several goroutines.
func Watch(ctx context.Context, p Provider, opts *Options) (Notice, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Transport: &http.Transport{Proxy: nil}}
	}
	w := &watcher{opts: o, base: o.BaseURL()}
	var poll func(context.Context) (Notice, bool, error)
	switch p {
	case AWS:
		poll = w.pollAWS
	case GCP:
		poll = w.pollGCP
	case Azure:
		poll = w.pollAzure
	default:
		return Notice{}, fmt.Errorf("%w: %q", ErrUnknownProvider, string(p))
	}
	for {
		began := time.Now()
		n, ok, err := poll(ctx)
		if ok {
			n.Provider = p
			return n, nil
		}
		if err != nil && ctx.Err() == nil {
			o.Logger.Debug("preemption notice poll failed", "provider", string(p), "err", err)
		}
		wait := o.Interval
		if w.immediate && err == nil {
			// A long-poll returned without a change: ask again at once,
			// unless it came back early (a server that does not hold the
			// request must not be hammered).
			wait -= time.Since(began)
			if wait <= 0 {
				continue
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return Notice{}, ctx.Err()
		case <-t.C:
		}
	}
}

type watcher struct {
	opts      Options
	base      string
	awsToken  string
	gcpETag   string
	immediate bool // the last poll was a long-poll that may be repeated at once
}

const maxBody = 64 << 10

func (w *watcher) do(ctx context.Context, method, path string, hdr http.Header, timeout time.Duration) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, w.base+path, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := w.opts.HTTPClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, body, nil
}

// clip keeps at most 1 KiB of an answer for a notice's Detail, cut at a
// character.
func clip(b []byte) string {
	if len(b) > 1024 {
		b = b[:1024]
		// Drop a character the cut split (its first bytes only).
		for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
			if utf8.RuneStart(b[i]) {
				if !utf8.FullRune(b[i:]) {
					b = b[:i]
				}
				break
			}
		}
	}
	return string(b)
}

// sendable reports whether an IMDSv2 token can be sent back in a header: a
// token the service gave with a control character in it (or an empty one)
// is not kept, so that a bad answer cannot make every later poll fail
// before it is sent (the service's 401, which gets a new token, would never
// come).
func sendable(tok string) bool {
	return tok != "" && len(tok) <= 1024 && !strings.ContainsFunc(tok, func(c rune) bool { return c < ' ' && c != '\t' || c == 0x7f })
}

// pollAWS asks for the spot instance-action. It gets an IMDSv2 token first and
// falls back to IMDSv1 (no token) when the token endpoint is not there.
func (w *watcher) pollAWS(ctx context.Context) (Notice, bool, error) {
	if w.awsToken == "" {
		st, _, body, err := w.do(ctx, http.MethodPut, "/latest/api/token",
			http.Header{"X-Aws-Ec2-Metadata-Token-Ttl-Seconds": {"21600"}}, w.opts.RequestTimeout)
		if err != nil {
			return Notice{}, false, fmt.Errorf("aws token: %w", err)
		}
		if tok := strings.TrimSpace(string(body)); st == http.StatusOK && sendable(tok) {
			w.awsToken = tok
		}
	}
	hdr := http.Header{}
	if w.awsToken != "" {
		hdr.Set("X-Aws-Ec2-Metadata-Token", w.awsToken)
	}
	st, _, body, err := w.do(ctx, http.MethodGet, "/latest/meta-data/spot/instance-action", hdr, w.opts.RequestTimeout)
	if err != nil {
		w.awsToken = "" // a fresh one next time, whatever went wrong
		return Notice{}, false, fmt.Errorf("aws instance-action: %w", err)
	}
	switch st {
	case http.StatusNotFound:
		return Notice{}, false, nil
	case http.StatusUnauthorized:
		w.awsToken = "" // expired: get a new one next time
		return Notice{}, false, errors.New("aws instance-action: 401, token refreshed")
	case http.StatusOK:
		var a struct {
			Action string `json:"action"`
			Time   string `json:"time"`
		}
		if err := json.Unmarshal(body, &a); err != nil || a.Action == "" {
			return Notice{}, false, fmt.Errorf("aws instance-action: undecodable answer %q", clip(body))
		}
		n := Notice{Action: a.Action, Detail: clip(body)}
		n.Time, _ = time.Parse(time.RFC3339, a.Time)
		return n, true, nil
	}
	return Notice{}, false, fmt.Errorf("aws instance-action: status %d", st)
}

// pollGCP reads instance/preempted; after the first answer it long-polls with
// wait_for_change so the notice arrives as soon as the value flips.
func (w *watcher) pollGCP(ctx context.Context) (Notice, bool, error) {
	path := "/computeMetadata/v1/instance/preempted"
	timeout := w.opts.RequestTimeout
	w.immediate = false
	if w.gcpETag != "" {
		path += "?wait_for_change=true&timeout_sec=60&last_etag=" + url.QueryEscape(w.gcpETag)
		timeout += 70 * time.Second
	}
	st, hdr, body, err := w.do(ctx, http.MethodGet, path, http.Header{"Metadata-Flavor": {"Google"}}, timeout)
	if err != nil {
		w.gcpETag = "" // fall back to a plain read next time
		return Notice{}, false, fmt.Errorf("gcp preempted: %w", err)
	}
	if st != http.StatusOK {
		w.gcpETag = ""
		return Notice{}, false, fmt.Errorf("gcp preempted: status %d", st)
	}
	switch strings.TrimSpace(string(body)) {
	case "TRUE":
		return Notice{Action: "preempted", Detail: clip(body)}, true, nil
	case "FALSE":
		if et := hdr.Get("ETag"); et != "" {
			w.gcpETag = et
			w.immediate = true
		}
		return Notice{}, false, nil
	}
	return Notice{}, false, fmt.Errorf("gcp preempted: unexpected answer %q", clip(body))
}

// pollAzure reads the scheduled events and looks for a Preempt event.
func (w *watcher) pollAzure(ctx context.Context) (Notice, bool, error) {
	st, _, body, err := w.do(ctx, http.MethodGet, "/metadata/scheduledevents?api-version=2020-07-01",
		http.Header{"Metadata": {"true"}}, w.opts.RequestTimeout)
	if err != nil {
		return Notice{}, false, fmt.Errorf("azure scheduledevents: %w", err)
	}
	if st != http.StatusOK {
		return Notice{}, false, fmt.Errorf("azure scheduledevents: status %d", st)
	}
	var doc struct {
		Events []struct {
			EventID   string `json:"EventId"`
			EventType string `json:"EventType"`
			NotBefore string `json:"NotBefore"`
		} `json:"Events"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return Notice{}, false, fmt.Errorf("azure scheduledevents: undecodable answer %q", clip(body))
	}
	for _, e := range doc.Events {
		if e.EventType == "Preempt" {
			n := Notice{Action: e.EventType, Detail: clip(body)}
			n.Time, _ = time.Parse(time.RFC1123, e.NotBefore)
			return n, true, nil
		}
	}
	return Notice{}, false, nil
}
