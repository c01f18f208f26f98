package statusserver_test

import (
	"errors"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"

	"github.com/distcompute/distcompute-go/internal/statusserver"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout after a long wait" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestShortNetError(t *testing.T) {
	refused := &url.Error{Op: "Post", URL: "http://t/api/newJob", Err: &net.OpError{Op: "dial", Net: "tcp",
		Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}}
	for _, c := range []struct {
		err  error
		want string
	}{
		{refused, "connection refused"},
		{&url.Error{Op: "Get", URL: "http://x", Err: &net.DNSError{Err: "no such host", Name: "tracker.example", IsNotFound: true}}, "no such host tracker.example"},
		{&net.DNSError{Err: "server misbehaving", Name: "t"}, "DNS: server misbehaving"},
		{&url.Error{Op: "Get", URL: "http://x", Err: timeoutErr{}}, "timeout"},
		{&url.Error{Op: "Get", URL: "http://x", Err: errors.New("EOF")}, "EOF"},
		{errors.New("something else"), "something else"},
	} {
		if got := statusserver.ShortNetError(c.err); got != c.want {
			t.Errorf("ShortNetError(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
