// Package freeport hands out free 127.0.0.1 ports to tests: for a listener
// the test opens later, or for a child process (a coordinator, nginx,
// pebble, the EPP registry) told to listen there. It imports nothing of this
// tree, so any test helper can use it (tests/framework.FreeAddr is Addr).
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Addr returns a free 127.0.0.1 address for network ("tcp" or "udp"),
// failing tb when there is none.
func Addr(tb testing.TB, network string) string {
	tb.Helper()
	a, err := Take(network)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// Ports handed out come from below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range). A port taken from ":0" and closed again is
// free only for a moment: any outgoing connection on the machine may get it
// as its source port before the child binds it, which failed a rolling
// upgrade test with "bind: address already in use". Below the ephemeral range
// only explicit binds compete, and the ones from this process never repeat.
var ports struct {
	sync.Mutex
	next, lo, hi int
	given        map[int]bool
}

// Take is Addr returning the error: a port free for both TCP and UDP on
// loopback, never handed out before by this process.
func Take(network string) (string, error) {
	ports.Lock()
	defer ports.Unlock()
	return take(network)
}

// take is Take with ports locked.
func take(network string) (string, error) {
	if ports.given == nil {
		ports.lo, ports.hi = claimSlice(10000, ephemeralLow()-1)
		ports.given = map[int]bool{}
		ports.next = ports.lo + rand.IntN(ports.hi-ports.lo)
	}
	for tries := 0; tries < ports.hi-ports.lo; tries++ {
		p := ports.next
		ports.next++
		if ports.next > ports.hi {
			ports.next = ports.lo
		}
		if ports.given[p] || !portFree(p) {
			continue
		}
		ports.given[p] = true
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
	}
	if full := ephemeralLow() - 1; ports.lo != 10000 || ports.hi != full {
		// The slice is spent: the whole range, as before slices.
		ports.lo, ports.hi, ports.next = 10000, full, 10000
		return take(network)
	}
	return "", fmt.Errorf("no free %s port on 127.0.0.1 in %d-%d", network, ports.lo, ports.hi)
}

// slices is how many parts the range is cut into, one per test process.
const slices = 8

// claimSlice gives this process a part of lo-hi of its own: the first of
// the slices whose abstract unix socket (@hostplane-freeport-N: no file, the
// kernel frees the name however the process ends) it can bind, held until
// the process exits. Test packages run at once (make test's two lanes)
// otherwise handed out the same ports at different moments: a coordinator
// killed in one package left its cluster's leader sending Raft traffic to
// its port, which a coordinator of another package was then given, and that
// one took the other cluster's log as its own (seen in a CI: "join c2: c2 is
// already a member at" a port of no coordinator of the test). With every
// slice taken, the whole range, as before.
func claimSlice(lo, hi int) (int, int) {
	size := (hi - lo + 1) / slices
	for i := range slices {
		ln, err := net.Listen("unix", fmt.Sprintf("@%s-%d", sliceName, i))
		if err != nil {
			continue
		}
		held = append(held, ln) // kept open: the claim lasts as long as the process
		return lo + i*size, lo + (i+1)*size - 1
	}
	return lo, hi
}

// sliceName names the slices' sockets (a test of claimSlice uses names of
// its own, so that the test processes running beside it, which hold slices
// of the real names, cannot make its claims fall back to the whole range).
var sliceName = "hostplane-freeport"

// held keeps the claimed slice's socket open.
var held []net.Listener

// portFree reports whether both TCP and UDP port p can be bound on loopback.
func portFree(p int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	pc.Close()
	return true
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768 when
// it cannot be read, Linux's default).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				return n
			}
		}
	}
	return 32768
}
