package raftnode

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/tests/framework"
)

const (
	testSecret  = "raft-auth-test-secret-0123456789"
	otherSecret = "another-clusters-secret-987654321"
)

// authPeer is one member's stream layer with the handshake, on loopback, at a
// cluster level the test sets.
type authPeer struct {
	s     *streamLayer
	level atomic.Uint32
	dir   string
}

func newAuthPeer(t *testing.T, secret string, level uint16, timeout time.Duration) *authPeer {
	t.Helper()
	return newAuthPeerIn(t, t.TempDir(), secret, level, timeout)
}

func newAuthPeerIn(t *testing.T, dir, secret string, level uint16, timeout time.Duration) *authPeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return newAuthPeerOn(t, ln, dir, secret, level, timeout)
}

// newAuthPeerOn is newAuthPeerIn on the listener ln.
func newAuthPeerOn(t *testing.T, ln net.Listener, dir, secret string, level uint16, timeout time.Duration) *authPeer {
	t.Helper()
	p := &authPeer{dir: dir}
	p.level.Store(uint32(level))
	g, err := newAuthGate(secret, ln, func() uint16 { return uint16(p.level.Load()) }, dir, timeout, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	p.s = &streamLayer{Listener: ln, advertise: ln.Addr(), auth: g}
	t.Cleanup(func() { _ = p.s.Close() })
	return p
}

func (p *authPeer) addr() raft.ServerAddress { return raft.ServerAddress(p.s.Addr().String()) }

// acceptOne waits up to d for a connection handed to Raft.
func (p *authPeer) acceptOne(d time.Duration) (net.Conn, bool) {
	ch := make(chan net.Conn, 1)
	go func() {
		if c, err := p.s.Accept(); err == nil {
			ch <- c
		}
	}()
	select {
	case c := <-ch:
		return c, true
	case <-time.After(d):
		return nil, false
	}
}

// waitRefused waits until the peer has refused n connections in all.
func (p *authPeer) waitRefused(t *testing.T, n int64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); p.s.auth.refused.Load() < n; {
		if time.Now().After(deadline) {
			t.Fatalf("refused %d connections, want %d", p.s.auth.refused.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// closedByPeer reports whether c's peer closed it (within 5 s): EOF, or a
// reset when it closed with bytes of ours unread.
func closedByPeer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.ReadAll(c)
	var ne net.Error
	return err == nil || !(errors.As(err, &ne) && ne.Timeout())
}

// dialPlain dials addr with no handshake; the connection is closed at the
// test's end.
func dialPlain(t *testing.T, addr raft.ServerAddress) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", string(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// listenLoopback is a listener on a free loopback port, closed at the test's
// end.
func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// readsExactly checks that Raft reads msg from in (a connection it was
// handed).
func readsExactly(t *testing.T, in net.Conn, msg []byte) {
	t.Helper()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(in, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("raft reads %q (%v), want %q", got, err, msg)
	}
}

// nothingReachesRaft checks that no connection is handed to Raft within
// 300 ms; what names the connection that must not be.
func (p *authPeer) nothingReachesRaft(t *testing.T, what string) {
	t.Helper()
	if in, ok := p.acceptOne(300 * time.Millisecond); ok {
		in.Close()
		t.Fatalf("%s reached Raft", what)
	}
}

// dialRefused checks that p's dial to addr fails with want.
func (p *authPeer) dialRefused(t *testing.T, addr raft.ServerAddress, want error, what string) {
	t.Helper()
	if c, err := p.s.Dial(addr, time.Second); !errors.Is(err, want) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("%s: %v, want %v", what, err, want)
	}
}

// closedAtEnd is a list of connections closed at the test's end.
func closedAtEnd(t *testing.T) *[]net.Conn {
	var cs []net.Conn
	t.Cleanup(func() {
		for _, c := range cs {
			c.Close()
		}
	})
	return &cs
}

// The right secret on both sides: the handshake passes both ways and Raft
// reads exactly what the dialler writes after it.
func TestHandshakeRightSecret(t *testing.T) {
	a := newAuthPeer(t, testSecret, 2, 0)
	b := newAuthPeer(t, testSecret, 2, 0)
	for _, dir := range []struct{ from, to *authPeer }{{a, b}, {b, a}} {
		c, err := dir.from.s.Dial(dir.to.addr(), time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		msg := []byte{0, 1, 2, 3, 'r', 'p', 'c'}
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		in, ok := dir.to.acceptOne(5 * time.Second)
		if !ok {
			t.Fatal("no authenticated connection accepted")
		}
		readsExactly(t, in, msg)
		c.Close()
		in.Close()
	}
	if a.s.auth.refused.Load()+b.s.auth.refused.Load() != 0 {
		t.Fatal("a good handshake was refused")
	}
}

// Another secret is refused on each side: the dialler refuses the acceptor's
// proof, the acceptor the dialler's, and nothing reaches Raft.
func TestHandshakeWrongSecretRefused(t *testing.T) {
	a := newAuthPeer(t, testSecret, 2, 0)
	foreign := newAuthPeer(t, otherSecret, 2, 0)

	// Dialling side: the foreign acceptor cannot prove the secret.
	a.dialRefused(t, foreign.addr(), errBadProof, "dial to a coordinator of another secret")
	// Accepting side: a dialler of another secret (which goes on past the
	// acceptor's proof) is refused and closed.
	c := rawHandshake(t, a.addr(), otherSecret, nil)
	if !closedByPeer(c) {
		t.Fatal("connection of a dialler with another secret not closed")
	}
	a.waitRefused(t, 1)
	a.nothingReachesRaft(t, "a connection with another secret")
}

// rawHandshake dials addr and runs the dialling side by hand with key, going
// on to send its proof whatever the acceptor's (proof overrides it when set).
// It returns the connection and, through got, what it sent.
func rawHandshake(t *testing.T, addr raft.ServerAddress, secret string, proof func(dn, an, mac []byte) []byte) net.Conn {
	t.Helper()
	return rawHandshakeOn(t, dialPlain(t, addr), secret, proof)
}

// rawHandshakeOn is rawHandshake on the connection c.
func rawHandshakeOn(t *testing.T, c net.Conn, secret string, proof func(dn, an, mac []byte) []byte) net.Conn {
	t.Helper()
	k, _ := deriveAuthKey(secret)
	dn := bytes.Repeat([]byte{7}, nonceLen)
	if _, err := c.Write(append([]byte(authMagic), dn...)); err != nil {
		t.Fatal(err)
	}
	var ans [nonceLen + macLen]byte
	if _, err := io.ReadFull(c, ans[:]); err != nil {
		t.Fatalf("read answer: %v", err)
	}
	an, mac := ans[:nonceLen], ans[nonceLen:]
	p := k.proof(labelDialling, dn, an)
	if proof != nil {
		p = proof(dn, an, mac)
	}
	if _, err := c.Write(p); err != nil {
		t.Fatal(err)
	}
	return c
}

// A proof is good for its connection only: the acceptor's own proof sent back
// (reflected), or a dialler's proof recorded from an earlier connection with
// the same hello (replayed), is refused.
func TestHandshakeReflectedOrReplayedRefused(t *testing.T) {
	a := newAuthPeer(t, testSecret, 2, 0)

	// Reflected: whoever reaches the port gets the acceptor's proof; sending
	// it back as the dialler's proof fails (another direction label).
	c := rawHandshake(t, a.addr(), testSecret, func(_, _, mac []byte) []byte { return mac })
	if !closedByPeer(c) {
		t.Fatal("reflected proof: connection not closed")
	}
	a.waitRefused(t, 1)

	// Replayed: a good handshake, recorded…
	var recorded []byte
	good := rawHandshake(t, a.addr(), testSecret, func(dn, an, mac []byte) []byte {
		k, _ := deriveAuthKey(testSecret)
		recorded = k.proof(labelDialling, dn, an)
		return recorded
	})
	if in, ok := a.acceptOne(5 * time.Second); !ok {
		t.Fatal("the recorded handshake itself was not accepted")
	} else {
		in.Close()
	}
	good.Close()
	// …replayed with the same hello on a new connection: the acceptor's new
	// nonce makes it worthless.
	c = rawHandshake(t, a.addr(), otherSecret, func(_, _, _ []byte) []byte { return recorded })
	if !closedByPeer(c) {
		t.Fatal("replayed proof: connection not closed")
	}
	a.waitRefused(t, 2)
	a.nothingReachesRaft(t, "a replayed or reflected proof")

	// Dialling side: an acceptor replaying a recorded answer, or echoing the
	// dialler's nonce, is refused.
	k, _ := deriveAuthKey(testSecret)
	oldAn := bytes.Repeat([]byte{9}, nonceLen)
	oldMac := k.proof(labelAccepting, bytes.Repeat([]byte{7}, nonceLen), oldAn)
	for name, answer := range map[string]func(hello []byte) []byte{
		"replayed answer": func([]byte) []byte { return append(append([]byte{}, oldAn...), oldMac...) },
		"echoed nonce": func(hello []byte) []byte {
			dn := hello[len(authMagic):]
			return append(append([]byte{}, dn...), k.proof(labelAccepting, dn, dn)...)
		},
	} {
		ln := listenLoopback(t)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			hello := make([]byte, len(authMagic)+nonceLen)
			if _, err := io.ReadFull(c, hello); err == nil {
				_, _ = c.Write(answer(hello))
				_, _ = io.Copy(io.Discard, c)
			}
		}()
		if c, err := a.s.Dial(raft.ServerAddress(ln.Addr().String()), time.Second); err == nil {
			c.Close()
			t.Errorf("%s: the dialler took the connection", name)
		}
		ln.Close()
	}
}

// A silent peer holds its handshake for the deadline only, on either side.
func TestHandshakeSilentPeerTimesOut(t *testing.T) {
	a := newAuthPeer(t, testSecret, 2, 300*time.Millisecond)
	c := dialPlain(t, a.addr())
	start := time.Now()
	if !closedByPeer(c) {
		t.Fatal("a silent dialler was not closed")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("a silent dialler was closed after %v, want about the 300ms deadline", d)
	}
	a.waitRefused(t, 1)
	a.s.auth.mu.Lock()
	pending := len(a.s.auth.pending)
	a.s.auth.mu.Unlock()
	if pending != 0 {
		t.Fatalf("%d handshakes still held after the deadline", pending)
	}

	// One that sends the magic and stops is closed at the same deadline.
	c2 := dialPlain(t, a.addr())
	_, _ = c2.Write([]byte(authMagic[:3]))
	if !closedByPeer(c2) {
		t.Fatal("a dialler stalling in its hello was not closed")
	}

	// Dialling side: an acceptor that never answers.
	ln := listenLoopback(t)
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			_, _ = io.Copy(io.Discard, c)
		}
	}()
	start = time.Now()
	if c, err := a.s.Dial(raft.ServerAddress(ln.Addr().String()), time.Second); err == nil {
		c.Close()
		t.Fatal("dial to a silent acceptor succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("dial to a silent acceptor gave up after %v", d)
	}
}

// Below level 2 a legacy (no handshake) connection is taken, with its first
// byte given back to Raft; once the level reads 2 such connections are closed,
// new ones refused, and the requirement outlives a restart at level 1.
func TestLegacyConnectionByLevel(t *testing.T) {
	dir := t.TempDir()
	a := newAuthPeerIn(t, dir, testSecret, 1, 0)
	c := dialPlain(t, a.addr())
	msg := []byte{1, 'v', 'o', 't', 'e'} // rpcRequestVote's type byte first
	_, _ = c.Write(msg)
	in, ok := a.acceptOne(5 * time.Second)
	if !ok {
		t.Fatal("a legacy connection below level 2 was not taken")
	}
	readsExactly(t, in, msg)

	a.level.Store(2) // the leader raised the level; the gate reads it within a second
	if !closedByPeer(c) {
		t.Fatal("the legacy connection taken below level 2 stays open at level 2")
	}
	c2 := dialPlain(t, a.addr())
	_, _ = c2.Write(msg)
	if !closedByPeer(c2) {
		t.Fatal("a legacy connection at level 2 was not closed")
	}
	a.waitRefused(t, 1)
	a.nothingReachesRaft(t, "a legacy connection at level 2")
	if _, err := os.Stat(filepath.Join(dir, transportAuthFile)); err != nil {
		t.Fatalf("the requirement is not recorded: %v", err)
	}

	// Restarted on the same directory with the FSM at level 1 (a restored
	// backup of level 1): still required.
	_ = a.s.Close()
	b := newAuthPeerIn(t, dir, testSecret, 1, 0)
	c3 := dialPlain(t, b.addr())
	_, _ = c3.Write(msg)
	if !closedByPeer(c3) {
		t.Fatal("a legacy connection was taken after a restart of a member that had reached level 2")
	}
}

// Dialling below level 2 falls back to a legacy connection to a peer that
// does not speak the handshake (a release before it: it closes on the
// unknown first byte); at level 2 it does not.
func TestDialFallbackBelowLevel2(t *testing.T) {
	ln := listenLoopback(t)
	firsts := make(chan byte, 8)
	framework.AcceptEach(ln, func(c net.Conn) {
		defer c.Close()
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return
		}
		firsts <- b[0]
		if b[0] > 4 { // what hashicorp/raft does with an unknown rpc type
			return
		}
		_, _ = c.Write([]byte("ok"))
		_, _ = io.Copy(io.Discard, c)
	})
	old := raft.ServerAddress(ln.Addr().String())

	a := newAuthPeer(t, testSecret, 1, 0)
	c, err := a.s.Dial(old, time.Second)
	if err != nil {
		t.Fatalf("dial to a release before the handshake, below level 2: %v", err)
	}
	_, _ = c.Write([]byte{0})
	var ok [2]byte
	if _, err := io.ReadFull(c, ok[:]); err != nil {
		t.Fatalf("legacy connection after the fallback: %v", err)
	}
	c.Close()
	if f1, f2 := <-firsts, <-firsts; f1 != authMagic[0] || f2 != 0 {
		t.Fatalf("first bytes seen by the old peer: %q then %q, want the magic then the RPC", f1, f2)
	}
	// Remembered: the next dial goes without a handshake.
	c, err = a.s.Dial(old, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte{0})
	c.Close()
	if f := <-firsts; f != 0 {
		t.Fatalf("second dial to the old peer started with %q, want no handshake", f)
	}

	b := newAuthPeer(t, testSecret, 2, 0)
	b.dialRefused(t, old, errPeerGone, "dial at level 2 to a peer without the handshake")
}

