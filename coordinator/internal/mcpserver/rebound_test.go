package mcpserver

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestReboundDefaultPorts: a request through a reverse proxy on this host
// (it arrives on a loopback address) carries the public Host with or without
// its default port, and --public-url may be written either way: both forms
// are the public host. Another host is still refused, and one differing only
// in another port too.
func TestReboundDefaultPorts(t *testing.T) {
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8420}
	for _, tc := range []struct {
		host, public string
		rebound      bool
	}{
		{"api.example.com", "api.example.com", false},
		{"api.example.com:443", "api.example.com", false},
		{"api.example.com", "api.example.com:443", false},
		{"API.example.com:80", "api.example.com", false},
		{"api.example.com:8443", "api.example.com", true},
		{"evil.example", "api.example.com:443", true},
		{"evil.example:443", "api.example.com", true},
		{"localhost:8420", "api.example.com", false},
	} {
		r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
		r.Host = tc.host
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, net.Addr(local)))
		if got := rebound(r, tc.public); got != tc.rebound {
			t.Errorf("Host %q with public host %q: rebound %v, want %v", tc.host, tc.public, got, tc.rebound)
		}
	}
}
