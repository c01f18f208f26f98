package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The expected expansions were checked against the Python braceexpand package (0.1.7), which
// the upstream tracker's loader uses.
func TestBraceExpand(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		want    string // joined by spaces; "ERR" for an error
	}{
		{"shard-{00..03}.tar", "shard-00.tar shard-01.tar shard-02.tar shard-03.tar"},
		{"{1,2}", "1 2"},
		{"{1}", "{1}"},
		{"{}", "{}"},
		{"{1,2{}}", "1 2{}"},
		{"}{", "}{"},
		{"a{b,c}d{e,f}", "abde abdf acde acdf"},
		{"a{b,c{d,e,}}", "ab acd ace ac"},
		{"a{b,{c,{d,e}}}", "ab ac ad ae"},
		{"{{a,b},{c,d}}", "a b c d"},
		{"{7..10}", "7 8 9 10"},
		{"{10..7}", "10 9 8 7"},
		{"{1..5..2}", "1 3 5"},
		{"{5..1..2}", "5 3 1"},
		{"{1..4..0}", "1 2 3 4"},
		{"{07..10}", "07 08 09 10"},
		{"{7..010}", "007 008 009 010"},
		{"{2..-1}", "2 1 0 -1"},
		{"{-01..1}", "-01 000 001"},
		{"{0..2}", "0 1 2"},
		{"{a..e}", "a b c d e"},
		{"{a..e..2}", "a c e"},
		{"{e..a}", "e d c b a"},
		{"{e..a..2}", "e c a"},
		{"{Z..a}", "Z a"},
		{"{a..Z}", "a Z"},
		{"{1..a}", "{1..a}"},
		{"{1..1}", "1"},
		{"{,}", " "},
		{"python{2.{5..7},3.{2,3}}", "python2.5 python2.6 python2.7 python3.2 python3.3"},
		{`\{1,2}`, "ERR"}, // the escape hides the "{", so the "}" is unbalanced (braceexpand 0.1.7)
		{`{a\}b,c}`, "a}b c"},
		{`a\`, `a\`},
		{"{a..A}", "a Z Y X W V U T S R Q P O N M L K J I H G F E D C B A"},
		{"{A..a..5}", "A F K P U Z"},
		{`{1\,2}`, "{1,2}"},
		{`\}{1,2}`, "}1 }2"},
		{`{\,1,2}`, ",1 2"},
		{`{1\\{2,3}`, "ERR"},
		{`\\{1,2}`, `\1 \2`},
		{`{1..2}é`, "1é 2é"},
		{"{{1,2}", "ERR"},
		{"{1,2}}", "ERR"},
		{"{1,2}{", "ERR"},
		{"{1{2,3}", "ERR"},
		{"{0..99999999}", "ERR"},
		{"no braces", "no braces"},
	} {
		got, err := braceExpand(tc.pattern)
		s := strings.Join(got, " ")
		if err != nil {
			s = "ERR"
		}
		if s != tc.want {
			t.Errorf("braceExpand(%q) = %q (err %v), want %q", tc.pattern, s, err, tc.want)
		}
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBadArguments(t *testing.T) {
	notList := writeFile(t, "obj.json", `{"a":1}`)
	number := writeFile(t, "num.json", `["ok", 3]`)
	broken := writeFile(t, "broken.json", `["ok",`)
	good := writeFile(t, "good.json", `["ok"]`)
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown flag", []string{"--nope"}, exitUsage, "flag provided but not defined: -nope"},
		{"extra argument", []string{"serve"}, exitUsage, `unexpected argument "serve"`},
		{"too many stages", []string{"--stages", "a,b,c,d,e,f"}, exitUsage, "at most 5"},
		{"empty stage", []string{"--stages", "CPU,,GPU"}, exitUsage, "empty stage name"},
		{"duplicate stage", []string{"--stages", "CPU,cpu"}, exitUsage, "used twice"},
		{"two sources", []string{"--json", good, "--brace", "x{1,2}"}, exitUsage, "only one of"},
		{"bad brace", []string{"--brace", "x{1,2"}, exitUsage, "unbalanced braces"},
		{"bad duration", []string{"--idle-timeout", "soon"}, exitUsage, "invalid value"},
		{"zero interval", []string{"--check-interval", "0s"}, exitUsage, "must be positive"},
		{"missing file", []string{"--json", "/nonexistent/jobs.json"}, exitFailed, "no such file"},
		{"missing txt", []string{"--txt", "/nonexistent/jobs.txt"}, exitFailed, "no such file"},
		{"not a list", []string{"--json", notList}, exitFailed, "want a JSON list"},
		{"number item", []string{"--json", number}, exitFailed, "item 2 is 3"},
		{"broken json", []string{"--json", broken}, exitFailed, "want a JSON list"},
		{"bad address", []string{"--addr", "256.0.0.1:0", "--json", good}, exitFailed, "256.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tc.args, &stdout, &stderr)
			code := exitCode(err, &stderr)
			msg := stderr.String()
			if code != tc.code || !strings.Contains(msg, tc.msg) || strings.Count(msg, "\n") != 1 {
				t.Fatalf("exit %d, stderr %q; want exit %d and one line with %q", code, msg, tc.code, tc.msg)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-h"}, &stdout, &stderr)
	if exitCode(err, &stderr) != exitOK || !strings.Contains(stdout.String(), "--brace") && !strings.Contains(stdout.String(), "-brace") {
		t.Fatalf("help: err %v, stdout %q", err, stdout.String())
	}
}

// startRun runs dctracker in-process and returns its URL and a function that stops it and
// returns run's error.
func startRun(t *testing.T, args ...string) (string, *bytes.Buffer, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"--addr", "127.0.0.1:0"}, args...), pw, &stderr)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("no URL line: %v (run: %v)", err, <-done)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(10 * time.Second):
				runErr = fmt.Errorf("run did not return after cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return strings.TrimSpace(line), &stderr, stop
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, b)
}

func TestRunServes(t *testing.T) {
	jobs := writeFile(t, "jobs.txt", "first\n\n  \nsecond\r\nthird")
	url, stderr, stop := startRun(t, "--project", "Demo", "--stages", "CPU,GPU", "--txt", jobs, "--seed", "7")
	if !strings.HasPrefix(url, "http://127.0.0.1:") || strings.HasSuffix(url, ":0") {
		t.Fatalf("URL line %q", url)
	}
	if got := get(t, url+"/api/jobCount?stage=a"); got != "200 3" {
		t.Fatalf("jobCount a: %s", got)
	}
	if got := get(t, url+"/api/new?nickname=n&stage=b"); !strings.Contains(got, `"project":"Demo","stage_name":"GPU"`) {
		t.Fatalf("register: %s", got)
	}
	if got := get(t, url+"/api/new?nickname=n&stage=c"); got != "400 The worker stage 'c' is disabled." {
		t.Fatalf("register at c: %s", got)
	}
	if err := stop(); err != nil {
		t.Fatalf("run after cancel: %v", err)
	}
	logs := stderr.String()
	if !strings.Contains(logs, "path=/api/jobCount") || !strings.Contains(logs, "status=200") || !strings.Contains(logs, "msg=stopped") {
		t.Errorf("logs do not show the requests and the stop:\n%s", logs)
	}
}

func TestRunJobSources(t *testing.T) {
	jsonFile := writeFile(t, "jobs.json", `["plain", {"z": 1, "a": "é"}, [1, 2.50]]`)
	for _, tc := range []struct {
		name string
		args []string
		want []string // data served for jobs 1..n (claimed in turn by one worker)
	}{
		{"json", []string{"--json", jsonFile}, []string{`"plain"`, `"<!json!>{\"z\": 1, \"a\": \"\\u00e9\"}"`, `"<!json!>[1, 2.5]"`}},
		{"brace", []string{"--brace", "s-{08..10}"}, []string{`"s-08"`, `"s-09"`, `"s-10"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, _, _ := startRun(t, tc.args...)
			if got := get(t, url+"/api/jobCount?stage=a"); got != fmt.Sprintf("200 %d", len(tc.want)) {
				t.Fatalf("jobCount: %s", got)
			}
			// Claim every job with its own worker and collect the data by number.
			byNumber := map[int]string{}
			for range tc.want {
				reg := get(t, url+"/api/new?nickname=n&stage=a")
				tok := reg[strings.Index(reg, `"token":"`)+9:]
				tok = tok[:strings.Index(tok, `"`)]
				resp, err := http.Post(url+"/api/newJob", "application/json", strings.NewReader(`{"token":"`+tok+`"}`))
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var n int
				s := string(b)
				fmt.Sscanf(s[strings.LastIndex(s, `"number":`)+9:], "%d", &n)
				byNumber[n] = s[len(`{"data":`):strings.LastIndex(s, `,"number"`)]
			}
			for i, w := range tc.want {
				if byNumber[i+1] != w {
					t.Errorf("job %d served %s, want %s", i+1, byNumber[i+1], w)
				}
			}
		})
	}
}

// TestQuiet: --quiet (and --log-level warn) leave the requests out of the log; a bad
// level is a usage error.
func TestQuiet(t *testing.T) {
	for _, args := range [][]string{{"--quiet"}, {"--log-level", "warn"}} {
		url, stderr, stop := startRun(t, args...)
		if got := get(t, url+"/api/jobCount?stage=a"); got != "200 0" {
			t.Fatalf("jobCount: %s", got)
		}
		if got := get(t, url+"/"); !strings.HasPrefix(got, "200 <!DOCTYPE html>") {
			t.Fatalf("GET /: %.60s", got)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if logs := stderr.String(); logs != "" {
			t.Errorf("%v: the log is not empty:\n%s", args, logs)
		}
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"--log-level", "loud"}, &stdout, &stderr)
	if code := exitCode(err, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "--log-level") {
		t.Errorf("--log-level loud: exit %d, %q; want a usage error", code, stderr.String())
	}
}