// A member whose cluster runs level 2 with a secret: a foreign Raft client
// (hashicorp/raft's own NetworkTransport without the handshake, as a stray
// coordinator of another cluster or of a release before it would send)
// sends AppendEntries and RequestVote with a higher term. Both fail, the
// member's term and log do not change, and it keeps committing writes.
func TestForeignRaftClientRefused(t *testing.T) {
	n, err := Open(Config{ID: "auth", Dir: t.TempDir(), BindAddr: freeAddr(t), Bootstrap: true, ClusterSecret: testSecret,
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	leadAtLevel2(ctx, t, n)
	waitFor(t, 5*time.Second, "the handshake is required after the level reached 2", n.transportAuthRequired)
	term, last := n.Raft.CurrentTerm(), n.Raft.LastIndex()

	foreign, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Close()
	var ae raft.AppendEntriesResponse
	err = foreign.AppendEntries("foreign", n.Addr, &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("foreign"), Addr: []byte(foreign.LocalAddr())},
		Term:      term + 100, PrevLogEntry: 0, PrevLogTerm: 0, LeaderCommitIndex: last + 10,
		Entries: []*raft.Log{{Index: 1, Term: term + 100, Type: raft.LogCommand, Data: []byte("foreign")}},
	}, &ae)
	if err == nil {
		t.Fatalf("a foreign AppendEntries was answered: %+v", ae)
	}
	var rv raft.RequestVoteResponse
	if err := foreign.RequestVote("foreign", n.Addr, &raft.RequestVoteRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("foreign"), Addr: []byte(foreign.LocalAddr())},
		Term:      term + 100, LastLogIndex: last + 100, LastLogTerm: term + 100,
	}, &rv); err == nil {
		t.Fatalf("a foreign RequestVote was answered: %+v", rv)
	}
	if got := n.Raft.CurrentTerm(); got != term {
		t.Fatalf("term moved from %d to %d after the foreign RPCs", term, got)
	}
	if !n.IsLeader() {
		t.Fatal("the member lost its leadership to the foreign RPCs")
	}
	res, err := n.Apply(ctx, levelEnv(t))
	if err != nil || res == nil {
		t.Fatalf("write after the foreign RPCs: %v", err)
	}
	if got := n.Raft.LastIndex(); got <= last {
		t.Fatalf("last index %d after a write, was %d", got, last)
	}
}

