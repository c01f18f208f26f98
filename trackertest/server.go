package trackertest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Log attribute keys.
const (
	keyMethod   = "method"
	keyPath     = "path"
	keyStatus   = "status"
	keyDuration = "dur"
	keyFault    = "fault"
	keyWorker   = "worker"
	keyIdle     = "idle"
)

// Fault is what a FaultFunc asks the tracker to do with one /api request.
type Fault int

// Faults.
const (
	FaultNone        Fault = iota
	FaultDropAnswer        // apply the request, then hang up the connection without answering
	FaultDropRequest       // hang up without applying the request
	Fault500               // answer 500 "Internal Server Error" without applying
	Fault502               // answer 502 "Bad Gateway" without applying
	Fault503               // answer 503 "Service Unavailable" without applying
)

func (f Fault) String() string {
	switch f {
	case FaultNone:
		return "none"
	case FaultDropAnswer:
		return "drop-answer"
	case FaultDropRequest:
		return "drop-request"
	case Fault500:
		return "500"
	case Fault502:
		return "502"
	case Fault503:
		return "503"
	}
	return "fault?"
}

// FaultFunc decides the fault for one request to /api/... before it is handled; endpoint is
// the path after "/api/" (e.g. "completeJob"). The delay is waited first (real time), whatever
// the fault. A FaultFunc may block (a test can hold requests at a barrier) and is called
// concurrently.
type FaultFunc func(r *http.Request, endpoint string) (Fault, time.Duration)

// SetFault installs f for all later requests; nil clears it.
func (t *Tracker) SetFault(f FaultFunc) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fault = f
}

// EndpointStats counts the requests of one endpoint.
type EndpointStats struct {
	Requests int         // requests received, faulted ones included
	Status   map[int]int // answers sent, by status code
	Faults   map[Fault]int
}

// Stats returns a copy of the request counters, by endpoint: "new", "jobCount", ..., "bye"
// for the API, "page" for the dashboard pages, "other" for anything else.
func (t *Tracker) Stats() map[string]EndpointStats {
	t.statsMu.Lock()
	defer t.statsMu.Unlock()
	out := make(map[string]EndpointStats, len(t.stats))
	for k, v := range t.stats {
		c := EndpointStats{Requests: v.Requests, Status: map[int]int{}, Faults: map[Fault]int{}}
		for s, n := range v.Status {
			c.Status[s] = n
		}
		for f, n := range v.Faults {
			c.Faults[f] = n
		}
		out[k] = c
	}
	return out
}

func (t *Tracker) count(endpoint string, status int, fault Fault) {
	t.statsMu.Lock()
	defer t.statsMu.Unlock()
	s := t.stats[endpoint]
	if s == nil {
		s = &EndpointStats{Status: map[int]int{}, Faults: map[Fault]int{}}
		t.stats[endpoint] = s
	}
	s.Requests++
	if status != 0 {
		s.Status[status]++
	}
	if fault != FaultNone {
		s.Faults[fault]++
	}
}

// route is a matched path: its endpoint name, allowed method and path parameters.
type route struct {
	name   string
	method string
	params []string
}

var apiRoutes = map[string]string{
	"new": http.MethodGet, "jobCount": http.MethodGet,
	"validateWorker": http.MethodPost, "updateProgress": http.MethodPost, "newJob": http.MethodPost,
	"completeJob": http.MethodPost, "flagInvalidData": http.MethodPost, "bye": http.MethodPost,
}

func match(path string) (route, bool) {
	switch {
	case path == "/":
		return route{name: "index", method: http.MethodGet}, true
	case path == "/leaderboard":
		return route{name: "leaderboard", method: http.MethodGet}, true
	case strings.HasPrefix(path, "/worker/"):
		parts := strings.Split(path[len("/worker/"):], "/")
		if len(parts) == 2 && parts[0] != "" && parts[1] != "" {
			return route{name: "worker", method: http.MethodGet, params: parts}, true
		}
	case strings.HasPrefix(path, "/api/"):
		name := path[len("/api/"):]
		if m, ok := apiRoutes[name]; ok {
			return route{name: name, method: m}, true
		}
	}
	return route{}, false
}

