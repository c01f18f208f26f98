package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/distcompute/distcompute-go/internal/term"
	"github.com/distcompute/distcompute-go/trackertest"
)

// errHelp is returned after -h printed the usage: not a failure.
var errHelp = errors.New("help requested")

// usageError is a bad command line (exit code 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// config is the parsed command line.
type config struct {
	addr          string
	project       string
	stages        map[string]string
	jobs          []any
	idleTimeout   time.Duration
	checkInterval time.Duration
	quirks        bool
	seed          int64
	maxBody       int64
	largeBodies   int
	readTimeout   time.Duration
	writeTimeout  time.Duration
	logLevel      slog.Level
}

// parseArgs turns the command line into a config, reading the jobs file if one is named.
func parseArgs(args []string, stdout io.Writer) (config, error) {
	fs := flag.NewFlagSet("dctracker", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		c                      config
		stages, jsonF, txtF, b string
	)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "listen `address` (port 0: any free port)")
	fs.StringVar(&c.project, "project", trackertest.DefaultProject, "project `name`")
	fs.StringVar(&stages, "stages", "CPU", "comma-separated stage `names`, for stages a, b, ... (at most 5)")
	fs.StringVar(&jsonF, "json", "", "jobs from a JSON `file`: a list of strings, lists and objects")
	fs.StringVar(&txtF, "txt", "", "jobs from a text `file`: one job per line, blank lines skipped")
	fs.StringVar(&b, "brace", "", "jobs from a brace-expansion `pattern`, e.g. 'shard-{00..99}.tar'")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", trackertest.DefaultIdleTimeout, "delete workers idle longer than this")
	fs.DurationVar(&c.checkInterval, "check-interval", trackertest.DefaultCheckInterval, "how often idle workers are looked for")
	fs.BoolVar(&c.quirks, "quirks", false, "reproduce the upstream tracker's bugs (stage b+ served null data, failing 5th flag)")
	fs.Int64Var(&c.seed, "seed", 0, "seed for random job picks and worker names (0: time-based)")
	fs.Int64Var(&c.maxBody, "max-body", trackertest.DefaultMaxBodyBytes, "largest request body in `bytes` (larger: 413); the default fits a worker's 16 MiB output with every byte escaped")
	fs.IntVar(&c.largeBodies, "max-large-bodies", trackertest.DefaultMaxLargeBodies, "large request bodies (over 1 MiB) read at once; more are answered 503 (a chunked body may be at most 1 MiB)")
	fs.DurationVar(&c.readTimeout, "read-timeout", trackertest.DefaultReadTimeout, "time allowed to read a request, body included")
	fs.DurationVar(&c.writeTimeout, "write-timeout", trackertest.DefaultWriteTimeout, "time allowed to write an answer")
	quiet := fs.Bool("quiet", false, "log only warnings and errors (not every request); same as --log-level warn")
	level := fs.String("log-level", "info", "`level` of the log on stderr: debug, info (every request), warn or error")
	// The flag package calls Usage on -h and on every bad flag; only -h
	// deserves the full text, a bad flag gets its one-line error.
	fs.Usage = func() {}
	printUsage := func() {
		fmt.Fprintf(stdout, "Usage: dctracker [flags]\n\nServes an in-memory distcompute tracker; prints its URL first.\n\nFlags:\n")
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage()
			return c, errHelp
		}
		return c, usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return c, usagef("unexpected argument %q", fs.Arg(0))
	}
	if err := c.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return c, usagef("--log-level %q: want debug, info, warn or error", *level)
	}
	if *quiet {
		c.logLevel = max(c.logLevel, slog.LevelWarn)
	}
	if c.idleTimeout <= 0 || c.checkInterval <= 0 {
		return c, usagef("--idle-timeout and --check-interval must be positive")
	}
	if c.maxBody <= 0 || c.largeBodies <= 0 || c.readTimeout <= 0 || c.writeTimeout <= 0 {
		return c, usagef("--max-body, --max-large-bodies, --read-timeout and --write-timeout must be positive")
	}
	var err error
	if c.stages, err = parseStages(stages); err != nil {
		return c, err
	}
	set := 0
	for _, v := range []string{jsonF, txtF, b} {
		if v != "" {
			set++
		}
	}
	if set > 1 {
		return c, usagef("use only one of --json, --txt and --brace")
	}
	switch {
	case jsonF != "":
		c.jobs, err = jsonJobs(jsonF)
	case txtF != "":
		c.jobs, err = txtJobs(txtF)
	case b != "":
		var strs []string
		strs, err = braceExpand(b)
		if err != nil {
			return c, usagef("--brace: %v", err)
		}
		for _, s := range strs {
			c.jobs = append(c.jobs, s)
		}
	}
	return c, err
}

