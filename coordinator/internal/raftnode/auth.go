package raftnode

// The Raft transport authenticated by the cluster secret.
//
// Without --raft-tls-*, hashicorp/raft's NetworkTransport is plain TCP: any
// process that reaches a coordinator's Raft port can send it AppendEntries,
// RequestVote, InstallSnapshot or TimeoutNow and be served (a stray
// coordinator of another cluster dialling a port this one now listens on made
// it take the other cluster's log). With a cluster secret, every Raft
// connection therefore starts with a mutual challenge–response, run by the
// stream layer before hashicorp/raft sees the connection:
//
//	dialler → acceptor  "HPRAFT\x00\x01" ‖ nonce_d                 (8 + 32 bytes)
//	acceptor → dialler  nonce_a ‖ HMAC(K, "accepting" ‖ magic ‖ nonce_d ‖ nonce_a)   (32 + 32)
//	dialler → acceptor  HMAC(K, "dialling" ‖ magic ‖ nonce_d ‖ nonce_a)              (32)
//
// K = HKDF-SHA256(cluster secret, salt, info): neither the secret nor K is on
// the wire, only the two MACs, each over both sides' fresh random nonces, so
// a recorded answer is worth nothing on another connection; the direction
// labels make a proof the acceptor gives useless as a dialler's proof (an
// attacker who reflects the acceptor's own proof back is refused), and a
// dialler refuses an acceptor that echoes its nonce. Both compare MACs in
// constant time (hmac.Equal). The whole handshake has one deadline, so a
// silent or slow peer holds its goroutine and slot for at most that long; the
// accepting side also caps the handshakes in progress (in all and per remote
// host: an IPv4 address, an IPv6 /64), a connection past a cap closing the
// oldest one of the busiest host
// (connections that stall in their handshake cannot keep a member's out). A refused peer is closed and logged (rate-limited, naming the remote
// address, never the secret) and nothing it sent reaches Raft.
//
// The construction is written here because no library fits: TLS is what
// --raft-tls-* is for and crypto/tls has no pre-shared-key mode, SCRAM/SPAKE2
// packages solve password storage or low-entropy secrets this does not have.
// The pieces are the standard ones (crypto/hkdf, crypto/hmac, crypto/rand).
//
// What it does not do: the rest of the connection is neither encrypted nor
// integrity-protected. It proves who opened the connection, which stops
// anyone who merely reaches the port (a stray or misconfigured coordinator,
// a scanner, a process on the host); an attacker on the network path who can
// rewrite the TCP stream after the handshake, or who answers at a member's
// address and relays the handshake to another member, needs --raft-tls-*
// (mutual TLS), which protects the whole stream.
//
// Rolling upgrades. A release before this one does not speak the handshake:
// its NetworkTransport reads a connection's first byte as the RPC type
// (0–4 in hashicorp/raft v1.7: AppendEntries, RequestVote, InstallSnapshot,
// TimeoutNow, RequestPreVote) and closes a connection whose first byte is
// another ("unknown rpc type 72" for the magic's 'H'). The magic starts with
// a byte no RPC starts with, so the accepting side tells a handshake from a
// legacy connection by the first byte:
//   - accepting: a handshake is always taken; a legacy connection only while
//     this member's cluster semantics level (fsm.ClusterLevel) is below 2.
//     Once it reads level 2 (every member runs this release, see fsm/level.go)
//     it requires the handshake, closes the legacy connections it took
//     before, and records so in <raft dir>/transport-auth: the requirement
//     never falls back, also across a restart or after a restored backup of
//     level 1 lowered the FSM's level until the leader raises it again.
//   - dialling: once the member requires the handshake (level 2 read, or the
//     record), it sends the handshake and refuses a peer that does not prove
//     the secret. Below that it sends the handshake too and falls back to a
//     legacy connection only when the peer ends the connection without any
//     answer, which is what a release before this one does; it then dials
//     that address without a handshake for a minute before trying again, so
//     an old member logs its "unknown rpc type" at most about once a minute
//     per new member. This is never weaker than dialling legacy outright (an
//     acceptor below level 2 would take that anyway), a peer that answers
//     with a wrong proof is refused, not fallen back from, and it keeps a
//     member whose fsm.db has not yet applied the level raise able to reach
//     members that already require the handshake.
//
// The cases:
//   - Rolling upgrade (README): old members send and take legacy
//     connections; upgraded ones below level 2 take both and reach old
//     members through the fallback; when the level rises each member switches
//     within a second of applying it (the leader applies it first and its
//     followers, still below 2, take its handshake; a follower that has not
//     applied it yet still reaches the others by handshake).
//   - A new node joining a level-2 cluster: its data directory is empty, so
//     its level is 1 and it has no record. It takes the leader's handshake
//     connections (always taken) and, until it has applied the snapshot or
//     log that carries level 2 (the first thing the leader sends it), legacy
//     ones too: that window is the one gap, as small as its catching up. Its
//     own dials carry the handshake, which the members take.
//   - A node restarting from its data directory: fsm.db holds the level it
//     had applied and transport-auth records that it reached 2, so it
//     requires the handshake from its first connection, as its peers do. A
//     node stopped before it applied the raise restarts below 2 and behaves
//     as the joining node: its peers' handshakes are taken, its own dials
//     carry the handshake.
//   - A cluster without a secret (and without TLS) speaks plain Raft as
//     before, and a coordinator acting as an older release
//     (--test-max-semantics-level=1) neither sends nor takes the handshake,
//     as such a release.

