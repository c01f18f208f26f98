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
	srv := trackertest.Start(t, trackertest.Options{Seed: 1})
	resp, err := http.Get(srv.URL + "/api/new?nickname=n&stage=a")
	if err != nil {
		t.Fatal(err)
	}
	var reg struct{ Token string }
	err = json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()
	if err != nil || reg.Token == "" {
		t.Fatalf("register: %v", err)
	}
	progress := func() string {
		for _, w := range srv.Tracker.Workers() {
			if w.Token == reg.Token {
				return w.Progress
			}
		}
		t.Fatal("the worker is gone")
		return ""
	}
	json := "application/json"
	for _, c := range []struct{ ctype, value string }{
		{json, `"half done"`}, {json, `"é\u00e9\ud83d\ude00"`}, {json, `""`}, {json, `"\ud800"`},
		{json, `7`}, {json, `-0`}, {json, `123456789012345678901234567890`},
		{json, `0.5`}, {json, `1.0`}, {json, `1e16`}, {json, `1E-5`}, {json, `-2.5e-07`}, {json, `1e400`}, {json, `-0.0`},
		{json, `true`}, {json, `false`},
		{json, `null`}, {json, `[1]`}, {json, `{"a":1}`},
		{"", `"no content type"`}, {"application/vnd.x+json; charset=utf-8", `3.25`}, {"Application/JSON", `true`},
		{"text/plain", `"text"`},
	} {
		body := `{"token":"` + reg.Token + `","progress":` + c.value + `}`
		for _, b := range []string{body, "\ufeff" + body} {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/updateProgress", strings.NewReader(b))
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			vals, ok := parseBody(c.ctype, []byte(b), []string{"token", "progress"})
			switch {
			case resp.StatusCode == http.StatusOK && !ok:
				t.Errorf("%s %q: the tracker takes it (progress %q), parseBody does not", c.ctype, b, progress())
			case resp.StatusCode == http.StatusOK && (vals[0] != reg.Token || vals[1] != progress()):
				t.Errorf("%s %q: parseBody read %q, the tracker %q", c.ctype, b, vals, progress())
			case resp.StatusCode != http.StatusOK && ok:
				t.Errorf("%s %q: the tracker answers %d, parseBody takes it as %q", c.ctype, b, resp.StatusCode, vals)
			}
		}
	}
}
