package worker

import (
	_ "embed"
	"encoding/json"
	"net/http"
	"net/url"
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
func (e *engine) pageRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'")
		_, _ = w.Write(pageHTML)
	})
	mux.HandleFunc("GET /page.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(e.pageState())
	})
}

// pageState is what the live page shows.
type pageState struct {
	Tracker  string           `json:"tracker"`
	Stage    string           `json:"stage"`
	Journal  string           `json:"journal"`
	Command  string           `json:"command"`
	Now      time.Time        `json:"now"`
	Draining bool             `json:"draining"`
	Reach    Reach            `json:"reach"`
	Disk     JournalStatus    `json:"disk"`
	Slots    []pageSlot       `json:"slots"`
	Counters map[string]int64 `json:"counters"`
	Events   []pageEvent      `json:"events"`
	Warning  string           `json:"warning,omitempty"`
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

func (e *engine) slotList() []*slotState { return e.slots }

func (e *engine) pageState() pageState {
	now := time.Now()
	ps := pageState{
		Tracker: redactedURL(e.cfg.TrackerURL), Stage: e.cfg.Stage, Journal: e.cfg.Journal, Now: now.UTC(),
		Draining: e.isDraining(), Reach: e.reach.snapshot(), Disk: e.disk.snapshot(), Counters: e.counters(),
		Slots: []pageSlot{}, Events: []pageEvent{},
	}
	if len(e.cfg.Command) > 0 {
		ps.Command = e.cfg.Command[0]
	}
	for i, s := range e.slotList() {
		s.mu.Lock()
		ps.Slots = append(ps.Slots, pageSlot{Slot: s.index, JournalSlot: e.clients[i].Slot(), Worker: s.name, State: s.state,
			Seconds: now.Sub(s.since).Seconds(), Job: s.job, Progress: s.progress})
		s.mu.Unlock()
	}
	events, err := e.recentEvents(pageEvents)
	if err != nil {
		ps.Warning = "the journal's latest events could not be read: " + err.Error()
	}
	ps.Events = events
	return ps
}

// recentEvents reads the journal's last n events, newest first.
func (e *engine) recentEvents(n int) ([]pageEvent, error) {
	states, err := e.db.States()
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
	err = e.db.Events(journal.Filter{FromSeq: from}, func(ev journal.Event) error {
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

// redactedURL hides a password in the tracker URL.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