import (
	"bytes"
	"cmp"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hostplane/hostplane/internal/atomicfile"
)

const (
	// authMagic starts a handshake. Its first byte is no hashicorp/raft RPC
	// type (0–4) and no TLS record type (20–23).
	authMagic = "HPRAFT\x00\x01"
	nonceLen  = 32
	macLen    = sha256.Size

	labelAccepting = "hostplane raft handshake: accepting side\x00"
	labelDialling  = "hostplane raft handshake: dialling side\x00"

	// handshakeTimeout bounds a whole handshake (a round trip and a half).
	handshakeTimeout = 5 * time.Second
	// maxHandshakes caps the handshakes in progress on the accepting side,
	// maxHandshakesPerHost those from one remote host. A connection past a
	// cap closes the oldest handshake in progress of its host when that
	// host's cap is reached, else of the host with the most in progress: a
	// member's handshake takes a round trip and is its host's only one, so
	// connections that stall in theirs cannot keep the members out.
	maxHandshakes        = 128
	maxHandshakesPerHost = 32
	// legacyRetry is how long a dialler below level 2 dials an address
	// without a handshake after the peer there ended one unanswered.
	legacyRetry = time.Minute
	// refusalLogEvery rate-limits the refusal lines.
	refusalLogEvery = 5 * time.Second
	// transportAuthFile records, in the Raft directory, that this member
	// requires the handshake.
	transportAuthFile = "transport-auth"
)

// levelRaftAuth is the cluster semantics level (fsm/level.go) from which a
// member requires the handshake: level 2, the first release that speaks it.
const levelRaftAuth uint16 = 2

// authKey is the handshake key derived from the cluster secret.
type authKey [32]byte

// deriveAuthKey derives the handshake key from the cluster secret (HKDF-SHA256
// with a fixed salt and an info string naming the use, so the key is of no use
// anywhere else the secret is).
func deriveAuthKey(secret string) (authKey, error) {
	var k authKey
	if secret == "" {
		return k, errors.New("raft transport: empty cluster secret")
	}
	raw, err := hkdf.Key(sha256.New, []byte(secret), []byte("hostplane raft transport"), "cluster-secret handshake v1", len(k))
	if err != nil {
		return k, err
	}
	copy(k[:], raw)
	return k, nil
}

// proof is one side's MAC over both nonces.
func (k *authKey) proof(label string, dialNonce, acceptNonce []byte) []byte {
	m := hmac.New(sha256.New, k[:])
	m.Write([]byte(label))
	m.Write([]byte(authMagic))
	m.Write(dialNonce)
	m.Write(acceptNonce)
	return m.Sum(nil)
}

var (
	// errPeerGone: the peer ended the connection before answering the
	// handshake (a release before it, or a coordinator without a secret).
	errPeerGone = errors.New("the peer closed the connection without answering the handshake (a coordinator without the cluster secret, or of a release before the handshake)")
	// errBadProof: the peer answered without knowing the cluster secret.
	errBadProof = errors.New("the peer's handshake proof does not match this cluster's secret (another cluster's coordinator, or a different --cluster-secret?)")
)

