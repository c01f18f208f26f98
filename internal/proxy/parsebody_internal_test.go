package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/distcompute/distcompute-go/trackertest"
)

// parseBody reads a body as the tracker does: for each body, the tracker
// (trackertest, which mirrors the upstream one) is asked directly, and a
// body it takes must be read by parseBody to the same value; one it
// refuses must be refused too, so that the proxy passes it on for the
// tracker's exact answer. Before, a number other than an integer, a
// boolean, a body without a Content-Type, or with a BOM, was passed on with
// the program's local token and answered as for an unknown worker (a
// complete_job(True) of the upstream client got 404 through dcproxy, 200
// directly).
func TestParseBodyLikeTracker(t *testing.T) {
	check := likeTracker(t)
	json := "application/json"
	for _, c := range parseBodyCases {
		if c.ctype == "" {
			c.ctype = json
		}
		if c.ctype == "none" {
			c.ctype = ""
		}
		for _, bom := range []bool{false, true} {
			check(t, c.ctype, c.value, bom)
		}
	}
}

// parseBodyCases are the seeds of FuzzParseBody too: ctype "" is
// application/json, "none" no Content-Type.
var parseBodyCases = []struct{ ctype, value string }{
	{"", `"half done"`}, {"", `"é\u00e9\ud83d\ude00"`}, {"", `""`}, {"", `"\ud800"`},
	{"", `7`}, {"", `-0`}, {"", `123456789012345678901234567890`},
	{"", `0.5`}, {"", `1.0`}, {"", `1e16`}, {"", `1E-5`}, {"", `-2.5e-07`}, {"", `1e400`}, {"", `-0.0`},
	{"", `true`}, {"", `false`},
	{"", `null`}, {"", `[1]`}, {"", `{"a":1}`},
	{"none", `"no content type"`}, {"application/vnd.x+json; charset=utf-8", `3.25`}, {"Application/JSON", `true`},
	{"text/plain", `"text"`},
	// Python's own literals (json.dumps writes them for such floats).
	{"", `NaN`}, {"", `Infinity`}, {"", `-Infinity`}, {"", ` NaN `}, {"", `-NaN`}, {"", `NaNx`},
	{"", `nan`}, {"", `- Infinity`}, {"", `"NaN"`}, {"", `[NaN]`}, {"", `{"a":NaN}`},
	{"", `1, "x": NaN`}, {"", `0, NaN: 1`},
}

// FuzzParseBody: any progress value (raw JSON text), Content-Type and BOM
// are read by parseBody as by the tracker (see TestParseBodyLikeTracker).
func FuzzParseBody(f *testing.F) {
	for _, c := range parseBodyCases {
		f.Add(c.ctype, c.value, false)
	}
	for _, b := range parseBodyPairs {
		f.Add("", "body:"+b, false)
	}
	check := likeTracker(f)
	f.Fuzz(func(t *testing.T, ctype, value string, bom bool) {
		switch ctype {
		case "":
			ctype = "application/json"
		case "none":
			ctype = ""
		}
		check(t, ctype, value, bom)
	})
}

