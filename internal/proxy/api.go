package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/distcompute/distcompute-go/client"
	"github.com/distcompute/distcompute-go/journal"
	"github.com/distcompute/distcompute-go/session"
)

// maxBody bounds what the proxy reads of a request body (the tracker's limit).
const maxBody = 16 << 20

// handler routes the local server: /api/<call> and /p/<i>/api/<call> (a
// program copy's URL); every other path is passed through to the tracker.
func (p *Proxy) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path, prog := r.URL.Path, -1
		if rest, ok := strings.CutPrefix(path, "/p/"); ok {
			num, tail, _ := strings.Cut(rest, "/")
			if i, err := strconv.Atoi(num); err == nil && i >= 0 {
				path, prog = "/"+tail, i
			}
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
		if err != nil {
			return // the program hung up
		}
		switch {
		case path == "/api/new" && r.Method == http.MethodGet:
			p.register(w, r, path, body, prog)
		case path == "/api/jobCount" && r.Method == http.MethodGet:
			p.jobCount(w, r, path, body)
		case r.Method == http.MethodPost && isTokenCall(path):
			p.tokenCall(w, r, path, body)
		default:
			p.m.passedThrough.Add(1)
			p.forward(w, r, path, body, false)
		}
	})
}

func isTokenCall(path string) bool {
	switch path {
	case "/api/newJob", "/api/completeJob", "/api/updateProgress", "/api/validateWorker", "/api/flagInvalidData", "/api/bye":
		return true
	}
	return false
}

// register is GET /api/new: a new local worker (or, with Command, the
// dead worker of the same stage that this program takes over). Requests the
// tracker would refuse are passed through for its exact answer.
func (p *Proxy) register(w http.ResponseWriter, r *http.Request, path string, body []byte, prog int) {
	q := r.URL.Query()
	nick, okN := q["nickname"]
	stage, okS := q["stage"]
	if !okN || !okS || len(stage) == 0 || len(nick) == 0 || !validStage(stage[len(stage)-1]) ||
		len([]rune(nick[len(nick)-1])) > session.MaxNicknameLen || strings.ContainsRune(nick[len(nick)-1], 0) {
		p.forward(w, r, path, body, true)
		return
	}
	nickname, st := nick[len(nick)-1], stage[len(stage)-1]
	if l := p.adopt(st, prog); l != nil {
		d, pr, sn := l.c.names()
		writeJSON(w, http.StatusOK, registerBody(l.token, d, pr, sn))
		return
	}
	p.mu.Lock()
	slot := SlotPrefix + strconv.Itoa(p.nextSlot)
	p.nextSlot++
	p.mu.Unlock()
	var c slotClient
	err := p.retry(r.Context(), slot, "", func(ctx context.Context) error {
		var err error
		c, err = p.openSlot(ctx, slot, st, nickname)
		return err
	})
	switch {
	case errors.Is(err, client.ErrStageDisabled):
		writeText(w, http.StatusBadRequest, fmt.Sprintf("The worker stage '%s' is disabled.", st))
		return
	case err != nil:
		p.log.Warn("registering a local worker failed", "slot", slot, "err", err)
		p.answerError(w, r, err)
		return
	}
	l := &local{slotName: slot, stage: st, nickname: nickname, c: c, prog: prog}
	if len(p.cfg.Command) > 0 {
		l.token = randomToken()
	} else {
		l.token = slotToken(p.key, slot)
	}
	l.touch()
	p.mu.Lock()
	p.workers[l.token] = l
	p.bySlot[slot] = l
	p.mu.Unlock()
	p.m.registered.Add(1)
	d, pr, sn := c.names()
	p.log.Info("local worker registered", "slot", slot, "stage", st, "display_name", d, "program", prog)
	writeJSON(w, http.StatusOK, registerBody(l.token, d, pr, sn))
}

func validStage(s string) bool { return len(s) == 1 && s[0] >= 'a' && s[0] <= 'e' }