func parseStages(s string) (map[string]string, error) {
	names := strings.Split(s, ",")
	if len(names) > 5 {
		return nil, usagef("--stages: %d names, at most 5 (stages a to e)", len(names))
	}
	stages := map[string]string{}
	seen := map[string]bool{}
	for i, n := range names {
		n = strings.TrimSpace(n)
		if n == "" {
			return nil, usagef("--stages %q: empty stage name", s)
		}
		if strings.Contains(n, "/") {
			return nil, usagef("--stages: name %q contains a slash", n)
		}
		if seen[strings.ToLower(n)] {
			return nil, usagef("--stages: name %q used twice", n)
		}
		seen[strings.ToLower(n)] = true
		stages[string(rune('a'+i))] = n
	}
	return stages, nil
}

// jsonJobs reads a JSON list of strings, lists and objects. Lists and objects keep their key
// order (they are stored as the upstream loader stored them).
func jsonJobs(path string) ([]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var items []json.RawMessage
	if err := json.Unmarshal(b, &items); err != nil {
		return nil, fmt.Errorf("--json %s: want a JSON list of strings, lists and objects: %v", path, err)
	}
	jobs := make([]any, len(items))
	for i, it := range items {
		it = bytes.TrimSpace(it)
		switch it[0] {
		case '"':
			var s string
			if err := json.Unmarshal(it, &s); err != nil {
				return nil, fmt.Errorf("--json %s: item %d: %v", path, i+1, err)
			}
			jobs[i] = s
		case '[', '{':
			jobs[i] = it
			if _, err := trackertest.EncodeJob(it); err != nil {
				return nil, fmt.Errorf("--json %s: item %d: %v", path, i+1, err)
			}
		default:
			return nil, fmt.Errorf("--json %s: item %d is %.20s: want a string, a list or an object", path, i+1, it)
		}
	}
	return jobs, nil
}

// txtJobs reads one job per line; blank lines are skipped, line ends dropped.
func txtJobs(path string) ([]any, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var jobs []any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		jobs = append(jobs, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--txt %s: %v", path, err)
	}
	return jobs, nil
}

// newLogger logs to w at level: tint's short lines on a terminal (coloured unless
// NO_COLOR is set), slog's text format otherwise (a file, a pipe).
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	if term.IsTerminal(w) {
		return slog.New(term.Handler(w, level, os.Getenv))
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// run is dctracker: it serves until ctx is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseArgs(args, stdout)
	if err != nil {
		return err
	}
	log := newLogger(stderr, c.logLevel)
	t := trackertest.New(trackertest.Options{
		Project:       c.project,
		Stages:        c.stages,
		Jobs:          c.jobs,
		IdleTimeout:   c.idleTimeout,
		CheckInterval: c.checkInterval,
		Quirks:        c.quirks,
		Logger:        log,
		Seed:          c.seed,

		MaxBodyBytes:   c.maxBody,
		MaxLargeBodies: c.largeBodies,
		ReadTimeout:    c.readTimeout,
		WriteTimeout:   c.writeTimeout,
	})
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	url := "http://" + ln.Addr().String()
	if _, err := fmt.Fprintln(stdout, url); err != nil {
		ln.Close()
		return err
	}
	log.Info("serving", "url", url, "project", c.project, "stages", strings.Join(stageList(c.stages), ","),
		"jobs", len(c.jobs), "quirks", c.quirks)
	if err := trackertest.Serve(ctx, ln, t); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

func stageList(stages map[string]string) []string {
	var out []string
	for l := 'a'; l <= 'e'; l++ {
		if n, ok := stages[string(l)]; ok {
			out = append(out, string(l)+"="+n)
		}
	}
	return out
}
