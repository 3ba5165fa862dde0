package raftnode

import (
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/tabletest"
)

// TestRemoteHostIPv6Prefix: handshakes count towards an IPv4 address, or an
// IPv6 address's /64; an IPv4-mapped IPv6 address is its IPv4 address.
func TestRemoteHostIPv6Prefix(t *testing.T) {
	tabletest.Equal(t, "remoteHost", func(addr string) string { return remoteHost(remoteAs{addr: fakeAddr(addr)}) }, map[string]string{
		"192.0.2.7:5000":               "192.0.2.7",
		"[::ffff:192.0.2.7]:5000":      "192.0.2.7",
		"[2001:db8:1:2::1]:5000":       "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::9]:6000":  "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:5000":       "2001:db8:1:3::/64",
		"[fe80::1%eth0]:5000":          "fe80::/64",
		"[::1]:5000":                   "::/64",
		"not an address":               "not an address",
		"unix-socket-peer.example:123": "unix-socket-peer.example",
	})
}

// A member's handshake in progress is not closed by a flood of stalled
// handshakes from many IPv6 addresses of one /64 (anyone holding one
// address there holds 2^64): the flood is one host, held to the per-host
// cap, and makes room from its own. Counted per address, it was 1,024
// hosts of one handshake each, the member's host no less busy than any,
// and the member's handshake was closed at random among them. The
// connections are real (loopback TCP); the listener shows the gate the
// IPv6 addresses this machine cannot dial from.
//
// The test holds the member between the acceptor's answer and its proof
// while it dials the flood (1,024 connections, each accepted in turn): on
// a loaded machine under -race that took over the default 5 s handshake
// deadline, and the gate closed the member's handshake for being late, not
// for the flood (CI: "the member's connection was closed: … broken pipe").
// The deadline here is a minute, past the longest the staging can take
// (its wait is 10 s), so only the flood can close the member's handshake;
// the stalls outlast the test as before.
func TestIPv6FloodFromOnePrefixIsOneHost(t *testing.T) {
	ln := &remappedListener{Listener: listenLoopback(t), as: map[string]net.Addr{}}
	a := newAuthPeerOn(t, ln, "", testSecret, 2, time.Minute)
	k, _ := deriveAuthKey(testSecret)
	stalled := closedAtEnd(t)
	const flood = 1024
	hello := append([]byte(authMagic), make([]byte, nonceLen)...)
	c := rawHandshakeFrom(t, a, ln, "[2001:db8:1::1]:40000", func(dn, an, _ []byte) []byte {
		// Between the acceptor's answer and the member's proof.
		for i := range flood {
			s := ln.dial(t, a, "[2001:db8:2::"+strconv.FormatInt(int64(i+1), 16)+"]:40000")
			if _, err := s.Write(hello); err != nil {
				t.Fatal(err)
			}
			*stalled = append(*stalled, s)
		}
		waitFor(t, 10*time.Second, "the flood accepted", func() bool { return ln.waiting(1 + flood) })
		return k.proof(labelDialling, dn, an)
	})
	a.memberGetsThrough(t, c, strconv.Itoa(flood)+" stalled handshakes from one /64")
	if n := ln.unmappedCount(); n > 0 {
		t.Fatalf("the gate saw %d connections from their loopback address, not the IPv6 address dialled as", n)
	}
	a.s.auth.mu.Lock()
	held := a.s.auth.perHost["2001:db8:2::/64"]
	a.s.auth.mu.Unlock()
	if held > maxHandshakesPerHost {
		t.Fatalf("the /64 holds %d handshakes in progress, over the per-host cap of %d", held, maxHandshakesPerHost)
	}
}

// rawHandshakeFrom is rawHandshake from a connection the gate sees coming
// from the address as.
func rawHandshakeFrom(t *testing.T, a *authPeer, ln *remappedListener, as string, proof func(dn, an, mac []byte) []byte) net.Conn {
	t.Helper()
	return rawHandshakeOn(t, ln.dial(t, a, as), testSecret, proof)
}

type fakeAddr string

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return string(a) }

// remoteAs is a connection whose remote address reads as addr.
type remoteAs struct {
	net.Conn
	addr net.Addr
}

func (c remoteAs) RemoteAddr() net.Addr { return c.addr }

// remappedListener accepts real connections and shows each dialled with
// dial as coming from the address given there.
type remappedListener struct {
	net.Listener
	mu       sync.Mutex
	as       map[string]net.Addr // the dialler's local address → the address shown
	entered  int                 // Accept calls so far
	unmapped int                 // connections shown from their real address (dial never recorded one)
}

func (l *remappedListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.entered++
	l.mu.Unlock()
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	// dial records the address once its Dial returns, which may be after
	// the kernel handed the connection here (later still when a loaded
	// machine deschedules the dialler; unmapped counts the misses).
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		l.mu.Lock()
		as, ok := l.as[c.RemoteAddr().String()]
		l.mu.Unlock()
		if ok {
			return remoteAs{Conn: c, addr: as}, nil
		}
	}
	l.mu.Lock()
	l.unmapped++
	l.mu.Unlock()
	return c, nil
}

// unmappedCount is how many connections Accept showed from their real
// address.
func (l *remappedListener) unmappedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.unmapped
}

// dial connects to a, the gate to see the connection come from as; closed
// at the test's end.
func (l *remappedListener) dial(t *testing.T, a *authPeer, as string) net.Conn {
	t.Helper()
	c := dialPlain(t, a.addr())
	l.mu.Lock()
	l.as[c.LocalAddr().String()] = fakeAddr(as)
	l.mu.Unlock()
	return c
}

// waiting: n connections were accepted and booked, and the gate waits for
// the next one.
func (l *remappedListener) waiting(n int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.entered > n
}