// ServeHTTP answers one request as the upstream tracker would.
func (t *Tracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	path := r.URL.Path
	endpoint := "other"
	rt, ok := match(path)
	if ok {
		endpoint = rt.name
		if !strings.HasPrefix(path, "/api/") {
			endpoint = "page"
		}
	}

	fault := FaultNone
	if strings.HasPrefix(path, "/api/") {
		t.mu.Lock()
		f := t.fault
		t.mu.Unlock()
		if f != nil {
			var delay time.Duration
			fault, delay = f(r, strings.TrimPrefix(path, "/api/"))
			if delay > 0 {
				timer := time.NewTimer(delay)
				select {
				case <-timer.C:
				case <-r.Context().Done():
					timer.Stop()
					t.count(endpoint, 0, fault)
					return
				}
			}
		}
	}

	var a answer
	switch {
	case fault == FaultDropRequest:
		t.hangUp(w)
		t.count(endpoint, 0, fault)
		t.logRequest(r, 0, fault, start)
		return
	case fault == Fault500:
		a = textAnswer(http.StatusInternalServerError, msgServerError)
	case fault == Fault502:
		a = textAnswer(http.StatusBadGateway, "Bad Gateway")
	case fault == Fault503:
		a = textAnswer(http.StatusServiceUnavailable, "Service Unavailable")
	case !ok:
		a = t.notFound(r)
	case r.Method != rt.method && !(rt.method == http.MethodGet && r.Method == http.MethodHead):
		w.Header().Set("Allow", rt.method)
		a = textAnswer(http.StatusMethodNotAllowed, "Method Not Allowed")
	default:
		release, refused := t.admitBody(w, r)
		if refused != nil {
			a = *refused
		} else {
			a = t.dispatch(r, rt)
		}
		release()
	}

	if fault == FaultDropAnswer {
		t.hangUp(w)
		t.count(endpoint, 0, fault)
		t.logRequest(r, a.status, fault, start)
		return
	}
	if a.location != "" {
		w.Header().Set("Location", a.location)
	}
	if a.ctype != "" {
		w.Header().Set("Content-Type", a.ctype)
	}
	w.WriteHeader(a.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(a.body)
	}
	t.count(endpoint, a.status, fault)
	t.logRequest(r, a.status, fault, start)
}

// notFound answers an unknown path: Starlette redirects a path with trailing slashes to the
// same path without them when that one exists (307, empty body, absolute location).
func (t *Tracker) notFound(r *http.Request) answer {
	p := r.URL.Path
	if p != "/" && strings.HasSuffix(p, "/") {
		trimmed := strings.TrimRight(p, "/")
		if _, ok := match(trimmed); ok {
			loc := "http://" + r.Host + trimmed
			if r.TLS != nil {
				loc = "https://" + r.Host + trimmed
			}
			if r.URL.RawQuery != "" {
				loc += "?" + r.URL.RawQuery
			}
			return answer{status: http.StatusTemporaryRedirect, location: loc}
		}
	}
	return textAnswer(http.StatusNotFound, "Not Found")
}

func (t *Tracker) dispatch(r *http.Request, rt route) answer {
	switch rt.name {
	case "index":
		return t.indexPage()
	case "leaderboard":
		return t.leaderboardPage()
	case "worker":
		return t.workerPage(rt.params[0], rt.params[1])
	case "new":
		q, bad := queryParams(r, "nickname", "stage")
		if bad != nil {
			return *bad
		}
		return t.register(q[0], q[1])
	case "jobCount":
		q, bad := queryParams(r, "stage")
		if bad != nil {
			return *bad
		}
		return t.jobCount(q[0])
	case "updateProgress":
		b, bad := bodyFields(r, "token", "progress")
		if bad != nil {
			return *bad
		}
		return t.updateProgress(b[0], b[1])
	case "completeJob":
		b, bad := bodyFields(r, "token", "data")
		if bad != nil {
			return *bad
		}
		return t.completeJob(r.Context(), b[0], b[1])
	}
	b, bad := bodyFields(r, "token")
	if bad != nil {
		return *bad
	}
	switch rt.name {
	case "validateWorker":
		return t.validateWorker(b[0])
	case "newJob":
		return t.newJob(b[0])
	case "flagInvalidData":
		return t.flagInvalidData(b[0])
	default: // "bye"
		return t.bye(b[0])
	}
}

