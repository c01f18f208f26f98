// Package postmortem reads a distcompute journal after the worker that wrote it has
// stopped, and tells an operator what the worker was doing, what was lost and what
// still has to reach the tracker. It holds the logic behind the dcjournal command:
// [Inspect] renders the summary (for people, or as JSON for scripts), [Timeline] and
// [JobHistory] list events, [Export] writes outputs to files, [Verify] reports
// problems, and [PrintReplay] renders what recovery did.
//
// Everything here reads a *journal.DB the caller opened; only [Ack] writes (it records
// exported orphans as resolved), so a journal opened with journal.Options.ReadOnly is
// left byte for byte unchanged by every other function.
//
// # JSON schema (schema_version 1)
//
// [Inspect] with InspectOptions.JSON writes one JSON object, the [Summary] type. Fields
// are only ever added within a schema version; a removed or renamed field bumps
// schema_version (TestJSONSchemaStable guards this). Times are RFC 3339 in UTC;
// absent times, empty strings and absent objects are omitted. With
// InspectOptions.Slot or Job, "slots" and "orphans" hold only what concerns that slot
// or job. [Export] writes index.json, the [ExportIndex] type, of the same
// schema_version.
//
//	{
//	  "schema_version": 1,
//	  "journal": {
//	    "path": "/mnt/vol/journal.db", "size_bytes": 65536,
//	    "events": 57, "first_seq": 1, "last_seq": 57,
//	    "first_event": "2026-11-26T02:10:00Z",
//	    "last_event": "2026-11-26T03:12:09Z"   // when the worker last wrote: it stopped after this
//	  },
//	  "slots": [{
//	    "slot": "0",
//	    "session": "open" | "closed" | "lost" | "none" | "unknown",   // unknown: damaged history
//	    "worker": "blue-fox-17", "nickname": "spot-3", "token": "1f2e3d4c…",   // token redacted unless --show-secrets
//	    "tracker": "http://tracker:8080", "stage": "a", "stage_name": "CPU", "project": "laion",
//	    "registered": "2026-11-26T02:10:00Z",
//	    "lost_reason": "...",                     // session "lost" only
//	    "job": {                                   // the job held, absent if none
//	      "number": 42, "stage": "a", "since": "...",
//	      "input_kind": "json" | "text" | "null", "input_bytes": 123,
//	      "checkpoint_bytes": 16, "checkpoint_time": "..."
//	    },
//	    "progress": "resizing 8/10", "progress_time": "...",
//	    "completion_pending": {"job": 41, "stage": "a", "since": "...", "output_kind": "json", "output_bytes": 512, "seq": 40},
//	    "flag_pending": false, "bye_pending": false,
//	    "last_seq": 57, "last_event": "...",
//	    "last_report": {"time": "...", "report": { ... }},  // the last "replayed" event, as written by recovery
//	    "refused": [{"job": 4, "time": "...", "action": "flagged" | "released", "reason": "..."}],
//	                                               // jobs refused at a claim (undecodable, over the size limit)
//	    "drained": {"time": "...", "reason": "SIGTERM"}     // the slot's last life ended with a drain (a clean stop)
//	  }],
//	  "orphans": [{                                  // orphaned outputs not yet resolved
//	    "seq": 33, "slot": "0", "stage": "a", "job": 40, "time": "...", "reason": "...",
//	    "output_kind": "json", "output_bytes": 77
//	  }],
//	  "events": [{                                   // only with InspectOptions.Timeline or Job
//	    "seq": 1, "time": "...", "slot": "0", "kind": "registered", "job": 0,
//	    "detail": "one line for people",
//	    "input": "...", "output": "..."           // wire text (JSON prefixed by <!json!>), only with Job
//	  }],
//	  "warnings": ["..."]                          // only for a damaged journal: what could not be read
//	}
package postmortem
