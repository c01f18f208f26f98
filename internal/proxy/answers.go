package proxy

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Answer texts of the upstream tracker (docs/PROTOCOL.md; package trackertest
// serves the same), typos included, so that a program written for the
// tracker cannot tell the proxy from it.
const (
	msgNoWorker   = "The server could not find this worker. Did the worker time out?"
	msgNoJobs     = "Either there are no new jobs available, or there was an error whilst finding a job. Keep retrying, as jobs are dynamically created."
	msgNoOpenJob  = "You do not have an open job."
	msgNotWorking = "This worker is not currently working on a job."
	msgOK         = "200 OK"
)

const (
	ctypeText = "text/plain; charset=utf-8"
	ctypeJSON = "application/json"
)

func writeText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", ctypeText)
	w.Header().Set("Content-Length", strconv.Itoa(len(text)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(text))
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", ctypeJSON)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// pyString encodes s as a JSON string the way the tracker's JSON answers do
// (Python's json.dumps with ensure_ascii off): non-ASCII kept as UTF-8,
// control characters escaped.
func pyString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r < 0x20 {
				fmt.Fprintf(&b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// registerBody is /api/new's answer, fields in the tracker's order.
func registerBody(token, displayName, project, stageName string) string {
	return `{"token":` + pyString(token) + `,"display_name":` + pyString(displayName) +
		`,"project":` + pyString(project) + `,"stage_name":` + pyString(stageName) + `}`
}

// jobBody is newJob's answer: data is the wire form (nil: null).
func jobBody(number int, data *string) string {
	d := "null"
	if data != nil {
		d = pyString(*data)
	}
	return `{"data":` + d + `,"number":` + strconv.Itoa(number) + `}`
}

// tooLongProgress reports progress the tracker refuses (404 NOWORKER).
func tooLongProgress(p string) bool {
	return utf8.RuneCountInString(p) > 255 || strings.ContainsRune(p, 0)
}

// hangUp closes the program's connection without an answer, as a proxy
// that stops mid-request does: the upstream client retries the request
// (against the restarted proxy), which the proxy recognises.
func hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}
