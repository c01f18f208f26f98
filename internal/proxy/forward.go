package proxy

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"time"
)

// hopHeaders are not copied from one connection to the next.
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Transfer-Encoding": true,
	"Te": true, "Trailer": true, "Upgrade": true, "Content-Length": true,
}

// forward passes a request through to the tracker and relays its answer.
// With retry, transport errors and 5xx answers are retried with backoff
// until the program hangs up (only for requests that change nothing at the
// tracker, or that it refuses before changing anything).
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, path string, body []byte, retry bool) {
	status, hdr, out, err := p.roundTrip(r, path, body, retry)
	if err != nil {
		if r.Context().Err() == nil {
			writeText(w, http.StatusBadGateway, "Bad Gateway")
		}
		return
	}
	relay(w, status, hdr, out)
}

func (p *Proxy) roundTrip(r *http.Request, path string, body []byte, retry bool) (int, http.Header, []byte, error) {
	target := *p.tracker
	target.Path = p.tracker.Path + path
	target.RawQuery = r.URL.RawQuery
	wait := 200 * time.Millisecond
	for {
		status, hdr, out, err := p.once(r.Context(), r, target.String(), body)
		if !retry || (err == nil && status < 500) || r.Context().Err() != nil {
			return status, hdr, out, err
		}
		t := time.NewTimer(wait/2 + rand.N(wait))
		select {
		case <-r.Context().Done():
			t.Stop()
			return 0, nil, nil, r.Context().Err()
		case <-t.C:
		}
		wait = min(2*wait, 10*time.Second)
	}
}

func (p *Proxy) once(ctx context.Context, r *http.Request, target string, body []byte) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.Method, target, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	for k, vs := range r.Header {
		if !hopHeaders[k] {
			req.Header[k] = vs
		}
	}
	resp, err := p.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, out, nil
}

func relay(w http.ResponseWriter, status int, hdr http.Header, body []byte) {
	for k, vs := range hdr {
		if !hopHeaders[k] {
			w.Header()[k] = vs
		}
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