// hangUp closes the connection without an answer.
func (t *Tracker) hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler) // HTTP/2 or a recorder: abort the stream
}

func (t *Tracker) logRequest(r *http.Request, status int, fault Fault, start time.Time) {
	attrs := []slog.Attr{
		slog.String(keyMethod, r.Method),
		slog.String(keyPath, r.URL.Path),
		slog.Int(keyStatus, status),
		slog.Duration(keyDuration, time.Since(start)),
	}
	if fault != FaultNone {
		attrs = append(attrs, slog.String(keyFault, fault.String()))
	}
	t.log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
}

// Server is a Tracker served on a loopback port, made by Start.
type Server struct {
	URL     string   // base URL, "http://127.0.0.1:PORT", no trailing slash
	Tracker *Tracker // the tracker it serves

	srv       *http.Server
	stopSweep func()
	once      sync.Once

	mu       sync.Mutex
	inflight int // handlers running
}

// Start serves a new Tracker for opts on a loopback port, with its idle sweep running, until
// the test ends (tb.Cleanup) or Close is called.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("trackertest: listen: %v", err)
	}
	t := New(opts)
	s := &Server{
		URL:     "http://" + ln.Addr().String(),
		Tracker: t,
	}
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.mu.Lock()
			s.inflight++
			s.mu.Unlock()
			defer func() {
				s.mu.Lock()
				s.inflight--
				s.mu.Unlock()
			}()
			t.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       t.readTimeout,
		WriteTimeout:      t.writeTimeout,
		IdleTimeout:       2 * time.Minute,
	}
	s.stopSweep = t.startSweeper()
	go func() { _ = s.srv.Serve(ln) }()
	tb.Cleanup(s.Close)
	return s
}

// Close stops the server at once (open connections are closed, as if the tracker died) and
// its idle sweep, then waits (at most 5 s) for handlers still running to return, so that none
// logs after the test. It may be called more than once.
func (s *Server) Close() {
	s.once.Do(func() {
		s.stopSweep()
		_ = s.srv.Close()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		deadline := time.NewTimer(5 * time.Second)
		defer deadline.Stop()
		for {
			s.mu.Lock()
			n := s.inflight
			s.mu.Unlock()
			if n == 0 {
				return
			}
			select {
			case <-tick.C:
			case <-deadline.C:
				return
			}
		}
	})
}

// Serve serves t on ln, with its idle sweep running, until ctx is done; then it shuts down
// gracefully (waiting at most 5 s for requests in flight) and returns nil. Other errors are
// those of http.Server.Serve.
func Serve(ctx context.Context, ln net.Listener, t *Tracker) error {
	srv := &http.Server{
		Handler:           t,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       t.readTimeout,
		WriteTimeout:      t.writeTimeout,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	stop := t.startSweeper()
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// afterFuncer is a Clock that can call back when it reaches a time (FakeClock does).
type afterFuncer interface {
	AfterFunc(d time.Duration, f func()) (stop func())
}

// startSweeper runs CheckIdle every check interval of the tracker's clock and returns the
// function that stops it.
func (t *Tracker) startSweeper() (stop func()) {
	if fc, ok := t.clock.(afterFuncer); ok {
		var mu sync.Mutex
		stopped := false
		var cancel func()
		var arm func()
		arm = func() {
			mu.Lock()
			defer mu.Unlock()
			if stopped {
				return
			}
			cancel = fc.AfterFunc(t.interval, func() {
				t.CheckIdle()
				arm()
			})
		}
		arm()
		return func() {
			mu.Lock()
			defer mu.Unlock()
			stopped = true
			if cancel != nil {
				cancel()
			}
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(t.interval)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				t.CheckIdle()
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		wg.Wait()
	}
}