// adopt hands a dead program's worker at stage (preferably one holding a
// job) to the program registering, under a new local token.
func (p *Proxy) adopt(stage string, prog int) *local {
	if len(p.cfg.Command) == 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var pick *local
	for _, l := range p.bySlot {
		if !l.dead || l.stage != stage {
			continue
		}
		n, _, held := l.c.job()
		if held && p.poison[jobKey{stage, n}] {
			continue // being released
		}
		if held {
			if pick == nil || pick.slotName > l.slotName {
				pick = l
			}
		} else if pick == nil {
			pick = l
		}
	}
	if pick == nil {
		return nil
	}
	delete(p.workers, pick.token)
	pick.token, pick.dead, pick.prog, pick.delivered, pick.last, pick.ahead = randomToken(), false, prog, 0, lastAction{}, false
	pick.touch()
	p.workers[pick.token] = pick
	p.m.adopted.Add(1)
	n, _, held := pick.c.job()
	p.log.Info("a dead program's worker taken over", "slot", pick.slotName, "stage", stage, "job", n, "held", held, "program", prog)
	return pick
}

// jobCount is GET /api/jobCount, passed through (retried: it changes
// nothing), plus the jobs dead programs hold at that stage, which the next
// newJob there gets, plus the job claimed ahead for the asking program, if
// any (it would be open at the tracker had the proxy not claimed it yet).
// A count above zero asked by a program that has just completed (or
// flagged) a job starts the claim of its next job (see claimAhead), after
// the tracker's count was taken.
func (p *Proxy) jobCount(w http.ResponseWriter, r *http.Request, path string, body []byte) {
	asker := askerOf(r)
	if asker != nil {
		// A claim ahead of this program's in flight: the tracker's count
		// and the job claimed ahead are taken once it ended.
		p.mu.Lock()
		ahead := asker.aheadRun
		p.mu.Unlock()
		if ahead != nil {
			select {
			case <-ahead:
			case <-r.Context().Done():
				hangUp(w)
				return
			}
		}
	}
	status, hdr, out, err := p.roundTrip(r, path, body, true)
	if err != nil {
		hangUp(w) // the program hung up
		return
	}
	if status != http.StatusOK {
		relay(w, status, hdr, out)
		return
	}
	n, err := strconv.Atoi(string(out))
	if err != nil {
		relay(w, status, hdr, out)
		return
	}
	stage := r.URL.Query().Get("stage")
	extra := p.heldFor(stage, asker)
	if asker != nil && asker.stage == stage && n+extra > 0 {
		p.claimAhead(asker)
	}
	if extra == 0 {
		relay(w, status, hdr, out)
		return
	}
	writeText(w, status, strconv.Itoa(n+extra))
}

// heldFor counts the jobs held at stage that the tracker's count misses
// and that a newJob of asker (nil: unknown) can get: those of dead
// programs' workers, and asker's job claimed ahead.
func (p *Proxy) heldFor(stage string, asker *local) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.bySlot {
		if l.stage != stage {
			continue
		}
		if _, _, held := l.c.job(); held && (l.dead || (l == asker && l.ahead && !l.gone)) {
			n++
		}
	}
	return n
}

