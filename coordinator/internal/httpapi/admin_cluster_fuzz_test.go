package httpapi

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

// FuzzValidHostPort: an address cluster join or register accepts (raft_addr,
// api_addr) is host:port with a host and a port from 1 to 65535, which a
// coordinator can listen on and its peers dial; a host name in it is ASCII
// (only ASCII capitals are folded for the check, as for every host name: a
// U+212A KELVIN SIGN is not read as "k").
func FuzzValidHostPort(f *testing.F) {
	for _, s := range []string{"10.0.0.2:8421", "c2.example.com:8421", "[::1]:8421", "[fe80::1%eth0]:1", "localhost:65535",
		"bad addr", "127.0.0.1", ":8421", "127.0.0.1:0", "127.0.0.1:99999", "127.0.0.1:port", "bad_host!:8421", "h:+1", "h:08421", "[::1]", "", "[::% ]:1",
		"\u212a2.example.com:8421", "C2.Example.COM:8421"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		if validHostPort("raft_addr", addr) != nil {
			return
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" {
			t.Fatalf("accepted %q: %v", addr, err)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			t.Fatalf("accepted %q with port %q", addr, port)
		}
		for _, r := range host {
			if r > 0x7f && !strings.HasPrefix(addr, "[") {
				t.Fatalf("accepted %q with a non-ASCII host name", addr)
			}
			if r <= ' ' || r == 0x7f {
				t.Fatalf("accepted %q with a space or control character in its host", addr)
			}
		}
	})
}
