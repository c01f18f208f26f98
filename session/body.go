package session

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strconv"
)

// readBody reads an answer's body, at most max+1 bytes (one more than the
// limit, so that the caller sees it was over). A body whose length the
// tracker announced is read into one buffer of that size, not grown by
// doubling: a 15 MB job costs 15 MB to read, not 30.
func readBody(r io.Reader, contentLength, max int64) ([]byte, error) {
	if contentLength < 0 || contentLength > max {
		return io.ReadAll(io.LimitReader(r, max+1))
	}
	buf := make([]byte, contentLength, contentLength+1)
	n, err := io.ReadFull(r, buf)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = io.ErrUnexpectedEOF
		}
		return buf[:n], err
	}
	// The announced length is checked by net/http; an extra byte would be
	// a transport that does not (a test double): read it to tell.
	var one [1]byte
	if m, _ := r.Read(one[:]); m > 0 {
		rest, err := io.ReadAll(io.LimitReader(r, max-contentLength))
		return append(append(buf, one[0]), rest...), err
	}
	return buf, nil
}

// jobKey finds a top-level "number" member: a key can only follow '{' or
// ',', never inside a JSON string, where every quote is escaped.
var jobKey = regexp.MustCompile(`[{,]\s*"number"\s*:\s*([0-9]{1,18})\s*[,}]`)

// tailKeep is how much of the end of an oversized answer jobNumberOf keeps.
const tailKeep = 256

// jobNumberOf returns the job number of a newJob answer over the size
// limit: head is its first bytes, rest the unread remainder. The number
// comes after the data on the upstream tracker, so up to limit more bytes are
// read (into a small buffer, never kept) to find it at the end; 0 if it is
// not found there. A body of a gigabyte costs limit bytes of reading, not a
// gigabyte of memory.
func jobNumberOf(head []byte, rest io.Reader, limit int64) int {
	if n := lastJobNumber(head); n > 0 {
		return n
	}
	tail := make([]byte, 0, 2*tailKeep)
	tail = append(tail, head[max(0, len(head)-tailKeep):]...)
	buf := make([]byte, 32<<10)
	r := io.LimitReader(rest, limit)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if len(chunk) > tailKeep {
				tail = append(tail[:0], chunk[len(chunk)-tailKeep:]...)
			} else {
				tail = append(tail, chunk...)
				if len(tail) > tailKeep {
					tail = append(tail[:0], tail[len(tail)-tailKeep:]...)
				}
			}
		}
		if err == io.EOF {
			return lastJobNumber(tail)
		}
		if err != nil {
			return 0
		}
	}
}

func lastJobNumber(b []byte) int {
	m := jobKey.FindAllSubmatch(b, -1)
	if len(m) == 0 {
		return 0
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(m[len(m)-1][1])))
	if err != nil || n < 1 {
		return 0
	}
	return n
}