// claimAhead claims l's next job in the background, so that the program's
// newJob finds it held and durable: the upstream client asks jobCount just
// before newJob, and the claim (a tracker round trip and, for a program
// beside the proxy, a commit) runs while the program reads the count and
// sends its newJob, instead of after.
//
// It changes no answer and no rule. The claim is made under l.mu after the
// previous completion's settle (its outcome durable before the claim is
// sent, as for a newJob), and made durable before newJob hands it out (see
// claimDurable). It is asked only by a request that proves the program
// received its last completion's (or flag's) answer: the jobCount comes on
// the connection of one of l's requests, after it (an HTTP/1.1 client
// sends a request once the previous answer is read), so the program cannot
// resend that completion onto the job claimed ahead, even after a restart
// of the proxy that finds the job held. A completion or flag from the
// program before the job is handed out is answered as with no job held. A
// newJob, completion, flag or bye that comes first cancels the claim; a
// job claimed ahead that the program never asks for is released like any
// held job (bye, death, silence, ReleaseOnExit). The count the program saw
// was the tracker's, taken before the claim; a later jobCount of the same
// program waits for the claim, then adds the job claimed ahead to the
// tracker's count.
func (p *Proxy) claimAhead(l *local) {
	p.mu.Lock()
	_, _, held := l.c.job()
	if l.gone || l.dead || held || l.last.kind == "" || l.wantAhead || l.aheadRun != nil {
		p.mu.Unlock()
		return
	}
	if p.isDraining() {
		p.mu.Unlock()
		return
	}
	run := make(chan struct{})
	l.wantAhead, l.aheadRun = true, run
	p.mu.Unlock()
	go func() {
		defer func() {
			p.mu.Lock()
			if l.aheadRun == run {
				l.aheadRun = nil
			}
			p.mu.Unlock()
			close(run)
		}()
		l.mu.Lock()
		defer l.mu.Unlock()
		// Busy (a drain waits for it) from here, not while waiting for
		// l.mu: a newJob that holds it during a drain waits for the end.
		// Counted before the drain is checked (see watchSilence).
		p.busy.add()
		defer p.busy.done()
		p.mu.Lock()
		ok := l.wantAhead && !l.gone && !l.dead && l.last.kind != ""
		l.wantAhead = false
		p.mu.Unlock()
		if !ok || p.isDraining() || p.ctx.Err() != nil || p.waitSettle(p.ctx, l) != nil {
			return
		}
		if _, _, held := l.c.job(); held || p.disk.Unwritable() {
			return // held, or the journal is unwritable: the program's newJob waits
		}
		if err := l.c.claim(p.ctx); err != nil {
			// The program's newJob claims, with its retries and answers.
			p.log.Debug("claim ahead failed; the program's newJob claims", "slot", l.slotName, "err", err)
			return
		}
		p.m.claims.Add(1)
		if err := p.claimDurable(); err != nil {
			p.log.Debug("claim ahead not durable; the program's newJob makes it durable", "slot", l.slotName, "err", err)
			return
		}
		p.mu.Lock()
		l.ahead = true
		p.mu.Unlock()
	}()
}

// tokenCall serves the calls that carry a token in a JSON body. A body the
// tracker would refuse (422) is passed through for its exact answer.
func (p *Proxy) tokenCall(w http.ResponseWriter, r *http.Request, path string, body []byte) {
	call := strings.TrimPrefix(path, "/api/")
	fields := map[string][]string{
		"newJob": {"token"}, "validateWorker": {"token"}, "flagInvalidData": {"token"}, "bye": {"token"},
		"completeJob": {"token", "data"}, "updateProgress": {"token", "progress"},
	}[call]
	vals, ok := parseBody(r.Header.Get("Content-Type"), body, fields)
	if !ok {
		p.forward(w, r, path, body, true)
		return
	}
	p.mu.Lock()
	l := p.workers[vals[0]]
	p.mu.Unlock()
	if l == nil {
		switch call {
		case "validateWorker":
			writeText(w, http.StatusOK, "False")
		case "updateProgress":
			writeText(w, http.StatusOK, msgOK)
		default:
			writeText(w, http.StatusNotFound, msgNoWorker)
		}
		return
	}
	l.inflight.Add(1)
	defer l.inflight.Add(-1)
	l.touch()
	defer l.touch()
	if c := connOf(r); c != nil {
		c.last.Store(l)
	}
	switch call {
	case "validateWorker":
		writeText(w, http.StatusOK, "True")
	case "updateProgress":
		if tooLongProgress(vals[1]) {
			writeText(w, http.StatusNotFound, msgNoWorker)
			return
		}
		l.c.log(vals[1])
		p.mu.Lock()
		l.progress = vals[1]
		p.mu.Unlock()
		writeText(w, http.StatusOK, msgOK)
	case "newJob":
		p.newJob(w, r, l)
	case "completeJob":
		p.settle(w, r, l, journal.KindCompletionPending, vals[1])
	case "flagInvalidData":
		p.settle(w, r, l, journal.KindFlagPending, "")
	case "bye":
		p.bye(w, r, l)
	}
}

