// Package raftnode runs one coordinator's Raft member: the log and stable store in
// raft-boltdb, file snapshots, a TCP (optionally mutual-TLS) transport, and the FSM.
package raftnode

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Raft member.
type Config struct {
	ID            string
	Dir           string // raft-wal/, snapshots/, fsm.db live here
	BindAddr      string // host:port for Raft traffic
	AdvertiseAddr string // what peers dial; defaults to the bound address
	Bootstrap     bool   // form a single-node cluster if there is no state yet
	TLS           *tls.Config
	// ClusterSecret, without TLS, authenticates every Raft connection by a
	// handshake proving it (auth.go). Empty and no TLS: plain Raft, open to
	// whoever reaches BindAddr.
	ClusterSecret string

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	SnapshotThreshold  uint64
	SnapshotInterval   time.Duration
	TrailingLogs       uint64
	MaxAppendEntries   int

	// MaxLevel, when set below fsm.MaxLevel, makes this node apply semantics
	// levels up to it only, as an older release would (rolling-upgrade tests).
	MaxLevel uint16

	Logger *slog.Logger
}

// Node is a running Raft member.
type Node struct {
	Raft     *raft.Raft
	FSM      *fsm.FSM
	gate     *fsmGate // FSM as Raft calls it, shut by Close
	ID       string
	Addr     raft.ServerAddress
	dir      string
	logs     logStore
	batch    *batcher
	reads    *readBarrier
	stall    *stallWatch
	readTerm atomic.Uint64 // the term whose first barrier this member has applied as leader
	// quietThrough: the FSM holds every command with a Raft index up to it
	// (see CommandsApplied).
	quietThrough atomic.Uint64
	transport    *raft.NetworkTransport
	stream       *streamLayer
	log          *slog.Logger
	peers        peerHealth  // the voters this leader's heartbeats do not reach
	closing      atomic.Bool // Close has begun: a Raft shutdown from now on is not a removal
	// levelMu is held by a level raise across its proposal (HoldLevel) and
	// by a restore's Install across reading the level, marking the backup
	// and handing it to Raft: the level the mark is decided on is the one
	// the install applies after.
	levelMu sync.Mutex
}