// levelEnv is the command raising the cluster's semantics level to 2.
func levelEnv(t *testing.T) *fsm.Envelope {
	t.Helper()
	env, err := fsm.NewEnvelope(fsm.CmdClusterLevel, time.Now(), fsm.ClusterLevel{Level: 2})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// scriptedPeer is a peer's side of a handshake that sends data and records
// what it is sent.
func scriptedPeer(data []byte) (io.ReadWriter, *bytes.Buffer) {
	out := new(bytes.Buffer)
	return struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(data), out}, out
}

// FuzzAcceptHandshake feeds the accepting side arbitrary bytes as the
// dialler's: it must never take them (the proof needs the key and the
// acceptor's fresh nonce) nor panic, and must write at most its one answer.
func FuzzAcceptHandshake(f *testing.F) {
	k, _ := deriveAuthKey(testSecret)
	f.Add([]byte(authMagic[1:] + string(bytes.Repeat([]byte{1}, nonceLen+macLen))))
	f.Add([]byte("PRAFT\x00\x02"))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 200))
	f.Fuzz(func(t *testing.T, data []byte) {
		rw, out := scriptedPeer(data)
		if err := acceptHandshake(rw, &k); err == nil {
			t.Fatalf("accepted %x", data)
		}
		if out.Len() != 0 && out.Len() != nonceLen+macLen {
			t.Fatalf("wrote %d bytes, want none or one answer", out.Len())
		}
	})
}