// dialHandshake runs the dialling side over rw: it sends the magic and its
// nonce, checks the acceptor's proof and sends its own.
func dialHandshake(rw io.ReadWriter, k *authKey) error {
	var hello [len(authMagic) + nonceLen]byte
	copy(hello[:], authMagic)
	dn := hello[len(authMagic):]
	_, _ = rand.Read(dn)
	if _, err := rw.Write(hello[:]); err != nil {
		return fmt.Errorf("send handshake: %w", err)
	}
	var reply [nonceLen + macLen]byte
	if n, err := io.ReadFull(rw, reply[:]); err != nil {
		if n == 0 && peerEnded(err) {
			return errPeerGone
		}
		return fmt.Errorf("read handshake answer: %w", err)
	}
	an, mac := reply[:nonceLen], reply[nonceLen:]
	if bytes.Equal(an, dn) {
		return errors.New("the peer echoed this side's handshake nonce")
	}
	if !hmac.Equal(mac, k.proof(labelAccepting, dn, an)) {
		return errBadProof
	}
	if _, err := rw.Write(k.proof(labelDialling, dn, an)); err != nil {
		return fmt.Errorf("send handshake proof: %w", err)
	}
	return nil
}

// acceptHandshake runs the accepting side over rw once the magic's first byte
// was read: the rest of the magic and the dialler's nonce, its answer with its
// own nonce and proof, then the dialler's proof.
func acceptHandshake(rw io.ReadWriter, k *authKey) error {
	var hello [len(authMagic) - 1 + nonceLen]byte
	if _, err := io.ReadFull(rw, hello[:]); err != nil {
		return fmt.Errorf("read handshake: %w", err)
	}
	if string(hello[:len(authMagic)-1]) != authMagic[1:] {
		return errors.New("not a hostplane Raft handshake (or another version of it)")
	}
	dn := hello[len(authMagic)-1:]
	var answer [nonceLen + macLen]byte
	an := answer[:nonceLen]
	_, _ = rand.Read(an)
	copy(answer[nonceLen:], k.proof(labelAccepting, dn, an))
	if _, err := rw.Write(answer[:]); err != nil {
		return fmt.Errorf("send handshake answer: %w", err)
	}
	var mac [macLen]byte
	if _, err := io.ReadFull(rw, mac[:]); err != nil {
		return fmt.Errorf("read handshake proof: %w", err)
	}
	if !hmac.Equal(mac[:], k.proof(labelDialling, dn, an)) {
		return errBadProof
	}
	return nil
}

// peerEnded reports whether err is the peer ending the connection (as a
// hashicorp/raft transport does on a first byte it does not know).
func peerEnded(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// authGate authenticates the Raft connections of one member's stream layer.
type authGate struct {
	key     authKey
	ln      net.Listener
	level   func() uint16 // the FSM's cluster semantics level
	record  string        // path of transportAuthFile
	log     *slog.Logger
	timeout time.Duration

	required atomic.Bool // the handshake is required (level 2 read, or recorded)
	refused  atomic.Int64

	conns     chan net.Conn // authenticated (or legacy) connections for Accept
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	mu      sync.Mutex
	pending map[net.Conn]pendingConn // connections in their handshake
	perHost map[string]int
	evicted map[net.Conn]struct{} // closed to make room for a newer handshake
	legacy  map[*legacyConn]struct{}
	oldPeer map[raft.ServerAddress]time.Time // dial without a handshake until

	logMu      sync.Mutex
	lastLog    time.Time
	suppressed int
}

// pendingConn is a connection in its handshake: its remote host and when it
// was accepted.
type pendingConn struct {
	host  string
	since time.Time
}

// newAuthGate starts authenticating the connections ln accepts. level is the
// FSM's cluster semantics level; dir the Raft directory (for the record);
// timeout bounds a handshake (0: handshakeTimeout).
func newAuthGate(secret string, ln net.Listener, level func() uint16, dir string, timeout time.Duration, lg *slog.Logger) (*authGate, error) {
	k, err := deriveAuthKey(secret)
	if err != nil {
		return nil, err
	}
	g := &authGate{
		key: k, ln: ln, level: level, log: lg, timeout: cmp.Or(timeout, handshakeTimeout),
		conns: make(chan net.Conn), done: make(chan struct{}),
		pending: map[net.Conn]pendingConn{}, perHost: map[string]int{}, evicted: map[net.Conn]struct{}{}, legacy: map[*legacyConn]struct{}{},
		oldPeer: map[raft.ServerAddress]time.Time{},
	}
	if dir != "" {
		g.record = filepath.Join(dir, transportAuthFile)
		if _, err := os.Stat(g.record); err == nil {
			g.required.Store(true)
		}
	}
	g.refresh()
	g.wg.Add(2)
	go func() { defer g.wg.Done(); g.acceptLoop() }()
	go func() { defer g.wg.Done(); g.watchLevel() }()
	return g, nil
}

// refresh reads the cluster's level and requires the handshake from
// levelRaftAuth on.
func (g *authGate) refresh() {
	if g.required.Load() || g.level == nil || g.level() < levelRaftAuth {
		return
	}
	g.require()
}

// require makes the handshake required from now on: it is recorded in the
// Raft directory and the legacy connections taken before are closed.
func (g *authGate) require() {
	if g.required.Swap(true) {
		return
	}
	if g.record != "" {
		if err := recordRequired(g.record); err != nil {
			g.log.Warn("recording that Raft connections are authenticated failed (the FSM's level still says so)", "path", g.record, "err", err)
		}
	}
	g.mu.Lock()
	old := make([]*legacyConn, 0, len(g.legacy))
	for c := range g.legacy {
		old = append(old, c)
	}
	g.mu.Unlock()
	for _, c := range old {
		_ = c.Close()
	}
	g.log.Info("the cluster runs semantics level 2: Raft connections must prove the cluster secret from now on", "legacy_connections_closed", len(old))
}

// watchLevel refreshes once a second until the handshake is required.
func (g *authGate) watchLevel() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for !g.required.Load() {
		select {
		case <-g.done:
			return
		case <-t.C:
			g.refresh()
		}
	}
}

