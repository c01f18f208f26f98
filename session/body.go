package session

import (
	"bytes"
	"io"
	"regexp"
	"strconv"
)

// headKeep is how much of an answer announced over the limit is read: the
// start kept for the error (ServerError keeps 1 KiB of it).
const headKeep = 64 << 10

// readBody reads an answer's body. over reports an answer longer than max:
// then data is only its start (an answer announced too long is not read
// further; one of unannounced length is read to max+1 bytes). A body whose
// length the tracker announced is read into one buffer of that size, not
// grown by doubling: a 15 MB job costs 15 MB to read, not 30.
func readBody(r io.Reader, contentLength, max int64) (data []byte, over bool, err error) {
	switch {
	case contentLength > max:
		data, err = io.ReadAll(io.LimitReader(r, headKeep))
		return data, true, err
	case contentLength < 0:
		return readChunks(r, max)
	}
	buf := make([]byte, contentLength, contentLength+1)
	n, err := io.ReadFull(r, buf)
	if err != nil {
		return buf[:n], false, err
	}
	// The announced length is checked by net/http; an extra byte would be
	// a transport that does not (a test double): read it to tell.
	var one [1]byte
	if m, _ := r.Read(one[:]); m > 0 {
		rest, err := io.ReadAll(io.LimitReader(r, max-contentLength))
		data = append(append(buf, one[0]), rest...)
		return data, int64(len(data)) > max, err
	}
	return buf, false, nil
}

// chunkSize is the piece readChunks reads an answer of unannounced length
// in.
const chunkSize = 1 << 20

// readChunks reads an answer of unannounced length in pieces of chunkSize,
// joined once at the end: an answer costs at most twice its size (not the
// three times of a buffer grown by doubling), and one over max costs max
// bytes and keeps only its first piece.
func readChunks(r io.Reader, max int64) (data []byte, over bool, err error) {
	var chunks [][]byte
	var total int64
	for total <= max && err == nil {
		c := make([]byte, min(chunkSize, max+1-total))
		var n int
		n, err = io.ReadFull(r, c)
		chunks = append(chunks, c[:n])
		total += int64(n)
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = nil
	}
	if total > max {
		return chunks[0], true, err
	}
	data = make([]byte, 0, total)
	for _, c := range chunks {
		data = append(data, c...)
	}
	return data, false, err
}

// jobKey finds a top-level "number" member: a key can only follow '{' or
// ',', never inside a JSON string, where every quote is escaped.
var jobKey = regexp.MustCompile(`[{,]\s*"number"\s*:\s*([0-9]{1,18})\s*[,}]`)

// tailKeep is how much of the end of an oversized answer jobNumberOf keeps.
const tailKeep = 256

// jobNumberOf returns the job number of a newJob answer over the size
// limit: head is its first bytes, rest the unread remainder. The number
// comes after the data on the upstream tracker, so the answer is read on
// (into a small buffer, never kept) up to 2*limit bytes in all to find it
// at the end; 0 if it is not found there. A body of a gigabyte costs 2*limit
// bytes of reading, not a gigabyte of memory.
func jobNumberOf(head []byte, rest io.Reader, limit int64) int {
	if n := lastJobNumber(head[:min(len(head), tailKeep)]); n > 0 {
		return n // the number came first
	}
	tail := make([]byte, 0, 2*tailKeep)
	tail = append(tail, head[max(0, len(head)-tailKeep):]...)
	buf := make([]byte, 32<<10)
	r := io.LimitReader(rest, 2*limit-int64(len(head)))
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