// Open starts the member. It does not wait for a leader.
func Open(cfg Config) (*Node, error) {
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("raft dir: %w", err)
	}
	rc := raftConfig(cfg, lg)
	f, err := fsm.Open(filepath.Join(cfg.Dir, "fsm.db"), lg.With("component", "fsm"))
	if err != nil {
		return nil, err
	}
	f.LimitLevel(cfg.MaxLevel)
	if have := f.ClusterLevel(); have > f.MaxLevel() {
		f.Close()
		return nil, fmt.Errorf("this data directory's cluster runs semantics level %d but this binary applies only up to %d: start a release that applies level %d (a coordinator cannot be downgraded past its cluster's level)", have, f.MaxLevel(), have)
	}
	// fsm.db is open (locked) here and Raft is not: no restore of this
	// data directory runs, and what one left is a process's that ended in it.
	removeRestoreLeftovers(cfg.Dir, lg)
	logs, snaps, err := openStores(cfg.Dir, rc.Logger)
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := checkStateNotAhead(f.AppliedIndex(), logs, snaps); err != nil {
		logs.Close()
		f.Close()
		return nil, err
	}
	transport, stream, err := openTransport(cfg, rc.Logger, f, lg)
	if err != nil {
		logs.Close()
		f.Close()
		return nil, err
	}
	gate := &fsmGate{f: f}
	r, err := startRaft(rc, f, gate, logs, snaps, transport)
	if err != nil {
		transport.Close()
		logs.Close()
		f.Close()
		return nil, err
	}
	n := &Node{Raft: r, FSM: f, gate: gate, ID: cfg.ID, dir: cfg.Dir, Addr: transport.LocalAddr(), logs: logs, transport: transport, stream: stream, log: lg}
	// One group commit in flight at a time: a proposal arriving meanwhile
	// waits for it and goes out with every other one that arrived, so under
	// load each round of log fsyncs, replication and FSM transaction carries
	// as many writes as are waiting. Two in flight halved the batches and
	// cost 13 % more CPU per write (hostplane-bench --side-by-side).
	n.batch = newBatcher(r.Apply, r.CurrentTerm, n.awaitFuture, 512)
	n.reads = newReadBarrier(n.confirmRead)
	n.peers.watch(r)
	// A stall shorter than half an election timeout cannot make an answer
	// outlast one (see readBarrier); after a longer one, answers buffered
	// meanwhile are consumed within moments, so one election timeout of
	// caution is ample.
	n.stall = newStallWatch(rc.ElectionTimeout/2, rc.ElectionTimeout, func(gap, caution time.Duration) {
		lg.Warn("this process did not run for a while; linearizable reads are confirmed through the Raft log for a moment",
			"gap", gap.Round(time.Millisecond), "for", caution)
	})
	if cfg.Bootstrap {
		if err := bootstrapIfNew(r, logs, snaps, rc.LocalID, transport.LocalAddr()); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

// raftConfig is hashicorp/raft's default configuration with this node's id,
// logger, batching and the timings cfg sets.
func raftConfig(cfg Config, lg *slog.Logger) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = newHCLogger(lg.With("component", "raft"))
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 256
	if cfg.MaxAppendEntries > 0 {
		rc.MaxAppendEntries = cfg.MaxAppendEntries
	}
	setDur(&rc.HeartbeatTimeout, cfg.HeartbeatTimeout)
	setDur(&rc.ElectionTimeout, cfg.ElectionTimeout)
	setDur(&rc.LeaderLeaseTimeout, cfg.LeaderLeaseTimeout)
	setDur(&rc.CommitTimeout, cfg.CommitTimeout)
	setDur(&rc.SnapshotInterval, cfg.SnapshotInterval)
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	return rc
}

// checkStateNotAhead refuses a data directory whose applied state (fsm.db) is
// past the end of its Raft log and snapshots. Raft only applies entries its
// log holds, durably, so this is a log that was replaced by an older one (a
// rollback, or a copy restored over it) with the newer fsm.db kept: the FSM
// skips every entry up to the index it has applied, so the writes that fill
// the log up to there again would be acknowledged and never applied.
func checkStateNotAhead(applied uint64, logs logStore, snaps raft.SnapshotStore) error {
	last, err := logs.LastIndex()
	if err != nil {
		return fmt.Errorf("raft log store: %w", err)
	}
	metas, err := snaps.List()
	if err != nil {
		return fmt.Errorf("raft snapshot store: %w", err)
	}
	if len(metas) > 0 && metas[0].Index > last {
		last = metas[0].Index
	}
	if applied > last {
		return fmt.Errorf("fsm.db has applied the Raft log up to index %d, but the log and snapshots end at %d: "+
			"the log is older than the state (restored or rolled back without fsm.db?); "+
			"stop, remove fsm.db (the state is rebuilt from the snapshots and log) and start again", applied, last)
	}
	return nil
}

// openStores opens the Raft log store (raft-wal/) and the snapshot store
// (snapshots/) under dir.
func openStores(dir string, logger hclog.Logger) (logStore, *raft.FileSnapshotStore, error) {
	opened, err := openLogStore(dir, logger)
	if err != nil {
		return nil, nil, fmt.Errorf("raft log store: %w", err)
	}
	logs := &closeGuard{logStore: opened, log: logger}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(dir, "snapshots"), 2, logger)
	if err != nil {
		logs.Close()
		return nil, nil, fmt.Errorf("raft snapshot store: %w", err)
	}
	return logs, snaps, nil
}

