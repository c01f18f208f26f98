package trackertest

import (
	"errors"
	"net/http"
	"time"
)

// Documented defaults of the request limits (Options.MaxBodyBytes,
// MaxLargeBodies, ReadTimeout, WriteTimeout).
const (
	// DefaultMaxBodyBytes fits the largest output a worker sends: dcworker's
	// 16 MiB of output (its --max-output default), every byte of it escaped
	// to two in the JSON string (quotes, backslashes, newlines), plus the
	// token and the field names.
	DefaultMaxBodyBytes = 32<<20 + 4<<10
	// DefaultMaxLargeBodies is how many large request bodies (announced
	// over LargeBodyBytes) are read at once; more are
	// answered 503 with Retry-After, which clients retry. Decoding a body
	// costs several times its size (the upstream-faithful decoder works on
	// runes), so this bounds what concurrent clients can cost.
	DefaultMaxLargeBodies = 2
	// LargeBodyBytes: a body announced at most this long is small and is
	// not counted against MaxLargeBodies (tokens, progress, most outputs).
	// A body of unannounced length (chunked) may be at most this long:
	// every client of the tracker announces its bodies' length, and a
	// chunked body cannot be read into a buffer of the right size.
	LargeBodyBytes = 1 << 20
	// MaxJSONDepth is the deepest nesting of arrays and objects a body may
	// have (Python's json module stops at about 1000 too, by recursion
	// limit); deeper bodies are answered 400 before they are decoded.
	MaxJSONDepth = 1000
	// DefaultReadTimeout bounds the time to read a request, body included
	// (a client dripping its body a byte a second is cut off);
	// DefaultWriteTimeout the time to write an answer.
	DefaultReadTimeout  = 2 * time.Minute
	DefaultWriteTimeout = 2 * time.Minute
	// readHeaderTimeout bounds the time to read a request's headers.
	readHeaderTimeout = 10 * time.Second
)

// admitBody applies the body limits to r before it is handled: an
// announced length over the limit is refused (413) unread; a large body
// takes one of the MaxLargeBodies slots (503 if none is free); the body is
// cut at the limit, LargeBodyBytes for a chunked one (bodyFields answers
// 413 then). release must be called
// when the body is no longer used.
func (t *Tracker) admitBody(w http.ResponseWriter, r *http.Request) (release func(), refused *answer) {
	release = func() {}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return release, nil
	}
	if r.ContentLength > t.maxBody {
		a := tooLarge()
		return release, &a
	}
	limit := t.maxBody
	if r.ContentLength < 0 {
		limit = min(limit, LargeBodyBytes)
	}
	if r.ContentLength > LargeBodyBytes {
		select {
		case t.largeBodies <- struct{}{}:
			release = func() { <-t.largeBodies }
		default:
			w.Header().Set("Retry-After", "1")
			a := textAnswer(http.StatusServiceUnavailable, "Service Unavailable")
			return release, &a
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	return release, nil
}

func tooLarge() answer {
	return textAnswer(http.StatusRequestEntityTooLarge, "Request Entity Too Large")
}

func isTooLarge(err error) bool {
	var mb *http.MaxBytesError
	return errors.As(err, &mb)
}

// jsonDepth returns the deepest nesting of arrays and objects in doc,
// stopping once it passes limit; brackets inside strings do not count.
func jsonDepth(doc string, limit int) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for i := 0; i < len(doc); i++ {
		c := doc[i]
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			if depth > deepest {
				deepest = depth
				if deepest > limit {
					return deepest
				}
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}