// maxPoisonClaims bounds the claims of one newJob that return poison jobs.
const maxPoisonClaims = 20

// newJob hands the program a job: the one its worker holds if the program
// has not had it yet, else a fresh claim.
func (p *Proxy) newJob(w http.ResponseWriter, r *http.Request, l *local) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p.cancelAhead(l)
	ctx := r.Context()
	if p.waitSettle(ctx, l) != nil {
		hangUp(w)
		return
	}
	for tries := 0; ; tries++ {
		if p.isDraining() {
			// No claims during a drain: the program waits, as on an
			// unreachable tracker, until the proxy stops.
			select {
			case <-ctx.Done():
			case <-p.ctx.Done():
			}
			hangUp(w)
			return
		}
		n, data, held := l.c.job()
		p.mu.Lock()
		delivered, ahead := l.delivered, l.ahead
		p.mu.Unlock()
		if held && (n != delivered || ahead) && !p.isPoison(l.stage, n) {
			if !ahead {
				p.m.handedBack.Add(1)
				// Its claim may not be durable yet: an earlier newJob
				// went away while the journal refused it.
				if err := p.retry(ctx, l.slotName, "", p.durableClaim(l)); err != nil {
					p.answerError(w, r, err)
					return
				}
			}
			p.deliver(w, l, n, data)
			return
		}
		// No claim while the journal is unwritable (another local worker's
		// output may be held in memory: a small claim record can pass on a
		// nearly full disk while it waits), as dcworker does.
		err := p.retry(ctx, l.slotName, "", func(ctx context.Context) error {
			if err := p.waitClaim(ctx, l); err != nil {
				return err
			}
			return l.c.claim(ctx)
		})
		switch {
		case errors.Is(err, errDraining):
			continue // waits for the end, above
		case errors.Is(err, client.ErrNoJobs):
			writeText(w, http.StatusForbidden, msgNoJobs)
			return
		case err != nil:
			p.answerError(w, r, err)
			return
		}
		p.m.claims.Add(1)
		// While the journal refuses it (a full disk), the program's newJob
		// waits, as on an unreachable tracker: the job is not handed out
		// before its claim is durable.
		if err := p.retry(ctx, l.slotName, "", p.durableClaim(l)); err != nil {
			p.answerError(w, r, err)
			return
		}
		n, data, _ = l.c.job()
		if !p.isPoison(l.stage, n) {
			p.deliver(w, l, n, data)
			return
		}
		// A poison job is not handed out: claim again (the tracker's newJob
		// releases it and picks at random). If only poison seems left,
		// release it and answer as the tracker does on an empty stage.
		p.log.Warn("claimed a poison job: not handing it out", "slot", l.slotName, "job", n)
		if tries >= maxPoisonClaims {
			if err := l.c.release(ctx); err != nil {
				p.log.Warn("releasing a poison job failed; the next claim releases it", "slot", l.slotName, "job", n, "err", err)
			}
			writeText(w, http.StatusForbidden, msgNoJobs)
			return
		}
	}
}

// claimDurable makes the claim just made durable before the program sees
// it, where that matters. The client writes a claim with the journal's next
// commit (the job's completion-pending, a flag, a bye, or the flusher): a
// crash before it loses a claim that only the tracker knows, and the
// worker's next claim releases it there.
//
// Programs started beside the proxy outlive it and keep their local tokens
// (derived from the slot), so a program answered a job must find it in the
// journal of the restarted proxy: the claim is flushed first. Programs run
// by the proxy (Command) do not come back with a job: their tokens are
// random and forgotten when the proxy stops (on Linux the programs die with
// it), and their workers are taken over by the next programs, whose first
// newJob releases a job the journal lost. For them the claim waits for the
// next commit, as in the Go client, and costs no commit of its own.
func (p *Proxy) claimDurable() error {
	if len(p.cfg.Command) > 0 {
		return nil
	}
	return p.db.Flush()
}

