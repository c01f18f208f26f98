package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
)

// With AckTracker a completion (or flag) is answered once the tracker has
// accepted it, and the client records that outcome right after (a durable
// commit). The program need not wait for that commit: if the proxy dies
// before it, the completion is still pending in the journal, and its resend
// at the next start is answered 403, which replay.Interpret reads as
// applied earlier. What must wait for the commit is the worker's next
// action at the tracker (a newJob after a completion still recorded as
// pending would let its resend complete the next job), and it does: the
// worker's next action waits for the background settle (waitSettle).
//
// The client tells the proxy the outcome only once it is recorded, so the
// proxy watches the tracker's answer itself, for one case only: a 200
// "200 OK" to the request being settled. Under every rule of
// replay.Interpret that answer means Accepted (session maps it to nil for
// completeJob and flagInvalidData, resent or not); every other answer waits
// for the client's outcome.

// acceptWatch is carried by a settle's context: accepted is called (once or
// more) when the tracker answers a request to path 200 "200 OK".
type acceptWatch struct {
	path     string // "/api/completeJob" or "/api/flagInvalidData"
	accepted func()
}

type acceptKey struct{}

func withAcceptWatch(ctx context.Context, path string, accepted func()) context.Context {
	return context.WithValue(ctx, acceptKey{}, acceptWatch{path, accepted})
}

// acceptTransport is the slot clients' transport: next, plus the watch.
type acceptTransport struct{ next http.RoundTripper }

// okText is the tracker's body of an accepted completion or flag.
const okText = "200 OK"

func (t acceptTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	w, ok := req.Context().Value(acceptKey{}).(acceptWatch)
	if err != nil || !ok || resp.StatusCode != http.StatusOK || !strings.HasSuffix(req.URL.Path, w.path) {
		return resp, err
	}
	// Peek at the start of the body and hand the session all of it.
	head := make([]byte, len(okText)+16)
	n, rerr := io.ReadFull(resp.Body, head)
	head = head[:n]
	rest := resp.Body
	if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
		rest = errReader{rerr, resp.Body}
	} else if rerr != nil {
		// The whole body is read: accepted if it is the tracker's text (the
		// session trims it the same way).
		if strings.TrimSpace(string(head)) == okText {
			w.accepted()
		}
	}
	resp.Body = readCloser{io.MultiReader(bytes.NewReader(head), rest), resp.Body}
	return resp, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// errReader returns err on reading: a failed peek is the session's to see.
type errReader struct {
	err error
	io.Closer
}

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// watchedClient is hc with acceptTransport around its transport.
func watchedClient(hc *http.Client) *http.Client {
	c := *hc
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	c.Transport = acceptTransport{next}
	return &c
}
