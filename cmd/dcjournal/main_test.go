package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/postmortem"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/rogpeppe/go-internal/testscript"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/script from the actual output")

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"dcjournal":     func() { os.Exit(mainExit()) },
		"mkjournal":     mkjournalMain,
		"holdjournal":   holdjournalMain,
		"servesnapshot": servesnapshotMain,
		"expectexit":    expectexitMain,
		"tracker":       trackerMain,
		"trackerctl":    trackerctlMain,
		"crashworker":   crashworkerMain,
		"fleetworker":   fleetworkerMain,
	})
}

// TestScript runs the CLI scenarios of testdata/script/*.txtar against real journals.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		UpdateScripts:       *update,
		Setup: func(env *testscript.Env) error {
			env.Setenv("NO_COLOR", "")
			// Under -race every command would sleep 1 s at exit (the race runtime's
			// default atexit_sleep_ms), and the scripts run some 150 commands.
			env.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"normalize":   cmdNormalize,
			"fingerprint": cmdFingerprint,
			"waitfile":    cmdWaitfile,
			"envfile":     cmdEnvfile,
			"checkjson":   cmdCheckJSON,
			"truncate":    cmdTruncate,
			"globcp":      cmdGlobcp,
		},
	})
}

var (
	reTime     = regexp.MustCompile(`\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?`)
	reDuration = regexp.MustCompile(`\b(\d+d)?(\d+h)?(\d+m)?\d+s\b`)
	reSize     = regexp.MustCompile(`\b\d+(\.\d)? (B|KiB|MiB), (\d+ events)`)
)

// normalize SRC DST: copies SRC (or stdout/stderr) to DST with times, durations and
// the file size replaced by fixed text of the same width, so that columns stay aligned.
func cmdNormalize(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: normalize SRC DST")
	}
	text := ts.ReadFile(args[0])
	text = reTime.ReplaceAllStringFunc(text, func(s string) string {
		out := []byte("YYYY-MM-DD hh:mm:ss.000000000")[:len(s)]
		out[10] = s[10]
		return string(out)
	})
	text = reDuration.ReplaceAllString(text, "Ns")
	text = reSize.ReplaceAllString(text, "SIZE, $3")
	text = strings.ReplaceAll(text, ts.Getenv("WORK"), "$WORK")
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(text), 0o644))
}

// fingerprint save|check FILE: "check" fails if FILE's sha256 or mtime changed since "save".
func cmdFingerprint(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: fingerprint save|check FILE")
	}
	path := ts.MkAbs(args[1])
	data, err := os.ReadFile(path)
	ts.Check(err)
	fi, err := os.Stat(path)
	ts.Check(err)
	sum := sha256.Sum256(data)
	fp := hex.EncodeToString(sum[:]) + " " + fi.ModTime().UTC().Format(time.RFC3339Nano)
	key := "FINGERPRINT_" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, args[1])
	switch args[0] {
	case "save":
		ts.Setenv(key, fp)
	case "check":
		if was := ts.Getenv(key); was != fp {
			ts.Fatalf("%s changed: was %s, now %s", args[1], was, fp)
		}
	default:
		ts.Fatalf("usage: fingerprint save|check FILE")
	}
}

// waitfile FILE: waits up to 10 s for FILE to exist.
func cmdWaitfile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitfile FILE")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(ts.MkAbs(args[0])); err == nil {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s did not appear in 10s", args[0])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// envfile VAR FILE: sets VAR to FILE's content, trimmed.
func cmdEnvfile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: envfile VAR FILE")
	}
	ts.Setenv(args[0], strings.TrimSpace(ts.ReadFile(args[1])))
}

// globcp PATTERN DST: copies the one file matching PATTERN to DST.
func cmdGlobcp(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: globcp PATTERN DST")
	}
	m, err := filepath.Glob(ts.MkAbs(args[0]))
	ts.Check(err)
	if len(m) != 1 {
		ts.Fatalf("%s matches %d files, want 1", args[0], len(m))
	}
	data, err := os.ReadFile(m[0])
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), data, 0o644))
}

// truncate FILE SIZE: cuts FILE to SIZE bytes.
func cmdTruncate(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: truncate FILE SIZE")
	}
	n, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	ts.Check(os.Truncate(ts.MkAbs(args[0]), n))
}

