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
	if ports.given == nil {
		ports.lo, ports.hi = 10000, ephemeralLow()-1
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
	return "", fmt.Errorf("no free %s port on 127.0.0.1 in %d-%d", network, ports.lo, ports.hi)
}

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