// FuzzDialHandshake feeds the dialling side arbitrary bytes as the acceptor's
// answer: never taken (the proof covers the dialler's fresh nonce), no panic.
func FuzzDialHandshake(f *testing.F) {
	k, _ := deriveAuthKey(testSecret)
	f.Add(bytes.Repeat([]byte{2}, nonceLen+macLen))
	f.Add([]byte{})
	f.Add([]byte("short"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rw, out := scriptedPeer(data)
		if err := dialHandshake(rw, &k); err == nil {
			t.Fatalf("took answer %x", data)
		}
		if out.Len() != len(authMagic)+nonceLen {
			t.Fatalf("wrote %d bytes, want the hello only", out.Len())
		}
	})
}

// openMember opens a member with the test secret and short timeouts.
func openMember(t *testing.T, id, dir, addr string, bootstrap bool) *Node {
	t.Helper()
	n, err := Open(Config{ID: id, Dir: dir, BindAddr: addr, Bootstrap: bootstrap, ClusterSecret: testSecret,
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLeaseTimeout: 150 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// leadAtLevel2 waits for n to lead and applies semantics level 2 through it.
func leadAtLevel2(ctx context.Context, t *testing.T, n *Node) {
	t.Helper()
	waitLeads(t, n)
	if _, err := n.Apply(ctx, levelEnv(t)); err != nil {
		t.Fatal(err)
	}
}

// untilLeads makes want the leader of the two-member cluster {want, other}:
// a transfer whenever other leads, until want leads (an election want wins
// does as well: both take its dials). A two-member cluster loses its leader
// whenever one heartbeat round misses the 150 ms lease, as on a loaded CI, so
// a single transfer may meet a member that no longer leads, and a member
// restarting always takes the leadership away.
func untilLeads(t *testing.T, want, other *Node) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(30 * time.Second); !want.IsLeader(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s does not lead within 30 s (last transfer from %s: %v)", want.ID, other.ID, err)
		}
		if other.IsLeader() {
			err = other.TransferLeadership(want.ID)
		}
	}
}

// commitAs commits a write (the level command) through n as leader
// (untilLeads), again after losing the leadership on the way, for up to 30 s.
func commitAs(ctx context.Context, t *testing.T, n, other *Node) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		untilLeads(t, n, other)
		_, err := n.Apply(ctx, levelEnv(t))
		if err == nil {
			return
		}
		if !errors.Is(err, ErrNotLeader) || time.Now().After(deadline) {
			t.Fatalf("write on %s as leader: %v", n.ID, err)
		}
	}
}

