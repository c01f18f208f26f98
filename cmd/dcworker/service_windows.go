package main

import (
	"os"
	"syscall"

	"golang.org/x/sys/windows/svc"
)

// asService runs dcworker under the Windows service control manager when it
// was started as a service (sc.exe create dcworker binPath= "C:\...\dcworker.exe
// run --journal ... -- ..."): a Stop or Shutdown request is sent on sigs as
// SIGTERM (drain, as on Unix), a second one as another SIGTERM (stop at
// once). It returns false, and does nothing, outside a service. Otherwise
// call the returned func with the exit code once the worker has stopped: it
// reports the service stopped.
func asService(sigs chan<- os.Signal) (stopped func(code int), ok bool) {
	if is, err := svc.IsWindowsService(); err != nil || !is {
		return nil, false
	}
	h := &serviceHandler{sigs: sigs, done: make(chan int)}
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		_ = svc.Run("dcworker", h) // the name is ignored for a service of its own process
	}()
	return func(code int) {
		select {
		case h.done <- code:
			<-runDone
		case <-runDone: // svc.Run failed: no service manager to tell
		}
	}, true
}

// serviceHandler turns service control requests into stop signals.
type serviceHandler struct {
	sigs chan<- os.Signal
	done chan int // the worker's exit code, once it has stopped
}

func (h *serviceHandler) Execute(_ []string, reqs <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	const accepts = svc.AcceptStop | svc.AcceptShutdown
	status <- svc.Status{State: svc.Running, Accepts: accepts}
	for {
		select {
		case code := <-h.done:
			status <- svc.Status{State: svc.StopPending}
			return code != 0, uint32(code)
		case r := <-reqs:
			switch r.Cmd {
			case svc.Interrogate:
				status <- r.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending, Accepts: accepts}
				select {
				case h.sigs <- syscall.SIGTERM:
				default: // the worker has two pending already: it stops at once
				}
			}
		}
	}
}
