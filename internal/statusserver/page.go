package statusserver

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"net/http"
	"time"

	"github.com/distcompute/distcompute-go/internal/postmortem"
	"github.com/distcompute/distcompute-go/journal"
)

// pageEvents is how many of the journal's latest events the live page shows.
const pageEvents = 30

//go:embed page.html
var pageHTML []byte

// pageRoutes adds the live page: GET / (HTML that refreshes itself every two
// seconds from GET /page.json). Neither holds a secret: the tracker URL loses its
// password, tokens are cut to 8 characters, and payloads are shown by size only.
func pageRoutes(mux *http.ServeMux, o Options) {
	html := bytes.ReplaceAll(pageHTML, []byte("{{name}}"), []byte(o.Name))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'")
		_, _ = w.Write(html)
	})
	mux.HandleFunc("GET /page.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(newPageState(o))
	})
}

// pageState is what the live page shows.
type pageState struct {
	Name          string           `json:"name"`
	BusyState     string           `json:"busy_state"`
	Tracker       string           `json:"tracker"`
	Stage         string           `json:"stage"`
	Journal       string           `json:"journal"`
	Command       string           `json:"command"`
	Now           time.Time        `json:"now"`
	Draining      bool             `json:"draining"`
	Reach         *Reach           `json:"reach,omitempty"`
	Disk          *JournalStatus   `json:"disk,omitempty"`
	Slots         []pageSlot       `json:"slots"`
	Counters      map[string]int64 `json:"counters"`
	CounterLabels [][2]string      `json:"counter_labels"` // key, label
	Events        []pageEvent      `json:"events"`
	Warning       string           `json:"warning,omitempty"`
}

type pageSlot struct {
	Slot        int     `json:"slot"`
	JournalSlot string  `json:"journal_slot"`
	Worker      string  `json:"worker"`
	State       string  `json:"state"`
	Seconds     float64 `json:"seconds"` // in the current state
	Job         int     `json:"job,omitempty"`
	Progress    string  `json:"progress,omitempty"`
}

type pageEvent struct {
	Time   time.Time `json:"time"`
	Slot   string    `json:"slot"`
	Kind   string    `json:"kind"`
	Job    int       `json:"job,omitempty"`
	Detail string    `json:"detail"`
}

func newPageState(o Options) pageState {
	now := time.Now()
	st := o.Status()
	ps := pageState{
		Name: o.Name, BusyState: o.BusyState, Tracker: st.Tracker, Stage: st.Stage, Journal: st.Journal, Command: o.Command,
		Now: now.UTC(), Draining: st.Draining, Reach: st.Reach, Disk: st.JournalStatus, Counters: st.Counters,
		Slots: []pageSlot{}, CounterLabels: [][2]string{}, Events: []pageEvent{},
	}
	for _, c := range o.Counters {
		if c.Label != "" {
			ps.CounterLabels = append(ps.CounterLabels, [2]string{c.Key, c.Label})
		}
	}
	for _, s := range st.Slots {
		ps.Slots = append(ps.Slots, pageSlot{Slot: s.Slot, JournalSlot: s.JournalSlot, Worker: s.DisplayName, State: s.State,
			Seconds: now.Sub(s.Since).Seconds(), Job: s.Job, Progress: s.Progress})
	}
	if o.DB != nil {
		events, err := recentEvents(o.DB, pageEvents)
		if err != nil {
			ps.Warning = "the journal's latest events could not be read: " + err.Error()
		}
		ps.Events = events
	}
	return ps
}

// recentEvents reads the journal's last n events, newest first.
func recentEvents(db *journal.DB, n int) ([]pageEvent, error) {
	states, err := db.States()
	if err != nil {
		return []pageEvent{}, err
	}
	var last uint64
	for _, st := range states {
		last = max(last, st.LastSeq)
	}
	from := uint64(1)
	if last > uint64(n) {
		from = last - uint64(n) + 1
	}
	var evs []pageEvent
	err = db.Events(journal.Filter{FromSeq: from}, func(ev journal.Event) error {
		evs = append(evs, pageEvent{Time: ev.Time.UTC(), Slot: ev.Slot, Kind: string(ev.Kind), Job: ev.Job, Detail: postmortem.EventLine(ev)})
		return nil
	})
	if len(evs) > n {
		evs = evs[len(evs)-n:]
	}
	for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
		evs[i], evs[j] = evs[j], evs[i]
	}
	if evs == nil {
		evs = []pageEvent{}
	}
	return evs, err
}