// durableClaim is claimDurable for l's claim, for Proxy.retry: a journal
// that a failed write stopped is reopened (through l's client) and the
// flush tried again.
func (p *Proxy) durableClaim(l *local) func(context.Context) error {
	return func(context.Context) error {
		err := p.claimDurable()
		if errors.Is(err, journal.ErrStopped) {
			if herr := l.c.journalHealth(); herr != nil {
				return herr
			}
			err = p.claimDurable()
		}
		return err
	}
}

func (p *Proxy) deliver(w http.ResponseWriter, l *local, n int, data session.Payload) {
	p.mu.Lock()
	l.delivered, l.last, l.progress, l.ahead = n, lastAction{}, "", false
	p.mu.Unlock()
	writeJSON(w, http.StatusOK, jobBody(n, data.Wire()))
}

func (p *Proxy) isPoison(stage string, n int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.poison[jobKey{stage, n}]
}

// settle serves completeJob (kind KindCompletionPending, with the output's
// wire text) and flagInvalidData (KindFlagPending): answered once the
// outcome is settled, or with AckJournal once it is durable.
func (p *Proxy) settle(w http.ResponseWriter, r *http.Request, l *local, kind journal.Kind, output string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p.cancelAhead(l)
	ctx := r.Context()
	if p.waitSettle(ctx, l) != nil {
		hangUp(w)
		return
	}
	n, _, held := l.c.job()
	p.mu.Lock()
	last := l.last
	if l.ahead {
		held = false // claimed ahead: the program has not got it
	}
	p.mu.Unlock()
	if !held {
		// A resend of the last completion (same output) or flag, whose
		// first attempt settled while its answer was lost (the proxy was
		// restarted): applied.
		if last.kind == kind && (kind != journal.KindCompletionPending || last.output == output) {
			p.m.resentAnswered.Add(1)
			writeText(w, http.StatusOK, msgOK)
			return
		}
		if kind == journal.KindCompletionPending {
			writeText(w, http.StatusForbidden, msgNoOpenJob)
		} else {
			writeText(w, http.StatusForbidden, msgNotWorking)
		}
		return
	}
	p.mu.Lock()
	l.last = lastAction{kind: kind, job: n, output: output}
	done := make(chan struct{})
	l.settling = done
	p.mu.Unlock()
	// Both run on the settle's goroutine: durable when the record is on
	// disk (the client's hook), accepted when the tracker answered 200 (see
	// acceptWatch).
	durable, accepted := make(chan struct{}), make(chan struct{})
	markDurable, markAccepted := closeOnce(durable), closeOnce(accepted)
	path := "/api/completeJob"
	if kind == journal.KindFlagPending {
		path = "/api/flagInvalidData"
	}
	var result error
	p.busy.add()
	go func() {
		defer p.busy.done()
		defer close(done)
		out := decodeOutput(output)
		what := fmt.Sprintf("the output of job %d (%d bytes)", n, len(output))
		if kind == journal.KindFlagPending {
			what = fmt.Sprintf("the flag of job %d", n)
		}
		result = p.retry(p.ctx, l.slotName, what, func(ctx context.Context) error {
			ctx = withAcceptWatch(ctx, path, markAccepted)
			// A call after an unconfirmed one resends the recorded
			// output (the client ignores the argument then).
			var err error
			if kind == journal.KindCompletionPending {
				err = l.c.complete(ctx, out, markDurable)
			} else {
				err = l.c.flag(ctx, markDurable)
			}
			if errors.Is(err, client.ErrWorkerGone) {
				return finalError{err} // settled: the output is kept as an orphan
			}
			return err
		})
		switch {
		case result == nil:
			p.settled(l, kind, n)
		case p.ctx.Err() == nil:
			p.log.Warn("settled with an error", "slot", l.slotName, "job", n, "action", string(kind), "err", result)
		}
	}()
	if p.cfg.Ack == AckJournal {
		select {
		case <-durable:
			writeText(w, http.StatusOK, msgOK)
			return
		case <-done:
		case <-ctx.Done():
			hangUp(w)
			return
		}
	} else {
		select {
		case <-accepted:
			// Settled at the tracker; the outcome's record follows in the
			// background, before this worker's next action.
			writeText(w, http.StatusOK, msgOK)
			return
		case <-done:
		case <-ctx.Done():
			hangUp(w) // the settle goes on; its outcome is journaled
			return
		}
	}
	p.answerSettle(w, r, kind, result)
}