// checkjson summary|index FILE: FILE must decode into the documented shape exactly
// (no unknown field), with schema_version 1 and every required field present.
func cmdCheckJSON(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: checkjson summary|index FILE")
	}
	data := []byte(ts.ReadFile(args[1]))
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var raw map[string]json.RawMessage
	ts.Check(json.Unmarshal(data, &raw))
	var required []string
	switch args[0] {
	case "summary":
		var s postmortem.Summary
		if err := dec.Decode(&s); err != nil {
			ts.Fatalf("%s does not match the schema: %v", args[1], err)
		}
		if s.SchemaVersion != postmortem.SchemaVersion {
			ts.Fatalf("schema_version %d, want %d", s.SchemaVersion, postmortem.SchemaVersion)
		}
		required = []string{"schema_version", "journal", "slots", "orphans"}
		var slots []map[string]json.RawMessage
		ts.Check(json.Unmarshal(raw["slots"], &slots))
		for _, sl := range slots {
			for _, k := range []string{"slot", "session", "flag_pending", "bye_pending"} {
				if _, ok := sl[k]; !ok {
					ts.Fatalf("a slot lacks %q: %s", k, raw["slots"])
				}
			}
		}
	case "index":
		var idx postmortem.ExportIndex
		if err := dec.Decode(&idx); err != nil {
			ts.Fatalf("%s does not match the schema: %v", args[1], err)
		}
		required = []string{"schema_version", "journal", "exported_at", "outputs"}
		for _, o := range idx.Outputs {
			if o.File == "" || o.Slot == "" || o.Kind == "" || o.Outcome == "" || o.Time.IsZero() || o.Seq == 0 {
				ts.Fatalf("an output lacks a required field: %+v", o)
			}
		}
	default:
		ts.Fatalf("usage: checkjson summary|index FILE")
	}
	for _, k := range required {
		if _, ok := raw[k]; !ok {
			ts.Fatalf("%s lacks %q", args[1], k)
		}
	}
}

// holdjournal PATH: opens the journal for writing, as a running worker does, creates
// PATH.ready and holds the lock until killed.
func holdjournalMain() {
	db, err := journal.Open(os.Args[1], &journal.Options{NoSync: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "holdjournal:", err)
		os.Exit(1)
	}
	defer db.Close()
	if err := os.WriteFile(os.Args[1]+".ready", nil, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "holdjournal:", err)
		os.Exit(1)
	}
	waitSignal()
}

// servesnapshot PATH ADDRFILE: holds the journal like a running worker and serves
// GET /journal (journal.WriteSnapshot) as dcworker --status-addr does; writes its
// address to ADDRFILE.
func servesnapshotMain() {
	db, err := journal.Open(os.Args[1], &journal.Options{NoSync: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "servesnapshot:", err)
		os.Exit(1)
	}
	defer db.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "servesnapshot:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /journal", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		db.WriteSnapshot(w)
	})
	go http.Serve(ln, mux)
	tmp := os.Args[2] + ".tmp"
	os.WriteFile(tmp, []byte("http://"+ln.Addr().String()), 0o644)
	os.Rename(tmp, os.Args[2])
	waitSignal()
}

func waitSignal() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM)
	select {
	case <-c:
	case <-time.After(60 * time.Second):
	}
}

// expectexit N dcjournal ARGS...: runs dcjournal ARGS and succeeds if and only if it
// exits with status N (its stdout and stderr are kept for the script to check).
func expectexitMain() {
	if len(os.Args) < 3 || os.Args[2] != "dcjournal" {
		fmt.Fprintln(os.Stderr, "usage: expectexit N dcjournal ARGS...")
		os.Exit(2)
	}
	want, err := strconv.Atoi(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "expectexit:", err)
		os.Exit(2)
	}
	os.Args = os.Args[2:]
	if got := mainExit(); got != want {
		fmt.Fprintf(os.Stderr, "expectexit: dcjournal exited with %d, want %d\n", got, want)
		os.Exit(1)
	}
	os.Exit(0)
}

func TestColorOK(t *testing.T) {
	if colorOK(&bytes.Buffer{}) {
		t.Error("colour for a buffer")
	}
	t.Setenv("NO_COLOR", "1")
	if colorOK(os.Stdout) {
		t.Error("colour with NO_COLOR set")
	}
}

func TestRunUsage(t *testing.T) {
	var out, errb bytes.Buffer
	err := run(t.Context(), []string{"inspect", "--help"}, &out, &errb)
	if code := report(t.Context(), err, &errb); code != exitOK || !strings.Contains(out.String(), "Usage: dcjournal inspect") {
		t.Errorf("inspect --help: code %d, stdout %q", code, out.String())
	}
	err = run(t.Context(), []string{"nope"}, &out, &errb)
	if code := report(t.Context(), err, &errb); code != exitUsage {
		t.Errorf("unknown command: code %d, want %d", code, exitUsage)
	}
}