// openTransport listens on cfg.BindAddr (TLS when cfg.TLS is set; else the
// cluster-secret handshake when cfg.ClusterSecret is set and f applies level
// 2) and advertises cfg.AdvertiseAddr, or the listener's address.
func openTransport(cfg Config, logger hclog.Logger, f *fsm.FSM, lg *slog.Logger) (*raft.NetworkTransport, *streamLayer, error) {
	ln, err := net.Listen("tcp", cfg.BindAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("raft listen %s: %w", cfg.BindAddr, err)
	}
	adv := cfg.AdvertiseAddr
	if adv == "" {
		adv = ln.Addr().String()
	}
	advAddr, err := net.ResolveTCPAddr("tcp", adv)
	if err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("raft advertise address %q: %w", adv, err)
	}
	stream := &streamLayer{Listener: ln, advertise: advAddr, tls: cfg.TLS}
	switch {
	case cfg.TLS != nil:
		stream.Listener = tls.NewListener(ln, cfg.TLS)
	case cfg.ClusterSecret != "" && f.MaxLevel() >= levelRaftAuth:
		// A coordinator acting as a release before level 2 speaks plain
		// Raft only, as such a release.
		if stream.auth, err = newAuthGate(cfg.ClusterSecret, ln, f.ClusterLevel, cfg.Dir, 0, lg.With("component", "raft-transport")); err != nil {
			ln.Close()
			return nil, nil, err
		}
	case cfg.ClusterSecret == "" && cfg.Dir != "":
		// A member that reached level 2 requires the handshake for good
		// (auth.go): without the secret or TLS its port would take
		// anyone's Raft messages while its peers refuse its own.
		if _, err := os.Stat(filepath.Join(cfg.Dir, transportAuthFile)); err == nil {
			ln.Close()
			return nil, nil, fmt.Errorf("raft: %s records that this cluster's Raft connections prove the cluster secret (it reached semantics level 2), "+
				"and this coordinator has neither a cluster secret nor Raft TLS, so its Raft port would take anyone's Raft messages: "+
				"start it with the cluster's --cluster-secret-file (or --raft-tls-cert/-key/-ca); to open the port knowingly, remove that file",
				filepath.Join(cfg.Dir, transportAuthFile))
		}
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: stream, MaxPool: 5, Timeout: 10 * time.Second, Logger: logger,
	}), stream, nil
}

// TransportAuth says what protects this member's Raft port: "tls",
// "cluster-secret" (every connection proves the secret), "cluster-secret
// (legacy connections taken below semantics level 2)", or "none".
func (n *Node) TransportAuth() string {
	switch {
	case n.stream.tls != nil:
		return "tls"
	case n.stream.auth == nil:
		return "none"
	case n.stream.auth.required.Load():
		return "cluster-secret"
	}
	return "cluster-secret (legacy connections taken below semantics level 2)"
}

// Collectors are this member's transport metrics for /metrics.
func (n *Node) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hostplane_raft_connections_refused_total",
			Help: "Raft connections refused before Raft read them: a failed or missing cluster-secret handshake, a handshake past its deadline, too many handshakes at once."},
			func() float64 {
				if n.stream.auth == nil {
					return 0
				}
				return float64(n.stream.auth.refused.Load())
			}),
		// Leadership, for alerting on elections and for benchmarks that must
		// know the leader stayed put through a measurement.
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hostplane_raft_leader",
			Help: "1 while this coordinator is the Raft leader, else 0."},
			func() float64 {
				if n.IsLeader() {
					return 1
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hostplane_raft_term",
			Help: "This coordinator's current Raft term: it rises with every election."},
			func() float64 { return float64(n.Term()) }),
	}
}

// transportAuthRequired reports whether every Raft connection must prove the
// cluster secret.
func (n *Node) transportAuthRequired() bool {
	return n.stream.auth != nil && n.stream.auth.required.Load()
}

// logCacheEntries is how many of the newest log entries are kept in memory
// (each a group commit of up to 512 writes).
const logCacheEntries = 128