// acceptLoop hands each accepted connection to a handshake of its own, within
// the caps on handshakes in progress.
func (g *authGate) acceptLoop() {
	var delay time.Duration
	for {
		c, err := g.ln.Accept()
		if err != nil {
			select {
			case <-g.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			g.log.Warn("raft transport: accept failed", "err", err)
			select {
			case <-g.done:
				return
			case <-time.After(delay):
			}
			continue
		}
		delay = 0
		host := remoteHost(c)
		g.mu.Lock()
		var evict []net.Conn
		if g.perHost[host] >= maxHandshakesPerHost {
			evict = append(evict, g.evictOldestLocked(host))
		}
		if len(g.pending) >= maxHandshakes {
			evict = append(evict, g.evictOldestLocked(g.busiestHostLocked()))
		}
		g.pending[c] = pendingConn{host: host, since: time.Now()}
		g.perHost[host]++
		g.mu.Unlock()
		for _, old := range evict {
			if old != nil {
				_ = old.Close() // its handshake fails and refuses it
			}
		}
		g.wg.Add(1)
		go func() { defer g.wg.Done(); g.handle(c) }()
	}
}

// busiestHostLocked is the remote host with the most handshakes in
// progress. g.mu is held.
func (g *authGate) busiestHostLocked() string {
	var busiest string
	for h, n := range g.perHost {
		if n > g.perHost[busiest] {
			busiest = h
		}
	}
	return busiest
}

// evictOldestLocked takes host's oldest handshake in progress out of the
// pending ones, to be closed by the caller; its handle refuses it as
// evicted. g.mu is held.
func (g *authGate) evictOldestLocked(host string) net.Conn {
	var oldest net.Conn
	var since time.Time
	for c, p := range g.pending {
		if p.host == host && (oldest == nil || p.since.Before(since)) {
			oldest, since = c, p.since
		}
	}
	if oldest != nil {
		g.releaseLocked(oldest)
		g.evicted[oldest] = struct{}{}
	}
	return oldest
}

// releaseLocked frees c's handshake slot. g.mu is held.
func (g *authGate) releaseLocked(c net.Conn) {
	if p, ok := g.pending[c]; ok {
		delete(g.pending, c)
		if g.perHost[p.host]--; g.perHost[p.host] <= 0 {
			delete(g.perHost, p.host)
		}
	}
}

// remoteHost is the remote host whose handshakes in progress c counts
// towards: its IPv4 address, or its IPv6 address's /64 (one site's
// network: whoever holds one address there holds 2^64 of them, so a host
// per address would give a flood from it as many hosts as it likes and
// make the busiest host, whose handshakes make room, anyone's).
func remoteHost(c net.Conn) string {
	a := c.RemoteAddr().String()
	ap, err := netip.ParseAddrPort(a)
	if err != nil {
		if h, _, err := net.SplitHostPort(a); err == nil {
			return h
		}
		return a
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.String()
		}
	}
	return ip.String()
}