// cancelAhead cancels a claim ahead asked for l and not started (see
// claimAhead). The caller holds l.mu.
func (p *Proxy) cancelAhead(l *local) {
	p.mu.Lock()
	l.wantAhead = false
	p.mu.Unlock()
}

// closeOnce returns a func that closes ch the first time it is called. It
// is not safe for concurrent use.
func closeOnce(ch chan struct{}) func() {
	closed := false
	return func() {
		if !closed {
			closed = true
			close(ch)
		}
	}
}

// settled counts a settled completion or flag and clears the job's deaths.
func (p *Proxy) settled(l *local, kind journal.Kind, n int) {
	if kind == journal.KindCompletionPending {
		p.m.completed.Add(1)
	} else {
		p.m.flagged.Add(1)
	}
	p.mu.Lock()
	delete(p.deaths, jobKey{l.stage, n})
	p.mu.Unlock()
}

func (p *Proxy) answerSettle(w http.ResponseWriter, r *http.Request, kind journal.Kind, err error) {
	var verr *client.ValidationError
	switch {
	case err == nil:
		writeText(w, http.StatusOK, msgOK)
	case errors.Is(err, client.ErrWorkerGone):
		// The tracker had deleted the worker (idle timeout) and re-opened
		// the job: the output is kept as an orphan in the journal, resent
		// if this proxy claims the job again. The program is told what the
		// tracker would tell it.
		writeText(w, http.StatusNotFound, msgNoWorker)
	case errors.Is(err, client.ErrNoJobHeld):
		if kind == journal.KindCompletionPending {
			writeText(w, http.StatusForbidden, msgNoOpenJob)
		} else {
			writeText(w, http.StatusForbidden, msgNotWorking)
		}
	case errors.As(err, &verr):
		writeJSON(w, http.StatusUnprocessableEntity, verr.Body)
	default:
		p.answerError(w, r, err)
	}
}

// bye ends the local worker: its job is re-opened at the tracker.
func (p *Proxy) bye(w http.ResponseWriter, r *http.Request, l *local) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p.cancelAhead(l)
	if p.waitSettle(r.Context(), l) != nil {
		hangUp(w)
		return
	}
	if err := p.retry(r.Context(), l.slotName, "", l.c.bye); err != nil {
		p.answerError(w, r, err)
		return
	}
	p.remove(l)
	_ = l.c.close()
	writeText(w, http.StatusOK, msgOK)
}

// answerError answers an error that is not the program's doing: nothing
// when the program hung up, else the 500 the tracker gives when it fails.
func (p *Proxy) answerError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil || p.ctx.Err() != nil {
		hangUp(w)
		return
	}
	p.log.Error("request failed", "path", r.URL.Path, "err", err)
	writeText(w, http.StatusInternalServerError, "Internal Server Error")
}

