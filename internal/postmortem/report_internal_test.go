package postmortem

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/distcompute/distcompute-go/journal"
)

// reportJournal writes a journal in which every outcome a bar can have happens once.
func everyOutcomeJournal(t *testing.T) *journal.DB {
	t.Helper()
	db, err := journal.Open(filepath.Join(t.TempDir(), "host1.db"), &journal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	in, out := "input", "output"
	reg := func(slot string) journal.Event {
		return journal.Event{Slot: slot, Kind: journal.KindRegistered, URL: "http://user:hunter2@tracker:8080", Stage: "a",
			Token: "0123456789abcdef-secret", DisplayName: "w" + slot}
	}
	ev := func(slot string, k journal.Kind, job int) journal.Event {
		e := journal.Event{Slot: slot, Kind: k, Job: job}
		switch k {
		case journal.KindClaimed:
			e.Input = &in
		case journal.KindCompletionPending:
			e.Output = &out
		}
		return e
	}
	settle := func(slot string, k journal.Kind, job int, outcome string) journal.Event {
		e := ev(slot, k, job)
		e.Outcome = outcome
		return e
	}
	for _, e := range []journal.Event{
		reg("0"),
		ev("0", journal.KindClaimed, 1),
		{Slot: "0", Kind: journal.KindProgress, Job: 1, Progress: "1/2"},
		{Slot: "0", Kind: journal.KindCheckpoint, Job: 1, Checkpoint: []byte("1")},
		ev("0", journal.KindCompletionPending, 1),
		settle("0", journal.KindCompletionSettled, 1, journal.OutcomeAccepted),
		ev("0", journal.KindClaimed, 2),
		ev("0", journal.KindCompletionPending, 2),
		// The process dies here; the restart's recovery finds the completion applied.
		settle("0", journal.KindCompletionSettled, 2, journal.OutcomeAppliedEarlier),
		{Slot: "0", Kind: journal.KindReplayed, Report: json.RawMessage(`{"slot":"0","applied_earlier":[2]}`)},
		ev("0", journal.KindClaimed, 3),
		ev("0", journal.KindFlagPending, 3),
		settle("0", journal.KindFlagSettled, 3, journal.OutcomeAccepted),
		ev("0", journal.KindClaimed, 4),
		{Slot: "0", Kind: journal.KindFailed, Job: 4, Reason: "exit status 1"},
		{Slot: "0", Kind: journal.KindReleased, Job: 4, Reason: "command failed"},
		ev("0", journal.KindClaimed, 5),
		ev("0", journal.KindClaimed, 6), // releases 5
		ev("0", journal.KindCompletionPending, 6),
		{Slot: "0", Kind: journal.KindSessionLost, Reason: "validateWorker answered False"}, // 6 orphaned
		reg("0"),
		ev("0", journal.KindClaimed, 7), // held at the end

		reg("1"),
		ev("1", journal.KindClaimed, 8),
		{Slot: "1", Kind: journal.KindSessionLost, Reason: "timed out"}, // 8 lost
		reg("1"),
		ev("1", journal.KindClaimed, 10),
		ev("1", journal.KindCompletionPending, 10),
		{Slot: "1", Kind: journal.KindSessionLost, Reason: "timed out"}, // 10 orphaned, never redone
		reg("1"),
		ev("1", journal.KindClaimed, 9),
		ev("1", journal.KindCompletionPending, 9), // pending at the end

		// Another slot redoes job 6: its orphan is no longer worth listing.
		reg("2"),
		ev("2", journal.KindClaimed, 6),
		ev("2", journal.KindCompletionPending, 6),
		settle("2", journal.KindCompletionSettled, 6, journal.OutcomeAccepted),
		{Slot: "2", Kind: journal.KindDrained, Reason: "SIGTERM"},
	} {
		if _, err := db.Append(e); err != nil {
			t.Fatalf("append %v: %v", e.Kind, err)
		}
	}
	return db
}

func TestReportModel(t *testing.T) {
	db := everyOutcomeJournal(t)
	m, err := buildReport([]ReportJournal{{DB: db}}, ReportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]string{}
	for _, j := range m.Jobs {
		row := j.([]any)
		job, outcome := row[4].(int), barOutcomes[row[3].(int)]
		if prev, ok := got[job]; ok {
			got[job] = prev + "," + outcome
		} else {
			got[job] = outcome
		}
	}
	want := map[int]string{1: barAccepted, 2: barAppliedEarlier, 3: barFlagged, 4: barFailed, 5: barReleased,
		6: barOrphaned + "," + barAccepted, 7: barHeld, 8: barLost, 9: barPending, 10: barOrphaned}
	for job, w := range want {
		if got[job] != w {
			t.Errorf("job %d: outcome %q, want %q", job, got[job], w)
		}
	}
	if len(m.Lanes) != 3 || m.Lanes[0].Worker != "w0" || m.Lanes[0].Slot != "0" {
		t.Errorf("lanes = %+v, want 3 in slot order with their workers", m.Lanes)
	}
	if len(m.Orphans) != 1 || m.Orphans[0].Job != 10 {
		t.Errorf("orphans = %+v, want only job 10 (job 6 was completed by slot 2)", m.Orphans)
	}
	var recoveries, gaps int
	for _, mk := range m.Marks {
		if mk[2] == "recovery" {
			recoveries++
			if !strings.Contains(mk[3].(string), "applied earlier 2") {
				t.Errorf("recovery mark %q does not say what it did", mk[3])
			}
		}
	}
	for _, g := range m.Gaps {
		if g[3] == "dead" {
			gaps++
		}
	}
	if recoveries != 1 || gaps != 1 {
		t.Errorf("%d recovery marks and %d dead gaps, want 1 and 1", recoveries, gaps)
	}
	if !strings.Contains(m.Journals[0].Ending, "drained (SIGTERM)") {
		t.Errorf("journal ending %q does not tell the drain", m.Journals[0].Ending)
	}
}

// TestReportPage: the page is self-contained (no URL it would fetch) and holds no
// secret unless asked.
func TestReportPage(t *testing.T) {
	db := everyOutcomeJournal(t)
	var b bytes.Buffer
	st, err := Report(&b, []ReportJournal{{DB: db}}, ReportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if st.Jobs != 11 || st.Lanes != 3 || st.Orphans != 1 {
		t.Errorf("stats = %+v, want 11 jobs, 3 lanes, 1 orphan", st)
	}
	for _, secret := range []string{"0123456789abcdef-secret", "hunter2"} {
		if strings.Contains(page, secret) {
			t.Errorf("the page shows the secret %q", secret)
		}
	}
	if fetch := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?https?:`).FindString(page); fetch != "" {
		t.Errorf("the page fetches something: %q", fetch)
	}
	b.Reset()
	if _, err := Report(&b, []ReportJournal{{DB: db}}, ReportOptions{ShowSecrets: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "0123456789abcdef-secret") {
		t.Error("--show-secrets: the token is not shown")
	}
}

// TestReportHostileText: text from a journal cannot break out of the page's script.
func TestReportHostileText(t *testing.T) {
	db, err := journal.Open(filepath.Join(t.TempDir(), "j.db"), &journal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	in := "x"
	for _, e := range []journal.Event{
		{Slot: "</script><script>alert(1)</script>", Kind: journal.KindRegistered, URL: "http://t", Stage: "a", Token: "t0123456789", DisplayName: "<b>w</b>"},
		{Slot: "</script><script>alert(1)</script>", Kind: journal.KindClaimed, Job: 1, Input: &in},
		{Slot: "</script><script>alert(1)</script>", Kind: journal.KindProgress, Job: 1, Progress: "</script><img src=x onerror=alert(2)>"},
	} {
		if _, err := db.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	if _, err := Report(&b, []ReportJournal{{DB: db}}, ReportOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), "</script>"); n != 1 {
		t.Errorf("%d </script> in the page, want 1 (its own)", n)
	}
	if strings.Contains(b.String(), "<img src=x") {
		t.Error("journal text reached the page unescaped")
	}
}
