package postmortem_test

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/distcompute/distcompute-go/internal/postmortem"
)

// TestJSONSchemaStable guards the documented JSON shape of schema_version 1: every
// field of a fully populated Summary, by path. Adding a field means adding it here and
// in the documentation; renaming or removing one means a new schema_version.
func TestJSONSchemaStable(t *testing.T) {
	now := time.Date(2026, 11, 26, 3, 12, 9, 0, time.UTC)
	in, out := "<!json!>{}", "x"
	s := postmortem.Summary{
		SchemaVersion: postmortem.SchemaVersion,
		Journal:       postmortem.JournalSummary{Path: "p", SizeBytes: 1, Events: 1, FirstSeq: 1, LastSeq: 1, FirstEvent: &now, LastEvent: &now},
		Slots: []postmortem.SlotSummary{{
			Slot: "0", Session: "open", Worker: "w", Nickname: "n", Token: "t", Tracker: "u", Stage: "a", StageName: "CPU",
			Project: "p", Registered: &now, LostReason: "r",
			Job:      &postmortem.JobSummary{Number: 1, Stage: "a", Since: &now, InputKind: "json", InputBytes: 1, CheckpointBytes: 1, CheckpointTime: &now},
			Progress: "p", ProgressTime: &now,
			CompletionPending: &postmortem.CompletionSummary{Job: 1, Stage: "a", Since: &now, OutputKind: "text", OutputBytes: 1, Seq: 1},
			FlagPending:       true, ByePending: true, LastSeq: 1, LastEvent: &now,
			LastReport: &postmortem.ReportSummary{Time: &now, Report: json.RawMessage(`{}`)},
			Refused:    []postmortem.RefusedSummary{{Job: 4, Time: &now, Action: postmortem.RefusedFlagged, Reason: "r"}},
			Drained:    &postmortem.DrainSummary{Time: &now, Reason: "SIGTERM"},
		}},
		Orphans:  []postmortem.OrphanSummary{{Seq: 1, Slot: "0", Stage: "a", Job: 1, Time: &now, Reason: "r", OutputKind: "text", OutputBytes: 1}},
		Events:   []postmortem.EventSummary{{Seq: 1, Time: &now, Slot: "0", Kind: "claimed", Job: 1, Detail: "d", Input: &in, Output: &out}},
		Warnings: []string{"w"},
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	got := paths("", v)
	want := strings.Fields(`
		schema_version
		journal journal.path journal.size_bytes journal.events journal.first_seq journal.last_seq journal.first_event journal.last_event
		slots slots[].slot slots[].session slots[].worker slots[].nickname slots[].token slots[].tracker slots[].stage
		slots[].stage_name slots[].project slots[].registered slots[].lost_reason
		slots[].job slots[].job.number slots[].job.stage slots[].job.since slots[].job.input_kind slots[].job.input_bytes
		slots[].job.checkpoint_bytes slots[].job.checkpoint_time
		slots[].progress slots[].progress_time
		slots[].completion_pending slots[].completion_pending.job slots[].completion_pending.stage slots[].completion_pending.since
		slots[].completion_pending.output_kind slots[].completion_pending.output_bytes slots[].completion_pending.seq
		slots[].flag_pending slots[].bye_pending slots[].last_seq slots[].last_event
		slots[].last_report slots[].last_report.time slots[].last_report.report
		slots[].refused slots[].refused[].job slots[].refused[].time slots[].refused[].action slots[].refused[].reason
		slots[].drained slots[].drained.time slots[].drained.reason
		orphans orphans[].seq orphans[].slot orphans[].stage orphans[].job orphans[].time orphans[].reason orphans[].output_kind orphans[].output_bytes
		events events[].seq events[].time events[].slot events[].kind events[].job events[].detail events[].input events[].output
		warnings`)
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("JSON paths changed:\n got %v\nwant %v", got, want)
	}
}

func paths(prefix string, v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			out = append(out, p)
			if k != "report" { // recovery's own shape, not ours
				out = append(out, paths(p, x)...)
			}
		}
	case []any:
		for _, x := range v {
			out = append(out, paths(prefix+"[]", x)...)
		}
	}
	sort.Strings(out)
	return out
}