// retry calls fn until it returns nil, an error retrying cannot cure, or ctx
// ends. Errors that retrying cures are the client's "not confirmed" ones: a
// tracker unreachable after the client's own retries, an earlier action
// still unconfirmed. Retrying is safe because the client journals every
// action before it sends it and settles what is pending before anything
// else (see client.CompleteJob).
//
// A call the journal refused (a full, read-only or failing disk: nothing
// recorded, nothing sent) is retried the same way, and sooner when another
// local worker's held record gets through; p.disk logs the spell once
// rather than each attempt, and shows what the call for slot (a local
// worker, one call at a time) holds in memory meanwhile: what ("" for
// nothing).
func (p *Proxy) retry(ctx context.Context, slot, what string, fn func(context.Context) error) error {
	wait := 200 * time.Millisecond
	n, _ := slotIndex(slot)
	defer p.disk.Drop(n)
	for {
		began := time.Now()
		err := fn(ctx)
		if err == nil {
			p.disk.OK(n, began)
		}
		if err == nil || final(err) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		pause := wait/2 + rand.N(wait)
		var woken <-chan struct{}
		if journalRefused(err) {
			woken = p.disk.Failed(n, what, err, pause, began)
			p.log.Debug("journal write refused; retrying", "slot", slot, "err", err, "wait", pause)
		} else {
			p.log.Warn("tracker call not confirmed; retrying", "slot", slot, "err", err, "wait", pause)
		}
		if !sleep(ctx, pause, woken) {
			return ctx.Err()
		}
		wait = min(2*wait, 10*time.Second)
	}
}

// sleep waits d, or less if woken is closed first; it returns false when
// ctx ends first.
func sleep(ctx context.Context, d time.Duration, woken <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-woken:
	case <-t.C:
	}
	return true
}

// waitClaim returns once l's worker may claim a job: at once while the
// journal is writable. While it is not (see statusserver.DiskState.MayClaim)
// it waits for the local workers that hold a record in memory to find it
// writable, or, when none does, probes it on retry's schedule (the client's
// journalHealth, which reopens a stopped journal and writes nothing). It
// returns ctx's error when ctx ends, errDraining when a drain starts.
func (p *Proxy) waitClaim(ctx context.Context, l *local) error {
	n, _ := slotIndex(l.slotName)
	wait := 200 * time.Millisecond
	for {
		if p.isDraining() {
			return errDraining
		}
		claim, probe, ch := p.disk.MayClaim(n)
		if claim {
			return nil
		}
		if probe {
			began := time.Now()
			err := l.c.journalHealth()
			if err == nil {
				p.disk.OK(n, began)
				return nil
			}
			pause := wait/2 + rand.N(wait)
			if !sleep(ctx, pause, p.disk.Failed(n, "", err, pause, began)) {
				return ctx.Err()
			}
			wait = min(2*wait, 10*time.Second)
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.drainCh:
			return errDraining
		case <-ch:
		}
	}
}

// errDraining ends a claim's wait when a drain starts: no claim is made
// during a drain.
var errDraining = finalError{errors.New("proxy: draining: no claims")}

// finalError marks an error as one that retrying cannot cure.
type finalError struct{ err error }

func (e finalError) Error() string { return e.err.Error() }
func (e finalError) Unwrap() error { return e.err }

// final reports errors that retrying cannot cure. ErrWorkerGone is not one
// of them for a claim: the client registers a new worker and claims again.
func final(err error) bool {
	var verr *client.ValidationError
	var fe finalError
	return errors.As(err, &fe) || errors.Is(err, client.ErrNoJobs) || errors.Is(err, client.ErrNoJobHeld) ||
		errors.Is(err, client.ErrInvalidStage) || errors.Is(err, client.ErrStageDisabled) ||
		errors.Is(err, client.ErrInvalidArgument) || errors.Is(err, client.ErrClosed) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &verr)
}

// decodeOutput turns completeJob's data (wire form) into a payload.
func decodeOutput(s string) session.Payload {
	pl, err := session.Decode(&s)
	if err != nil {
		return session.String(s)
	}
	return pl
}
