package freeport

import (
	"fmt"
	"net"
	"os"
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

// TestSlicesAreDisjoint: two claims (as two test processes make them) get
// parts of the range that do not overlap, both inside it.
func TestSlicesAreDisjoint(t *testing.T) {
	// Names of this test's own: with eight or more test processes of the
	// suite holding slices (make test's lanes and a developer's runs beside
	// them), both claims below fell back to the whole range ("slices
	// 29922-32767 and 10000-32767 overlap", seen in a run of the suite).
	old := sliceName
	sliceName = fmt.Sprintf("hostplane-freeport-test-%d", os.Getpid())
	t.Cleanup(func() { sliceName = old })
	lo, hi := 10000, 32767
	a0, a1 := claimSlice(lo, hi)
	b0, b1 := claimSlice(lo, hi)
	if a0 < lo || b0 < lo || a1 > hi || b1 > hi || a0 > a1 || b0 > b1 {
		t.Fatalf("slices %d-%d and %d-%d not inside %d-%d", a0, a1, b0, b1, lo, hi)
	}
	if a0 <= b1 && b0 <= a1 {
		t.Fatalf("slices %d-%d and %d-%d overlap", a0, a1, b0, b1)
	}
}