// waitFor polls cond for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	framework.WaitFor(t, what, d, 20*time.Millisecond, cond)
}

// A new member joining a cluster already at level 2 (empty data directory,
// so level 1 and no record): it takes the leader's handshake, catches up,
// requires the handshake itself within a second of applying the level, and
// its own dials are taken (it wins a leadership transfer and commits). Then
// it restarts from its data directory and requires the handshake at once.
func TestJoinAndRestartAtLevel2(t *testing.T) {
	a := openMember(t, "a", t.TempDir(), freeAddr(t), true)
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leadAtLevel2(ctx, t, a)
	waitFor(t, 5*time.Second, "a requires the handshake", a.transportAuthRequired)

	bDir, bAddr := t.TempDir(), freeAddr(t)
	b := openMember(t, "b", bDir, bAddr, false)
	if b.transportAuthRequired() {
		t.Fatal("a fresh member requires the handshake before it knows its cluster's level")
	}
	if err := a.Join("b", string(b.Addr)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "b applies level 2 and requires the handshake", func() bool {
		return b.FSM.ClusterLevel() == 2 && b.transportAuthRequired()
	})
	// Leadership to the joined member (its dials must be taken), and a write
	// it commits as leader.
	commitAs(ctx, t, b, a)
	untilLeads(t, a, b)

	// Restart from its data directory: required from the first connection.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openMember(t, "b", bDir, bAddr, false)
	defer b.Close()
	if !b.transportAuthRequired() {
		t.Fatal("a member restarted on the data directory of a level-2 cluster takes connections without the handshake")
	}
	before := b.Raft.AppliedIndex()
	commitAs(ctx, t, a, b) // a's commit takes b's answer: two members
	waitFor(t, 10*time.Second, "the restarted member is replicated to again", func() bool { return b.Raft.AppliedIndex() > before })
	if a.stream.auth.refused.Load()+b.stream.auth.refused.Load() != 0 {
		t.Fatalf("members of one cluster refused each other: a %d, b %d", a.stream.auth.refused.Load(), b.stream.auth.refused.Load())
	}
}