// startRaft starts Raft over the FSM and the stores.
func startRaft(rc *raft.Config, f *fsm.FSM, gate *fsmGate, logs logStore, snaps *raft.FileSnapshotStore, transport *raft.NetworkTransport) (*raft.Raft, error) {
	// The newest entries are kept in memory as well: the leader sends each one
	// to the followers just after storing it, and would otherwise read it back
	// from the log store for every follower.
	cached, err := raft.NewLogCache(logCacheEntries, logs)
	if err != nil {
		return nil, fmt.Errorf("raft log cache: %w", err)
	}
	// Within the start-up window the FSM skips the copy of the snapshot
	// NewRaft restores when its database already holds that state. Opened
	// through IndexedSnapshots, every snapshot Raft restores (here, or at
	// run time: a leader's InstallSnapshot, a cluster restore) names its
	// Raft index to the FSM, which records it as applied.
	f.PrepareStart()
	r, err := raft.NewRaft(rc, gate, cached, logs, fsm.IndexedSnapshots(snaps), transport)
	f.FinishStart()
	if err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}
	return r, nil
}

// bootstrapIfNew makes a one-voter cluster of this node unless the stores
// already hold Raft state (a restart, or a node that joined).
func bootstrapIfNew(r *raft.Raft, logs logStore, snaps *raft.FileSnapshotStore, id raft.ServerID, addr raft.ServerAddress) error {
	has, err := raft.HasExistingState(logs, logs, snaps)
	if err != nil {
		return fmt.Errorf("raft state check: %w", err)
	}
	if has {
		return nil
	}
	fut := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: id, Address: addr}}})
	if err := fut.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return nil
}

func setDur(dst *time.Duration, v time.Duration) {
	if v > 0 {
		*dst = v
	}
}

// ErrNotLeader is returned by Apply on a node that is not the leader.
var ErrNotLeader = errors.New("not the raft leader")

// Apply proposes a command and waits until it is committed and applied here.
// Concurrent proposals are group-committed (see batcher). When ctx ends
// first, a proposal still queued is withdrawn (ErrWithdrawn); one handed to
// Raft may still commit (InFlightError).
func (n *Node) Apply(ctx context.Context, env *fsm.Envelope) (*fsm.Result, error) {
	if need := fsm.LevelOf(env.Type); need > 1 {
		// Refused before it reaches the log; the FSM refuses it too, should
		// the level read here be behind the leader's.
		if have := n.FSM.ClusterLevel(); have < need {
			return nil, &fsm.LevelError{Need: need, Have: have}
		}
	}
	data, err := env.Encode()
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	res, err := n.batch.propose(ctx, data)
	if err != nil {
		return nil, err
	}
	if res == nil {
		return &fsm.Result{}, nil
	}
	return res, nil
}

// IsLeader reports whether this node is the leader.
func (n *Node) IsLeader() bool { return n.Raft.State() == raft.Leader }

// Restore installs a backup as the cluster's state (leader only): the stream is
// spooled to a file under the data directory, checked, and handed to Raft, which
// replicates it to the followers as a snapshot. Leadership lost on the way
// is an ErrNotLeader: the backup may then be installed on some members only,
// and the same restore is run again. It is PrepareRestore then Install.
func (n *Node) Restore(r io.Reader) error {
	p, err := n.PrepareRestore(r)
	if err != nil {
		return err
	}
	defer p.Close()
	return p.Install()
}

// PreparedRestore is a backup read, checked and ready to install (Install),
// or to drop (Close).
type PreparedRestore struct {
	n      *Node
	path   string // the backup as uploaded
	marked string // its copy marked as a restore's ("" when this binary applies no level that reads it)
}

