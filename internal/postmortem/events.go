package postmortem

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/distcompute/distcompute-go/journal"
)

// eventSummary turns e into its display form; withPayload keeps the full input and
// output (job histories).
func eventSummary(e journal.Event, showSecrets, withPayload bool) EventSummary {
	es := EventSummary{
		Seq: e.Seq, Time: timePtr(e.Time), Slot: e.Slot, Kind: string(e.Kind), Job: e.Job,
		Detail: eventDetail(e, showSecrets),
	}
	if withPayload {
		if e.Input != nil {
			in := *e.Input
			es.Input = &in
		}
		if e.Output != nil {
			out := *e.Output
			es.Output = &out
		}
	}
	return es
}

// eventDetail says in one line what an event records.
func eventDetail(e journal.Event, showSecrets bool) string {
	var parts []string
	add := func(format string, args ...any) { parts = append(parts, fmt.Sprintf(format, args...)) }
	switch e.Kind {
	case journal.KindRegistered:
		add("worker %s", orDash(e.DisplayName))
		if e.Nickname != "" {
			add("nickname %s", e.Nickname)
		}
		add("stage %s", stageLabel(e.Stage, e.StageName))
		if e.Project != "" {
			add("project %s", e.Project)
		}
		if e.URL != "" {
			add("tracker %s", redactURL(e.URL, showSecrets))
		}
		if e.Token != "" {
			add("token %s", redactToken(e.Token, showSecrets))
		}
	case journal.KindClaimed:
		add("input %s", payloadSize(e.Input))
	case journal.KindProgress:
		add("%q", e.Progress)
	case journal.KindCheckpoint:
		add("%s", byteSize(len(e.Checkpoint)))
	case journal.KindCompletionPending:
		add("output %s", payloadSize(e.Output))
	case journal.KindCompletionSettled, journal.KindFlagSettled:
		add("%s", orDash(e.Outcome))
	case journal.KindOrphanResolved:
		add("orphan seq %d %s", e.OrphanSeq, orDash(e.Outcome))
	case journal.KindReplayed:
		add("%s", reportLine(e.Report))
	}
	if e.Reason != "" {
		add("reason: %s", e.Reason)
	}
	return strings.Join(parts, ", ")
}

// reportLine sums up a recovery report (a replay.Report as JSON) in one line: every
// non-empty field, in the order of the report. It decodes generically so that a
// journal written by another version still reads.
func reportLine(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "empty report"
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	var parts []string
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return string(raw)
	}
	for dec.More() {
		ktok, err := dec.Token()
		if err != nil {
			return string(raw)
		}
		key, _ := ktok.(string)
		key = strings.ReplaceAll(key, "_", " ") // "applied_earlier" reads "applied earlier"
		var v any
		if err := dec.Decode(&v); err != nil {
			return string(raw)
		}
		switch v := v.(type) {
		case nil:
		case bool:
			if v {
				parts = append(parts, key)
			}
		case string:
			if v != "" && !strings.EqualFold(key, "slot") {
				parts = append(parts, key+" "+v)
			}
		case float64:
			if v != 0 {
				parts = append(parts, fmt.Sprintf("%s %v", key, v))
			}
		case []any:
			if len(v) > 0 {
				var items []string
				for _, it := range v {
					items = append(items, fmt.Sprint(it))
				}
				parts = append(parts, key+" "+strings.Join(items, " "))
			}
		default:
			b, _ := json.Marshal(v)
			parts = append(parts, key+" "+string(b))
		}
	}
	if len(parts) == 0 {
		return "nothing to do"
	}
	return strings.Join(parts, "; ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func stageLabel(stage, name string) string {
	switch {
	case stage == "":
		return "-"
	case name == "":
		return stage
	default:
		return stage + " (" + name + ")"
	}
}

func payloadSize(wire *string) string {
	k := wireKind(wire)
	if k == "null" {
		return "null"
	}
	return k + ", " + byteSize(len(payloadText(wire)))
}

func byteSize(n int) string { return ByteSize(int64(n)) }

// ByteSize is n bytes as the tools print a size: "512 B", "3.5 KiB", "12.0 MiB".
func ByteSize(n int64) string {
	switch {
	case n < 1024:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/1024)
	default:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return lessSlot(keys[i], keys[j]) })
	return keys
}