// handle runs the accepting side of one connection and hands it to Accept.
func (g *authGate) handle(c net.Conn) {
	release := func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.releaseLocked(c)
		_, evicted := g.evicted[c]
		delete(g.evicted, c)
		return evicted
	}
	// fail refuses c (as evicted when a newer handshake took its slot).
	fail := func(why string) {
		if release() {
			why = "closed to make room: too many Raft handshakes in progress"
		}
		g.refuse(c, why)
	}
	_ = c.SetDeadline(time.Now().Add(g.timeout))
	var first [1]byte
	if _, err := io.ReadFull(c, first[:]); err != nil {
		fail("nothing received within the handshake deadline: " + err.Error())
		return
	}
	var out net.Conn
	if first[0] == authMagic[0] {
		if err := acceptHandshake(c, &g.key); err != nil {
			fail("handshake failed: " + err.Error())
			return
		}
		out = c
	} else {
		lc := &legacyConn{Conn: c, first: first[0], gate: g}
		g.mu.Lock()
		ok := !g.required.Load()
		if ok {
			g.legacy[lc] = struct{}{}
		}
		g.mu.Unlock()
		if !ok {
			fail("a Raft connection without the cluster-secret handshake (the cluster runs semantics level 2: every member must prove the secret)")
			return
		}
		out = lc
	}
	// Its handshake is over: its slot is free while Raft takes it.
	if release() {
		// Closed to make room just as its handshake passed.
		g.refuse(out, "closed to make room: too many Raft handshakes in progress")
		return
	}
	_ = c.SetDeadline(time.Time{})
	select {
	case g.conns <- out:
	case <-g.done:
		_ = out.Close()
	}
}

// refuse closes a connection and logs it, at most one line per
// refusalLogEvery (counting the ones in between).
func (g *authGate) refuse(c net.Conn, why string) {
	_ = c.Close()
	g.refused.Add(1)
	g.logMu.Lock()
	now := time.Now()
	if !g.lastLog.IsZero() && now.Sub(g.lastLog) < refusalLogEvery {
		g.suppressed++
		g.logMu.Unlock()
		return
	}
	n := g.suppressed
	g.lastLog, g.suppressed = now, 0
	g.logMu.Unlock()
	g.log.Warn("refused a Raft connection", "remote", c.RemoteAddr().String(), "reason", why, "refused_unlogged_before", n)
}

// accept returns the next authenticated (or, below level 2, legacy) connection.
func (g *authGate) accept() (net.Conn, error) {
	select {
	case c := <-g.conns:
		return c, nil
	case <-g.done:
		return nil, net.ErrClosed
	}
}

// dial runs the dialling side on a fresh connection to addr (see the package
// comment above for when it falls back to a legacy connection).
func (g *authGate) dial(addr raft.ServerAddress, redial func() (net.Conn, error)) (net.Conn, error) {
	required := g.required.Load()
	if !required {
		g.mu.Lock()
		until, old := g.oldPeer[addr]
		if old && time.Now().After(until) {
			delete(g.oldPeer, addr)
			old = false
		}
		g.mu.Unlock()
		if old {
			return redial()
		}
	}
	c, err := redial()
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(g.timeout))
	err = dialHandshake(c, &g.key)
	if err == nil {
		_ = c.SetDeadline(time.Time{})
		return c, nil
	}
	_ = c.Close()
	if errors.Is(err, errPeerGone) && !g.required.Load() {
		g.mu.Lock()
		g.oldPeer[addr] = time.Now().Add(legacyRetry)
		g.mu.Unlock()
		g.log.Info("a Raft peer does not speak the cluster-secret handshake: dialling it without one while the cluster is below semantics level 2", "peer", string(addr))
		return redial()
	}
	return nil, fmt.Errorf("raft handshake with %s: %w", addr, err)
}

// close stops the gate: no more connections are handed out and those in their
// handshake are closed. The listener is closed by the caller.
func (g *authGate) close() {
	g.closeOnce.Do(func() {
		close(g.done)
		g.mu.Lock()
		for c := range g.pending {
			_ = c.Close()
		}
		g.mu.Unlock()
	})
}

// wait waits for the gate's goroutines (after close and the listener's Close).
func (g *authGate) wait() { g.wg.Wait() }

// legacyConn is a connection taken without a handshake: the first byte read
// to tell it from one is given back, and it is closed when the handshake
// becomes required.
type legacyConn struct {
	net.Conn
	first    byte
	sent     bool
	gate     *authGate
	closeOne sync.Once
}

func (c *legacyConn) Read(p []byte) (int, error) {
	if !c.sent && len(p) > 0 {
		c.sent = true
		p[0] = c.first
		return 1, nil
	}
	return c.Conn.Read(p)
}

func (c *legacyConn) Close() error {
	c.closeOne.Do(func() {
		c.gate.mu.Lock()
		delete(c.gate.legacy, c)
		c.gate.mu.Unlock()
	})
	return c.Conn.Close()
}

// recordRequired writes the record that the handshake is required, durably:
// atomicfile's temporary file, fsync and rename, then the directory fsynced
// so the rename outlives a crash.
func recordRequired(path string) error {
	if err := atomicfile.Write(path, []byte("the cluster reached semantics level 2: Raft connections must prove the cluster secret\n"), 0o600); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}
