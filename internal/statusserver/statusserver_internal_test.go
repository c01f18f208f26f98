package statusserver

import (
	"net"
	"testing"
)

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://alice:S3cretPass@tracker:8080/x": "http://alice:xxxxx@tracker:8080/x",
		"https://tracker.example/":               "https://tracker.example/",
		"http://bob@tracker":                     "http://bob@tracker",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// ":PORT" is allowed, and said: the listener's address is unspecified.
func TestEveryInterface(t *testing.T) {
	for _, tt := range []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.IPv4zero, Port: 9090}, true},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 9090}, true},
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9090}, false},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 9090}, false},
	} {
		if got := EveryInterface(tt.addr); got != tt.want {
			t.Errorf("EveryInterface(%v) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}
