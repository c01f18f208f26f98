package crashtest_test

import (
	"fmt"
	"os"
	"testing"
)

// EnvFigures names a file that each run of the crash suite appends its line of
// figures to. A plain "go test ./..." shows nothing of a package that passed (go
// test buffers a package's output in package list mode and prints it only on
// failure or with -v), so .ci/run sets it and prints the file after the tests.
const EnvFigures = "CRASHTEST_FIGURES"

// printFigures reports a run's line of figures: in the test log (go test -v), on
// stdout (shown by "go test" run inside this directory), and appended to
// $CRASHTEST_FIGURES when it is set.
func printFigures(t *testing.T, line string) {
	t.Log(line)
	fmt.Println(line)
	path := os.Getenv(EnvFigures)
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("%s: %v", EnvFigures, err)
		return
	}
	defer f.Close()
	if _, err := fmt.Fprintln(f, line); err != nil {
		t.Errorf("%s: %v", EnvFigures, err)
	}
}