// PrepareRestore spools the backup r to a file in the data directory's
// restore-spool/ and checks it, without touching the cluster's state: the
// restore's caller reads the whole upload before it pauses anything. When
// this binary applies fsm.LevelRestoreEpoch, a copy marked as a restore's
// (fsm.MarkRestore) is made here too, outside the pause; which of the two
// Raft is handed is decided by Install, at the level the install applies
// after.
func (n *Node) PrepareRestore(r io.Reader) (*PreparedRestore, error) {
	spool := filepath.Join(n.dir, restoreSpoolDir)
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(spool, "restore-*.hpsnap")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		return nil, fmt.Errorf("read backup: %w", err)
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	if err := fsm.CheckSnapshot(f.Name()); err != nil {
		return nil, err
	}
	p := &PreparedRestore{n: n, path: f.Name() + ".ready"}
	if n.FSM.MaxLevel() >= fsm.LevelRestoreEpoch {
		p.marked = f.Name() + ".marked"
		if err := fsm.MarkRestore(f.Name(), p.marked); err != nil {
			os.Remove(p.marked)
			return nil, fmt.Errorf("mark backup: %w", err)
		}
	}
	if err := os.Rename(f.Name(), p.path); err != nil {
		if p.marked != "" {
			os.Remove(p.marked)
		}
		return nil, err
	}
	return p, nil
}

// restoreSpoolDir is the data directory's sub-directory a restore spools
// in (PrepareRestore): the product's own, every file in it a restore's.
const restoreSpoolDir = "restore-spool"

// olderSpool matches the names an older build's PrepareRestore spooled to
// in the data directory itself: the upload (restore-<random>.hpsnap), its
// check copy (.check), the copy kept for the install (.ready), the marked
// copy (.marked, made through .marked.db). Group 1 is the spool's name.
var olderSpool = regexp.MustCompile(`^(restore-[0-9]+\.hpsnap)(\.check|\.ready|\.marked|\.marked\.db)?$`)