// likeTracker registers a worker at a trackertest tracker and returns a
// check that sends it the body {"token": ..., "progress": value} directly
// and compares the tracker's reading with parseBody's.
func likeTracker(tb testing.TB) func(t *testing.T, ctype, value string, bom bool) {
	srv := trackertest.Start(tb, trackertest.Options{Seed: 1})
	resp, err := http.Get(srv.URL + "/api/new?nickname=n&stage=a")
	if err != nil {
		tb.Fatal(err)
	}
	var reg struct{ Token string }
	err = json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()
	if err != nil || reg.Token == "" {
		tb.Fatalf("register: %v", err)
	}
	progress := func(t *testing.T) string {
		for _, w := range srv.Tracker.Workers() {
			if w.Token == reg.Token {
				return w.Progress
			}
		}
		t.Fatal("the worker is gone")
		return ""
	}
	return func(t *testing.T, ctype, value string, bom bool) {
		b := `{"token":"$TOKEN","progress":` + value + `}`
		if v, ok := strings.CutPrefix(value, "body:"); ok {
			b = v // a whole body
		}
		b = strings.ReplaceAll(b, "$TOKEN", reg.Token)
		if bom {
			b = "\ufeff" + b
		}
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/api/updateProgress", strings.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Skipf("the request cannot be sent: %v", err) // a Content-Type net/http refuses
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		// What a server reads of the header: its value without the spaces
		// around it.
		vals, ok := parseBody(strings.Trim(ctype, " \t"), []byte(b), []string{"token", "progress"})
		// The tracker refuses a body it cannot read with 422 or 400; it
		// may read one and still fail to store it (a NUL, a text over 255
		// characters: its database's quirks, docs/PROTOCOL.md).
		refused := resp.StatusCode == http.StatusUnprocessableEntity || resp.StatusCode == http.StatusBadRequest
		switch {
		case !refused && !ok:
			t.Errorf("%s %q: the tracker reads it (%d), parseBody does not", ctype, b, resp.StatusCode)
		case refused && ok:
			t.Errorf("%s %q: the tracker answers %d, parseBody takes it as %q", ctype, b, resp.StatusCode, vals)
		case resp.StatusCode == http.StatusOK && (vals[0] != reg.Token || vals[1] != progress(t)):
			t.Errorf("%s %q: parseBody read %q, the tracker %q", ctype, b, vals, progress(t))
		}
	}
}

// TestParseBodyPairsLikeTracker: a body that is a list of key/value pairs,
// which pydantic turns into the model's dict, is read as the tracker reads
// it; one the tracker refuses is refused.
func TestParseBodyPairsLikeTracker(t *testing.T) {
	check := likeTracker(t)
	for _, body := range parseBodyPairs {
		for _, bom := range []bool{false, true} {
			check(t, "application/json", "body:"+body, bom)
		}
	}
}

// parseBodyPairs are whole bodies ($TOKEN: the worker's token), seeds of
// FuzzParseBody too.
var parseBodyPairs = []string{
	`[["token","$TOKEN"],["progress","half"]]`,
	`[["progress",2.5],["token","$TOKEN"]]`,
	`[["token","$TOKEN"],["progress","a"],["progress","b"]]`, // the last wins
	`[["token","$TOKEN"],["progress",NaN]]`,
	`[["token","$TOKEN"],["progress",-Infinity]]`,
	`[["token","$TOKEN"],["progress",true]]`,
	`[["token","$TOKEN"],[1,"x"],[null,"y"],[true,1],["progress","z"]]`, // keys that name no field
	`[["token","$TOKEN"],[NaN,"x"],["progress","z"]]`,
	`[["token","$TOKEN"],"pq",["progress","z"]]`, // a 2-character string is a pair
	`[["token","$TOKEN"],"p",["progress","z"]]`,
	`[["token","$TOKEN"],"pqr",["progress","z"]]`,
	`[["token","$TOKEN"],"é😀",["progress","z"]]`,
	`[["token","$TOKEN"],NaN,["progress","z"]]`,
	`[["token","$TOKEN"],[[1],"x"],["progress","z"]]`, // a list cannot be a key
	`[["token","$TOKEN"],[{"a":1},"x"],["progress","z"]]`,
	`[["token","$TOKEN"],["progress"]]`,
	`[["token","$TOKEN"],["progress","z","extra"]]`,
	`[["token","$TOKEN"],{"progress":"z"}]`,
	`[["token","$TOKEN"],["progress",null]]`,
	`[["token","$TOKEN"],["progress",["z"]]]`,
	`[["token","$TOKEN"]]`,
	`[]`,
	`[["token","$TOKEN"],["progress","z"]] x`,
}
