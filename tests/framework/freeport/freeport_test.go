package freeport

import (
	"net"
	"strconv"
	"testing"
)

// TestAddrIsFreeBelowTheEphemeralRangeAndNeverRepeats: each address can be
// bound for TCP and UDP, lies below the kernel's ephemeral range, and none is
// handed out twice.
func TestAddrIsFreeBelowTheEphemeralRangeAndNeverRepeats(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		a := Addr(t, "tcp")
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
		host, port, err := net.SplitHostPort(a)
		if err != nil || host != "127.0.0.1" {
			t.Fatalf("%q: %v", a, err)
		}
		if p, _ := strconv.Atoi(port); p < 10000 || p >= ephemeralLow() {
			t.Fatalf("%s is outside 10000-%d", a, ephemeralLow()-1)
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
		pc, err := net.ListenPacket("udp", a)
		if err != nil {
			t.Fatal(err)
		}
		pc.Close()
	}
}
