package statusserver

import (
	"errors"
	"net"
	"net/url"
	"syscall"
)

// ShortNetError says in a few words why a request to the tracker got no
// answer, as Reach.LastError and the log show it: "connection refused",
// "no such host x", "timeout".
func ShortNetError(err error) string {
	var dns *net.DNSError
	var errno syscall.Errno
	var op *net.OpError
	var ne net.Error
	var ue *url.Error
	switch {
	case errors.As(err, &dns) && dns.IsNotFound:
		return "no such host " + dns.Name
	case errors.As(err, &dns):
		return "DNS: " + dns.Err
	case errors.As(err, &errno):
		return errno.Error()
	case errors.As(err, &op) && op.Err != nil:
		return op.Err.Error()
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, &ue):
		return ue.Err.Error()
	}
	return err.Error()
}