// Connections that stall in their handshake (the hello sent, the proof never)
// cannot keep a member out: at the caps on handshakes in progress (in all,
// and from the member's own host) a member's dial still passes at once, the
// oldest stalled handshake closed to make room, and no more than the cap are
// held.
func TestStalledHandshakesDoNotLockOutMembers(t *testing.T) {
	a := newAuthPeer(t, testSecret, 2, 0) // the 5 s deadline: the stalls outlast the test
	b := newAuthPeer(t, testSecret, 2, 0)
	stall, pending, waitPending := stallHandshakes(t, a, closedAtEnd(t))
	memberDials := func(what string) {
		t.Helper()
		start := time.Now()
		c, err := b.s.Dial(a.addr(), time.Second)
		if err != nil {
			t.Fatalf("%s: a member's dial refused: %v", what, err)
		}
		defer c.Close()
		in, ok := a.acceptOne(5 * time.Second)
		if !ok {
			t.Fatalf("%s: the member's connection was not handed to Raft", what)
		}
		in.Close()
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("%s: the member's dial took %v", what, d)
		}
		if n := pending(); n > maxHandshakes {
			t.Fatalf("%s: %d handshakes held, cap %d", what, n, maxHandshakes)
		}
	}
	// Every slot held from four other hosts (the member dials from 127.0.0.1).
	for _, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		stall(ip, maxHandshakesPerHost)
	}
	waitPending(maxHandshakes)
	memberDials("every handshake slot stalled")
	// The member's own host's slots held too.
	stall("127.0.0.1", maxHandshakesPerHost)
	waitPending(maxHandshakes)
	memberDials("its host's slots stalled")
}

