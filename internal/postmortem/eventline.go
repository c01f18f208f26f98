package postmortem

import "github.com/distcompute/distcompute-go/journal"

// EventLine says in one line what e records (as the timeline of inspect does), with
// a token cut to its first 8 characters and a tracker password hidden. It is safe
// to show on a page served to others.
func EventLine(e journal.Event) string { return eventDetail(e, false) }