// removeRestoreLeftovers removes the files of a restore the process ended
// in (a crash or kill between PrepareRestore and Close): each can be as
// large as a backup, and nothing else removes them. Every file in
// restore-spool/ named as a restore's spool (olderSpool: PrepareRestore's
// names) is one (nothing is removed when restore-spool is a symbolic link:
// its target is not the product's); of an older build's names in the data
// directory itself, those with a suffix only its restore made are, and a spool of
// its name is when one of them is beside it (a restore cut short while it
// checked or marked the spool). A spool of its name alone is kept and
// logged: it may be an operator's own file (a backup saved under that
// name). Each removal is logged with its size; a failure is logged and
// the start goes on.
func removeRestoreLeftovers(dir string, lg *slog.Logger) {
	spool := filepath.Join(dir, restoreSpoolDir)
	if fi, err := os.Lstat(spool); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		lg.Warn("the restore spool is a symbolic link, not the product's own directory: nothing in it is removed", "dir", spool)
	} else if entries, err := os.ReadDir(spool); err == nil {
		for _, e := range entries {
			if e.Type().IsRegular() && olderSpool.MatchString(e.Name()) {
				removeRestoreLeftover(filepath.Join(spool, e.Name()), e, lg)
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		lg.Warn("cannot list the restore spool for a restore's leftover files", "dir", spool, "err", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		lg.Warn("cannot list the data directory for a restore's leftover files", "dir", dir, "err", err)
		return
	}
	var spools []fs.DirEntry
	companion := map[string]bool{} // an older spool's name with a restore's suffixed file beside it
	for _, e := range entries {
		m := olderSpool.FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() {
			continue
		}
		if m[2] == "" {
			spools = append(spools, e)
			continue
		}
		companion[m[1]] = true
		removeRestoreLeftover(filepath.Join(dir, e.Name()), e, lg)
	}
	for _, e := range spools {
		path := filepath.Join(dir, e.Name())
		if companion[e.Name()] {
			removeRestoreLeftover(path, e, lg)
			continue
		}
		lg.Warn("kept a file named as an older build's restore spool: remove it if it is not yours", "path", path)
	}
}

// removeRestoreLeftover removes the leftover file path (the entry e) and
// logs it with its size.
func removeRestoreLeftover(path string, e fs.DirEntry, lg *slog.Logger) {
	var size int64
	if info, err := e.Info(); err == nil {
		size = info.Size()
	}
	if err := os.Remove(path); err != nil {
		lg.Warn("cannot remove a restore's leftover file", "path", path, "bytes", size, "err", err)
		return
	}
	lg.Info("removed a file an interrupted restore left", "path", path, "bytes", size)
}

// ErrUnsettled is returned by Install when the entries committed before it
// did not finish applying on the leader in time (no quorum): nothing was
// installed.
var ErrUnsettled = errors.New("the cluster did not settle before the install")

// HoldLevel keeps a restore's Install from running until release is
// called: a semantics level raise holds it across its proposal (see
// Install).
func (n *Node) HoldLevel() (release func()) {
	n.levelMu.Lock()
	return n.levelMu.Unlock
}

// Install hands the prepared backup to Raft (leader only; see Restore).
// From semantics level fsm.LevelRestoreEpoch Raft is handed the copy
// marked as a restore's (fsm.MarkRestore), so that every replica's Restore
// names the new state alike. The level is read after a barrier (a raise
// committed before is applied here) and with the level held (HoldLevel: no
// raise is proposed until the install is done), so a raise that commits
// between PrepareRestore and Install marks the copy too.
func (p *PreparedRestore) Install() error {
	n := p.n
	n.levelMu.Lock()
	defer n.levelMu.Unlock()
	if err := n.Barrier(30 * time.Second); err != nil {
		if leadershipError(err) {
			return fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		return fmt.Errorf("%w: %v", ErrUnsettled, err)
	}
	path := p.path
	if n.FSM.ClusterLevel() >= fsm.LevelRestoreEpoch {
		if p.marked == "" { // a level this binary does not apply: not reached
			return fmt.Errorf("the cluster runs semantics level %d but this coordinator applies only up to %d", n.FSM.ClusterLevel(), n.FSM.MaxLevel())
		}
		path = p.marked
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: st.Size()}
	if err := n.Raft.Restore(meta, f, 5*time.Minute); err != nil {
		if leadershipError(err) {
			return fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		return err
	}
	return nil
}

// Close removes the prepared files.
func (p *PreparedRestore) Close() error {
	err := os.Remove(p.path)
	if p.marked != "" {
		err = errors.Join(err, os.Remove(p.marked))
	}
	return err
}

// Close shuts Raft down and closes the stores.
func (n *Node) Close() error {
	n.closing.Store(true)
	n.batch.stop()
	n.stall.stop()
	err := n.Raft.Shutdown().Error()
	n.gate.shut() // Raft may have shut itself down earlier, not waited for here (fsmGate)
	n.transport.Close()
	n.logs.Close()
	n.FSM.Close()
	return err
}

// streamLayer is raft's transport over TCP, wrapped in TLS when configured,
// or authenticated by the cluster secret (auth).
type streamLayer struct {
	net.Listener
	advertise net.Addr
	tls       *tls.Config
	auth      *authGate // nil: no handshake
}

func (s *streamLayer) Addr() net.Addr { return s.advertise }

// Accept returns the next connection for Raft: with auth, only one that
// proved the cluster secret (or, below level 2, a legacy one).
func (s *streamLayer) Accept() (net.Conn, error) {
	if s.auth != nil {
		return s.auth.accept()
	}
	return s.Listener.Accept()
}

// Close stops accepting; with auth it also ends the handshakes in progress.
func (s *streamLayer) Close() error {
	if s.auth == nil {
		return s.Listener.Close()
	}
	s.auth.close()
	err := s.Listener.Close()
	s.auth.wait()
	return err
}

func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	if s.tls != nil {
		return tls.DialWithDialer(d, "tcp", string(addr), s.tls)
	}
	if s.auth != nil {
		return s.auth.dial(addr, func() (net.Conn, error) { return d.Dial("tcp", string(addr)) })
	}
	return d.Dial("tcp", string(addr))
}

// hcLogger adapts hclog (what raft speaks) to slog.
func newHCLogger(l *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		Level:       hclog.Info,
		Output:      slogWriter{l},
		JSONFormat:  false,
		DisableTime: true,
	})
}

type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	msg := string(p)
	for len(msg) > 0 && msg[len(msg)-1] == '\n' {
		msg = msg[:len(msg)-1]
	}
	w.l.Info(msg)
	return len(p), nil
}
