package proxy

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/distcompute/distcompute-go/journal"
)

// program is one copy of Config.Command, restarted as its policy says.
type program struct {
	index int

	mu       sync.Mutex
	pid      int // 0 when not running
	runs     int
	lastExit string
}

// programURL is the URL a copy's requests come to: its index in the path
// tells the proxy which local workers die with it.
func (p *Proxy) programURL(i int) string {
	host, port, err := net.SplitHostPort(p.addr)
	if err != nil {
		return "http://" + p.addr + "/p/" + strconv.Itoa(i)
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/p/" + strconv.Itoa(i)
}

// startPrograms starts Config.Procs copies of the command. The channel is
// closed once every copy has ended for good; nil without a command.
func (p *Proxy) startPrograms() <-chan struct{} {
	if len(p.cfg.Command) == 0 {
		return nil
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	p.mu.Lock()
	for i := 0; i < p.cfg.Procs; i++ {
		pr := &program{index: i}
		p.progs = append(p.progs, pr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.runProgram(pr)
		}()
	}
	p.mu.Unlock()
	go func() { wg.Wait(); close(done) }()
	return done
}

func (p *Proxy) runProgram(pr *program) {
	log := p.log.With("program", pr.index)
	for p.ctx.Err() == nil && !p.isDraining() {
		cmd := exec.Command(p.cfg.Command[0], p.cfg.Command[1:]...)
		cmd.Env = append(os.Environ(), EnvURL+"="+p.programURL(pr.index), EnvProgram+"="+strconv.Itoa(pr.index))
		cmd.Stdout, cmd.Stderr = p.cfg.Stdout, p.cfg.Stderr
		setProcAttr(cmd)
		p.m.programRuns.Add(1)
		var err error
		if err = cmd.Start(); err == nil {
			pr.mu.Lock()
			pr.pid, pr.runs = cmd.Process.Pid, pr.runs+1
			pr.mu.Unlock()
			log.Info("program started", "pid", cmd.Process.Pid)
			err = cmd.Wait()
		}
		failed := err != nil
		pr.mu.Lock()
		pr.pid = 0
		pr.lastExit = "exit 0"
		if err != nil {
			pr.lastExit = err.Error()
		}
		pr.mu.Unlock()
		if failed {
			p.m.programFailures.Add(1)
			log.Warn("program ended", "err", err)
		} else {
			log.Info("program ended", "exit", 0)
		}
		p.programDied(pr.index, failed)
		if p.isDraining() || p.cfg.Restart == RestartNever || (p.cfg.Restart == RestartOnFailure && !failed) {
			return
		}
		t := time.NewTimer(p.cfg.RestartDelay)
		select {
		case <-t.C:
		case <-p.drainCh:
			t.Stop()
			return
		case <-p.ctx.Done():
			t.Stop()
			return
		}
	}
}

// signalPrograms sends sig to every running copy's process group.
func (p *Proxy) signalPrograms(sig syscall.Signal) {
	p.mu.Lock()
	progs := append([]*program(nil), p.progs...)
	p.mu.Unlock()
	for _, pr := range progs {
		pr.mu.Lock()
		pid := pr.pid
		pr.mu.Unlock()
		if pid > 0 {
			signalGroup(pid, sig)
		}
	}
}

// programDied marks the local workers of copy i dead: their tokens are
// forgotten and each waits, with its job, for the next registration at its
// stage. A job whose holder's program failed PoisonAfter times in a row is
// released and recorded as poison.
func (p *Proxy) programDied(i int, failed bool) {
	p.mu.Lock()
	var poisoned []*local
	for _, l := range p.bySlot {
		if l.prog != i || l.dead || l.gone {
			continue
		}
		l.dead = true
		delete(p.workers, l.token)
		n, _, held := l.c.job()
		if !held || !failed {
			continue
		}
		k := jobKey{l.stage, n}
		p.deaths[k]++
		if p.deaths[k] >= p.cfg.PoisonAfter && !p.poison[k] {
			p.poison[k] = true
			poisoned = append(poisoned, l)
		}
	}
	p.mu.Unlock()
	for _, l := range poisoned {
		p.busy.add()
		go func() {
			defer p.busy.done()
			p.releasePoison(l)
		}()
	}
}

// releasePoison records l's job as poison and releases it.
func (p *Proxy) releasePoison(l *local) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = p.waitSettle(p.ctx, l)
	n, _, held := l.c.job()
	if !held {
		return
	}
	p.m.poisoned.Add(1)
	reason := fmt.Sprintf("%sits program died %d times in a row holding it; released, not handed out by this proxy again", poisonReason, p.cfg.PoisonAfter)
	if _, err := p.db.Append(journal.Event{Slot: l.slotName, Kind: journal.KindFailed, Stage: l.stage, Job: n, Reason: reason}); err != nil {
		p.log.Error("recording a poison job failed", "slot", l.slotName, "job", n, "err", err)
	}
	p.log.Warn("poison job: releasing it", "slot", l.slotName, "stage", l.stage, "job", n, "deaths", p.cfg.PoisonAfter)
	ctx, cancel := context.WithTimeout(p.ctx, time.Minute)
	defer cancel()
	p.release(ctx, l, "poison")
}