// stallHandshakes returns stall (n connections to a from the address from
// that send the hello and stop, added to *stalled), pending (a's handshakes
// in progress) and waitPending (until they are want).
func stallHandshakes(t *testing.T, a *authPeer, stalled *[]net.Conn) (func(string, int), func() int, func(int)) {
	stall := func(from string, n int) {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		hello := append([]byte(authMagic), make([]byte, nonceLen)...)
		for range n {
			c, err := d.Dial("tcp", string(a.addr()))
			if err != nil {
				t.Fatalf("stall from %s: %v", from, err)
			}
			if _, err := c.Write(hello); err != nil {
				t.Fatal(err)
			}
			*stalled = append(*stalled, c)
		}
	}
	pending := func() int {
		a.s.auth.mu.Lock()
		defer a.s.auth.mu.Unlock()
		return len(a.s.auth.pending)
	}
	waitPending := func(want int) {
		t.Helper()
		waitFor(t, 5*time.Second, "stalled handshakes in progress", func() bool { return pending() == want })
	}
	return stall, pending, waitPending
}

// A member's handshake in progress (its host's only one, and the oldest)
// is not the one closed when stalled handshakes from other hosts pass the
// cap: those of the busiest host make room.
func TestMembersHandshakeOutlastsAFlood(t *testing.T) {
	a := newAuthPeer(t, testSecret, 2, 0)
	stall, _, waitPending := stallHandshakes(t, a, closedAtEnd(t))
	k, _ := deriveAuthKey(testSecret)
	c := rawHandshake(t, a.addr(), testSecret, func(dn, an, _ []byte) []byte {
		// Between the acceptor's answer and the member's proof: 128
		// stalled handshakes from four other hosts, one over the cap.
		for _, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"} {
			stall(ip, maxHandshakesPerHost)
		}
		waitPending(maxHandshakes)
		return k.proof(labelDialling, dn, an)
	})
	a.memberGetsThrough(t, c, "the flood")
}

// memberGetsThrough writes an RPC on c, a member's connection past its
// proof, and checks that Raft reads it: its handshake was not closed to make
// room for flood.
func (p *authPeer) memberGetsThrough(t *testing.T, c net.Conn, flood string) {
	t.Helper()
	msg := []byte{1, 'r', 'p', 'c'}
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("the member's connection was closed: %v", err)
	}
	in, ok := p.acceptOne(5 * time.Second)
	if !ok {
		t.Fatalf("the member's handshake was closed to make room for %s", flood)
	}
	defer in.Close()
	readsExactly(t, in, msg)
}

// A member that reached level 2 (its record) restarted with neither the
// cluster secret nor TLS would take anyone's Raft messages, its peers
// refusing its own: it does not start, and says how to; with the secret it
// starts requiring the handshake.
func TestRestartWithoutSecretRefused(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	a := openMember(t, "a", dir, addr, true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leadAtLevel2(ctx, t, a)
	waitFor(t, 5*time.Second, "a requires the handshake", a.transportAuthRequired)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	n, err := Open(Config{ID: "a", Dir: dir, BindAddr: addr,
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLeaseTimeout: 150 * time.Millisecond})
	if err == nil {
		defer n.Close()
		t.Fatalf("restarted without the cluster secret: started, Raft port guarded by %q", n.TransportAuth())
	}
	for _, want := range []string{transportAuthFile, "--cluster-secret-file", "--raft-tls-"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal %q does not name %q", err, want)
		}
	}
	a = openMember(t, "a", dir, addr, true) // the port and the stores were released
	defer a.Close()
	if got := a.TransportAuth(); got != "cluster-secret" {
		t.Fatalf("restarted with the secret: %q", got)
	}
}

// The embedded default (`make run`: one coordinator, no cluster secret)
// reaches level 2 like any cluster, but its port never required the
// handshake, so nothing is recorded and it starts again on the same data
// directory, every time.
func TestRestartAtLevel2NeverSecretStarts(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	open := func() *Node {
		t.Helper()
		n, err := Open(Config{ID: "a", Dir: dir, BindAddr: addr, Bootstrap: true,
			HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, LeaderLeaseTimeout: 150 * time.Millisecond})
		if err != nil {
			t.Fatalf("a single coordinator without a cluster secret, started again at level 2: %v", err)
		}
		return n
	}
	a := open()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leadAtLevel2(ctx, t, a)
	if got := a.FSM.ClusterLevel(); got != 2 {
		t.Fatalf("level %d, want 2", got)
	}
	for i := 0; i < 2; i++ {
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		a = open()
		waitLeads(t, a)
		if got := a.TransportAuth(); got != "none" {
			t.Fatalf("restart %d: Raft port guarded by %q, want none", i+1, got)
		}
	}
	a.Close()
}
