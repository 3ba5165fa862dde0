// Package fsm is hostplane's replicated state machine: it applies typed Raft commands
// to a bbolt database, one write transaction per batch, storing the applied index in
// the same transaction, and snapshots/restores by streaming a consistent bbolt copy.
package fsm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/ipam"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/atomicfile"
	bolt "go.etcd.io/bbolt"
)

// snapshotMagic starts every snapshot and backup stream.
var snapshotMagic = []byte("HOSTPLANE-FSM-SNAPSHOT v1\n")

// Result is what Apply returns for a command: a value or a business error.
type Result struct {
	Value any
	Err   error
	// Replayed is set when an idempotency record already held the response.
	Replayed *store.IdemRecord
}

// FSM implements raft.FSM and raft.BatchingFSM over a bbolt file.
type FSM struct {
	path string
	log  *slog.Logger

	mu sync.RWMutex // write-locked only while a restore swaps the file
	db *bolt.DB

	// skipUpTo: log entries at or below it are already in the database (it survived
	// a restart); Raft replays them after restoring its snapshot and they are skipped.
	skipUpTo uint64
	// evOffset is store.EventIndexOffset, read when the database opens
	// (start, restore): a command's event index is its Raft index plus it.
	evOffset uint64
	// restores counts the restores installed at run time (Restores).
	restores atomic.Uint64
	// starting: Raft's start-up restore, which is skipped when the database
	// already holds the snapshot (Restore).
	starting atomic.Bool
	applied  atomic.Uint64
	// appliedTerm is the term of the last entry applied (AppliedTerm).
	appliedTerm atomic.Uint64
	// appliedAt is AppliedAt (unix ns; 0: none), recorded with the applied
	// index; batchAt is the latest time of the batch being applied,
	// guarded by poolMu, held for the whole batch.
	appliedAt atomic.Int64
	batchAt   int64
	// keysVersion changes whenever an API key's authorising fields may have
	// changed, so the API's key cache knows when to reload.
	keysVersion atomic.Uint64
	// keysChanged is set by a command of the batch being applied that may
	// change a key; guarded by poolMu, held for the whole batch.
	keysChanged bool
	// clusterVersion changes, after the commit, whenever a coordinator's
	// record (its advertised addresses) may have changed, so the API's
	// cached leader address knows when to reload; clusterChanged is its
	// keysChanged.
	clusterVersion atomic.Uint64
	clusterChanged bool
	// hostnamesVersion changes, after the commit, whenever a node's
	// hostname may have changed (an enrolment or a hello records it), so
	// the API's reserved-name set knows when to rebuild;
	// hostnamesChanged is its keysChanged.
	hostnamesVersion atomic.Uint64
	hostnamesChanged bool
	// maxLevel is the newest semantics level this FSM applies (level.go).
	maxLevel uint16
	// level is the cluster's semantics level as committed (ClusterLevel):
	// read from the database whenever it opens (at start and after a
	// Restore, which may install a lower one) and stored after each batch
	// commits. batchLevel is the level inside the batch being applied (a
	// CmdClusterLevel raises it for the commands after it), which each
	// command's applyCtx reads instead of the meta bucket; guarded by
	// poolMu, held for the whole batch.
	level      atomic.Uint32
	batchLevel uint16

	// pools holds one IP pool allocator per pool, rebuilt from the pool's
	// records on first use after open or restore (ippools.go). poolMu is
	// held while a batch applies and while PoolsFree builds one; usage is
	// what PoolsFree reads: the allocators' usage after the last batch.
	pools   *poolCache
	poolMu  sync.Mutex
	usageMu sync.RWMutex
	usage   map[string]*ipam.Snapshot

	// use is what each node's servers use, kept by the apply path
	// (nodeusage.go); a new one after open or restore. Atomic, not under
	// mu: NodeUsed is read inside read transactions, which hold mu's read
	// side already.
	use atomic.Pointer[nodeUsage]

	// txs and pages count the write transactions ApplyBatch committed and
	// the bbolt pages they wrote, since the FSM was made (Collectors).
	txs, pages atomic.Uint64

	// OnApply, if set, is called after each batch commits (used by waiters in tests
	// and by the outbox notifier). It must not block.
	OnApply func(lastIndex uint64)

	// actionsWatch is WatchActions' function (nil: none); actionsTouched
	// collects the ids of the actions the batch being applied wrote,
	// guarded by poolMu, held for the whole batch.
	actionsWatch   atomic.Pointer[func(ids []string)]
	actionsTouched []string
}

// WatchActions has fn called, after each batch that wrote actions commits,
// with the ids of the actions it wrote (opened, progressed or finished; an id
// may be named that ended unchanged), and with nil after a Restore replaced
// the whole state. The dispatcher keeps its index of open actions from these
// (dispatch), reading each named action back rather than trusting the note.
// fn must not block nor read the FSM. Safe to call while the FSM applies.
func (f *FSM) WatchActions(fn func(ids []string)) { f.actionsWatch.Store(&fn) }

// notifyActions calls WatchActions' function with ids.
func (f *FSM) notifyActions(ids []string) {
	if fn := f.actionsWatch.Load(); fn != nil && *fn != nil {
		(*fn)(ids)
	}
}

// Open opens (or creates) the FSM database at path.
//
// The database is written without fsync: durability lives in the Raft log and
// snapshots (both fsynced), and the FSM can always be rebuilt from them. A marker
// file exists while the database is open; finding it at start means the last run
// did not close cleanly (a crash or power loss may have left the unsynced file
// inconsistent), so the database is discarded and Raft rebuilds it from its
// latest snapshot and the log.
func Open(path string, log *slog.Logger) (*FSM, error) {
	f := &FSM{path: path, log: log, maxLevel: MaxLevel}
	marker := f.path + ".open"
	if _, err := os.Stat(marker); err == nil {
		log.Warn("fsm database was not closed cleanly; rebuilding it from the raft snapshot and log", "path", path)
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("discard fsm db: %w", err)
		}
	}
	if err := writeFileSync(marker, bytes.NewReader([]byte("open\n"))); err != nil {
		return nil, fmt.Errorf("fsm open marker: %w", err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if err := f.open(); err != nil {
		return nil, err
	}
	return f, nil
}

// initialMmapSize is the size bbolt maps the FSM database at when it opens
// it (bolt.Options.InitialMmapSize; address space, not memory: only the
// pages read are resident). bbolt maps a small file at 32 KiB and doubles
// the mapping as the file grows, and a remap waits for every open read
// transaction to end. A backup streaming to a slow client, or a snapshot
// being persisted, holds one for its whole copy: a write that outgrew the
// mapping meanwhile stalled every apply, and every read queued behind it,
// until the copy ended (TestBackupDoesNotStallApplies). Mapped at 1 GiB, a
// state smaller than that is never remapped.
const initialMmapSize = 1 << 30

func (f *FSM) open() error {
	db, err := bolt.Open(f.path, 0o600, &bolt.Options{Timeout: 5 * time.Second, FreelistType: bolt.FreelistMapType, NoSync: true, NoFreelistSync: true, InitialMmapSize: initialMmapSize})
	if err != nil {
		return fmt.Errorf("open fsm db %s: %w", f.path, err)
	}
	var applied uint64
	var at int64
	var level uint16
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := store.CreateBuckets(tx); err != nil {
			return err
		}
		applied, at = store.AppliedIndex(tx), store.AppliedAt(tx)
		level = store.ClusterLevelTx(tx)
		f.evOffset = store.EventIndexOffset(tx)
		return nil
	}); err != nil {
		db.Close()
		return fmt.Errorf("init fsm db: %w", err)
	}
	f.db = db
	f.pools = newPoolCache()
	f.use.Store(newNodeUsage())
	f.usageMu.Lock()
	f.usage = nil
	f.usageMu.Unlock()
	f.level.Store(uint32(level))
	f.skipUpTo = applied
	f.applied.Store(applied)
	f.raiseAppliedAt(at)
	return nil
}

// AppliedAt is the latest time a command applied here carried (its
// Envelope.At), kept across restarts and restores and never moved back; the
// zero time when none is known. The coordinator makes ids and command times
// no earlier (coordinator/internal/hlc): a new leader whose clock is behind
// the old one's has applied the old leader's entries before it serves.
// It depends only on the entries applied (and, after a restore, on the
// times this replica had seen before it); nothing the FSM answers or stores
// elsewhere depends on it, so replicas apply identically whatever it is.
func (f *FSM) AppliedAt() time.Time {
	if ns := f.appliedAt.Load(); ns != 0 {
		return time.Unix(0, ns).UTC()
	}
	return time.Time{}
}

// raiseAppliedAt moves appliedAt up to ns (unix ns); never down.
func (f *FSM) raiseAppliedAt(ns int64) {
	for {
		cur := f.appliedAt.Load()
		if ns <= cur || f.appliedAt.CompareAndSwap(cur, ns) {
			return
		}
	}
}

// noteAt raises the batch's latest time to at: a time of years 1970 to
// 2261 (unix ns as int64); any other is left out.
func (f *FSM) noteAt(at time.Time) {
	if y := at.Year(); y < 1970 || y > 2261 {
		return
	}
	if ns := at.UnixNano(); ns > f.batchAt {
		f.batchAt = ns
	}
}

// PrepareStart opens the start-up window in which Raft's restore of a
// snapshot the database already holds is skipped (Restore: the snapshot's
// index comes with its stream, IndexedSnapshots); call it before
// raft.NewRaft and FinishStart after.
func (f *FSM) PrepareStart() { f.starting.Store(true) }

// FinishStart ends the start-up window in which a snapshot restore may be skipped.
func (f *FSM) FinishStart() { f.starting.Store(false) }

// Close syncs and closes the database and removes the open marker, so the next
// start reuses it.
func (f *FSM) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.db.Sync(); err != nil {
		f.db.Close()
		return fmt.Errorf("fsm sync: %w", err)
	}
	if err := f.db.Close(); err != nil {
		return err
	}
	return os.Remove(f.path + ".open")
}

// KeysVersion changes whenever a command that creates or revokes a key applies,
// or the state is restored.
func (f *FSM) KeysVersion() uint64 { return f.keysVersion.Load() }

// ClusterVersion changes whenever a coordinator's record in the cluster
// bucket may have changed (moved after the change is readable).
func (f *FSM) ClusterVersion() uint64 { return f.clusterVersion.Load() }

// HostnamesVersion changes whenever a node's hostname may have changed (a
// node enrolled or said hello), or the state is restored; moved after the
// change is readable.
func (f *FSM) HostnamesVersion() uint64 { return f.hostnamesVersion.Load() }

// AppliedIndex is the Raft index of the last applied command.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// View runs fn in a read transaction.
func (f *FSM) View(fn func(tx *bolt.Tx) error) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.db.View(fn)
}

// Read runs fn in a read transaction with the store's typed accessors
// (store.Reader).
func (f *FSM) Read(fn func(r store.ReadTx) error) error {
	return f.View(func(tx *bolt.Tx) error { return fn(store.Read(tx)) })
}

// Size returns the database size in bytes.
func (f *FSM) Size() int64 {
	var n int64
	_ = f.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n
}

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch implements raft.BatchingFSM: the whole batch is one bbolt transaction,
// so one fsync covers many commands.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	if len(logs) == 0 {
		return out
	}
	last := logs[len(logs)-1].Index
	if last <= f.skipUpTo {
		return out
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	f.poolMu.Lock()
	err := f.db.Update(func(tx *bolt.Tx) error {
		tx.OnCommit(func() {
			f.txs.Add(1)
			st := tx.Stats()
			f.pages.Add(uint64(st.GetWrite()))
		})
		store.PackAppends(tx)
		f.batchAt = f.appliedAt.Load()
		f.batchLevel = uint16(f.level.Load())
		for i, l := range logs {
			if l.Index <= f.skipUpTo || l.Type != raft.LogCommand {
				continue
			}
			out[i] = f.applyOne(tx, l)
		}
		if f.batchAt > f.appliedAt.Load() {
			if err := store.SetAppliedAt(tx, f.batchAt); err != nil {
				return err
			}
		}
		return store.SetAppliedIndex(tx, last)
	})
	if err == nil {
		f.level.Store(uint32(f.batchLevel))
		f.publishPools()
	}
	if f.keysChanged {
		// The transaction has committed (or failed): readers from now on
		// see the change.
		f.keysChanged = false
		f.keysVersion.Add(1)
	}
	if f.clusterChanged {
		f.clusterChanged = false
		f.clusterVersion.Add(1)
	}
	if f.hostnamesChanged {
		f.hostnamesChanged = false
		f.hostnamesVersion.Add(1)
	}
	batchAt := f.batchAt
	touched := f.actionsTouched
	f.actionsTouched = nil
	f.poolMu.Unlock()
	if err != nil {
		// A storage failure leaves this replica unable to follow the log
		// deterministically; stopping is the only safe answer.
		panic(fmt.Sprintf("fsm: apply batch ending at %d: %v", last, err))
	}
	f.applied.Store(last)
	f.appliedTerm.Store(logs[len(logs)-1].Term)
	f.raiseAppliedAt(batchAt)
	if len(touched) > 0 {
		f.notifyActions(touched)
	}
	if f.OnApply != nil {
		f.OnApply(last)
	}
	return out
}

func (f *FSM) applyOne(tx *bolt.Tx, l *raft.Log) any {
	if subs, ok := decodeBatchFast(l.Data); ok {
		var seq uint16
		out := make(BatchResult, len(subs))
		for i := range subs {
			if subs[i].Type == 0 || subs[i].Type == CmdBatch {
				out[i] = &Result{Err: fmt.Errorf("%w: bad command %d in batch", ErrInvalid, i)}
				continue
			}
			out[i] = f.applyEnvelope(tx, l.Index, &subs[i], &seq)
		}
		return out
	}
	env, err := DecodeEnvelope(l.Data)
	if err != nil {
		f.log.Error("skipping undecodable command", "index", l.Index, "err", err)
		return &Result{Err: fmt.Errorf("%w: %v", ErrInvalid, err)}
	}
	var seq uint16
	if env.Type != CmdBatch {
		return f.applyEnvelope(tx, l.Index, env, &seq)
	}
	// A group commit: many proposals in one log entry, applied in order, each
	// with its own result, as if they were consecutive entries.
	var subs []json.RawMessage
	if err := json.Unmarshal(env.Data, &subs); err != nil {
		f.log.Error("skipping undecodable batch", "index", l.Index, "err", err)
		return &Result{Err: fmt.Errorf("%w: %v", ErrInvalid, err)}
	}
	out := make(BatchResult, len(subs))
	for i, raw := range subs {
		sub, err := DecodeEnvelope(raw)
		if err != nil || sub.Type == CmdBatch {
			out[i] = &Result{Err: fmt.Errorf("%w: bad command %d in batch", ErrInvalid, i)}
			continue
		}
		out[i] = f.applyEnvelope(tx, l.Index, sub, &seq)
	}
	return out
}

// applyEnvelope applies one command; seq numbers the outbox events of the log
// entry across the commands of a batch.
func (f *FSM) applyEnvelope(tx *bolt.Tx, index uint64, env *Envelope, seq *uint16) *Result {
	f.noteAt(env.At)
	h, ok := handlers[env.Type]
	if !ok {
		// A newer leader proposed a command this binary does not know; every replica
		// of this version skips it the same way. Upgrade before using new features.
		f.log.Error("unknown command type", "index", index, "type", env.Type)
		return &Result{Err: fmt.Errorf("%w: unknown command type %d", ErrInvalid, env.Type)}
	}
	var idemKey []byte
	if env.Idem != nil {
		idemKey = []byte(env.Idem.Scope)
		var rec store.IdemRecord
		// A record past its TTL (by the command's own time) no longer counts, even
		// before the sweep removes it.
		if err := store.GetJSON(tx, store.BucketIdempotency, idemKey, &rec); err == nil && rec.ExpiresAt.After(env.At) {
			if rec.ReqHash != env.Idem.ReqHash {
				return &Result{Err: ErrIdemMismatch}
			}
			rec, err := ResolveIdem(store.Read(tx), rec)
			if err != nil {
				f.log.Error("idempotency record not replayed", "index", index, "scope", env.Idem.Scope, "err", err)
				return &Result{Err: err}
			}
			return &Result{Replayed: &rec}
		}
	}
	if env.Type == CmdKeyCreate || env.Type == CmdKeyRevoke || env.Type == CmdAccountKeyCreate || env.Type == CmdAccountKeyRevoke {
		// Bumped once the batch's transaction has committed (ApplyBatch):
		// bumped here, a reader could load the version, then read the
		// key as it was before this uncommitted change, and cache the old
		// record under the new version until some later key change.
		f.keysChanged = true
	}
	if env.Type == CmdNodeRegister {
		f.clusterChanged = true
	}
	if env.Type == CmdNodeEnrol || env.Type == CmdNodeHello {
		f.hostnamesChanged = true
	}
	c := &applyCtx{tx: tx, r: store.Read(tx), index: index, evIndex: index + f.evOffset, at: env.At, env: env, seqBase: *seq, pools: f.pools, use: f.use.Load(), maxLevel: f.maxLevel, lvl: &f.batchLevel, log: f.log}
	if f.actionsWatch.Load() != nil {
		c.actions = &f.actionsTouched
	}
	if need := LevelOf(env.Type); need > 1 {
		// Refused alike on every replica that knows the level (one that does
		// not know the type skips it as unknown): a leader proposed it before
		// the cluster's level allowed it.
		if have := c.level(); have < need {
			return &Result{Err: &LevelError{Need: need, Have: have}}
		}
	}
	val, err := h(c)
	if err != nil {
		if c.poolsTouched {
			// The command's writes may be partly in the transaction; the
			// allocators are rebuilt from it rather than trusted.
			f.pools = newPoolCache()
		}
		if c.useTouched {
			// Likewise the node usage sums.
			f.resetNodeUsage()
		}
		return &Result{Err: err}
	}
	for i := range c.events {
		key := store.OutboxKey(c.evIndex, *seq+uint16(i))
		if raw, ok := encodeEvent(&c.events[i]); ok {
			if err := tx.Bucket(store.BucketOutbox).Put(key, raw); err != nil {
				return &Result{Err: err}
			}
		} else if err := store.PutJSON(tx, store.BucketOutbox, key, c.events[i]); err != nil {
			return &Result{Err: err}
		}
	}
	if err := c.recordEventAt(); err != nil {
		return &Result{Err: err}
	}
	*seq += uint16(len(c.events))
	if idemKey != nil {
		rec, err := idemRecord(c, env, val)
		if err != nil {
			return &Result{Err: err}
		}
		if err := store.PutIdemRecord(tx, idemKey, &rec); err != nil {
			return &Result{Err: err}
		}
	}
	return &Result{Value: val}
}

// batchPrefix starts every group commit EncodeBatch writes.
var batchPrefix = []byte(`{"t":14,"v":1,`)

// decodeBatchFast decodes a group commit as EncodeBatch writes it, with its
// commands; ok is false for any other entry, or one that does not decode
// whole, which the general path then applies exactly as before (with a
// result per undecodable command). The general path decodes the entry, then
// its array, then each command: three passes over the same bytes.
//
// The layout the batcher writes (batchfast.go) is read without reflection;
// anything else goes through decodeBatchJSON, encoding/json in one pass.
// FuzzDecodeBatchLayout holds the two to the same commands.
func decodeBatchFast(data []byte) (subs []Envelope, ok bool) {
	if !bytes.HasPrefix(data, batchPrefix) {
		return nil, false
	}
	if subs, ok := decodeBatchLayout(data); ok {
		return subs, true
	}
	return decodeBatchJSON(data)
}

// decodeBatchJSON is decodeBatchFast through encoding/json.
func decodeBatchJSON(data []byte) (subs []Envelope, ok bool) {
	if !bytes.HasPrefix(data, batchPrefix) {
		return nil, false
	}
	// Envelope's fields, so that whatever fails to decode there fails here.
	var b struct {
		Type    CommandType  `json:"t"`
		Version uint8        `json:"v"`
		At      time.Time    `json:"at"`
		Data    []Envelope   `json:"d"`
		Idem    *IdemRequest `json:"i,omitempty"`
	}
	if err := json.Unmarshal(data, &b); err != nil || b.Type != CmdBatch || b.Data == nil {
		return nil, false
	}
	return b.Data, true
}

// BatchResult is the result of a CmdBatch log entry: one Result per command.
type BatchResult []*Result

// Snapshot implements raft.FSM: it opens a read transaction now (a consistent point)
// and streams it later in Persist.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	tx, err := f.db.Begin(false)
	f.mu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("fsm snapshot: %w", err)
	}
	return &snapshot{tx: tx}, nil
}

type snapshot struct{ tx *bolt.Tx }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	err := WriteSnapshot(s.tx, sink)
	if err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *snapshot) Release() { _ = s.tx.Rollback() }

// WriteSnapshot writes the snapshot stream (magic + bbolt file) of tx to w.
func WriteSnapshot(tx *bolt.Tx, w io.Writer) error {
	if _, err := w.Write(snapshotMagic); err != nil {
		return fmt.Errorf("write snapshot header: %w", err)
	}
	if _, err := tx.WriteTo(w); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// Backup streams a consistent copy of the state (same format as a snapshot).
func (f *FSM) Backup(w io.Writer) error { return f.BackupLabelled(w, nil) }

// BackupLabelled is Backup that first hands label the applied index of exactly
// the state it copies, read in the copy's own transaction (AppliedIndex, read
// before or after it, may be a batch off), before a byte is written to w.
func (f *FSM) BackupLabelled(w io.Writer, label func(appliedIndex uint64)) error {
	return f.View(func(tx *bolt.Tx) error {
		if label != nil {
			label(store.AppliedIndex(tx))
		}
		return WriteSnapshot(tx, w)
	})
}

// Restore implements raft.FSM: it replaces the database with the snapshot's copy
// and records the snapshot's Raft index as applied (see IndexedSnapshots).
// At start-up, when the database on disk already contains the snapshot (its applied
// index is at or past the snapshot's), the copy is skipped and replay resumes after it.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	snapIndex, snapTerm := snapshotOf(rc)
	if f.starting.Load() && snapIndex > 0 && f.applied.Load() >= snapIndex {
		f.log.Info("fsm already holds the snapshot; skipping restore",
			"snapshot_index", snapIndex, "applied_index", f.applied.Load())
		_, _ = io.Copy(io.Discard, rc)
		return nil
	}
	br := bufio.NewReaderSize(rc, 1<<20)
	head := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, head); err != nil || !bytes.Equal(head, snapshotMagic) {
		return errors.New("fsm restore: not a hostplane snapshot (bad header)")
	}
	tmp := f.path + ".restore"
	if err := writeFileSync(tmp, br); err != nil {
		return fmt.Errorf("fsm restore: %w", err)
	}
	// Check the copy opens as bbolt before replacing anything.
	check, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("fsm restore: snapshot is not a valid database: %w", err)
	}
	var level uint16
	_ = check.View(func(tx *bolt.Tx) error { level = store.ClusterLevelTx(tx); return nil })
	check.Close()
	if level > f.maxLevel {
		// Installing it would have this replica apply what follows as an
		// older release does; it stays behind, and says why, until upgraded.
		os.Remove(tmp)
		f.log.Error("refusing a snapshot of a newer semantics level: upgrade this coordinator", "snapshot_level", level, "max_level", f.maxLevel)
		return fmt.Errorf("fsm restore: the snapshot is at semantics level %d but this coordinator applies only up to %d: upgrade it", level, f.maxLevel)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.db.Close(); err != nil {
		return fmt.Errorf("fsm restore: close current db: %w", err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return fmt.Errorf("fsm restore: %w", err)
	}
	if err := f.open(); err != nil {
		return err
	}
	// The snapshot's Raft index, never the copy's own applied index (a backup's
	// is foreign): entries after it follow, and a restart skips the restore.
	// Restored from a stream whose snapshot is unknown (not opened through
	// IndexedSnapshots), 0 is recorded, so that a restart before the next
	// apply restores the snapshot again rather than trusting the copy's index.
	restoredAt := snapIndex
	if err := f.db.Update(func(tx *bolt.Tx) error {
		// A backup from a longer log holds event indexes past the ones
		// this cluster's next commands have (store.RaiseEventIndexOffset).
		off, err := store.RaiseEventIndexOffset(tx, restoredAt, store.AppliedIndex(tx))
		if err != nil {
			return err
		}
		if off != f.evOffset {
			f.log.Info("restored state is from a longer log: event indexes continue past its own", "snapshot_index", restoredAt, "event_index_offset", off)
		}
		f.evOffset = off
		// A `cluster restore` (a copy the leader marked) names a new
		// state: records read from the replaced one no longer move it.
		if epoch, marked, err := store.TakeRestoreMark(tx, restoredAt); err != nil {
			return err
		} else if marked {
			f.log.Info("restored a backup: commands read from the state it replaced no longer move the webhook cursor", "snapshot_index", restoredAt, "restore_epoch", epoch)
		}
		return store.SetAppliedIndex(tx, restoredAt)
	}); err != nil {
		return fmt.Errorf("fsm restore: %w", err)
	}
	f.skipUpTo = restoredAt
	f.applied.Store(restoredAt)
	if snapTerm > 0 {
		f.appliedTerm.Store(snapTerm)
	}
	f.keysVersion.Add(1)
	f.clusterVersion.Add(1)
	f.hostnamesVersion.Add(1)
	f.notifyActions(nil)
	f.restores.Add(1)
	return nil
}

// Restores counts the snapshots installed over the state at run time (a
// `cluster restore`, a leader's InstallSnapshot): a reader that keeps a
// position in the state (the webhook dispatcher's in the outbox) reads
// afresh when it moves.
func (f *FSM) Restores() uint64 { return f.restores.Load() }

// MarkRestore copies the snapshot stream at src (a backup checked by
// CheckSnapshot) to dst with its database marked as one a `cluster restore`
// installs (store.MarkRestore): the leader hands dst to Raft, so every
// replica's Restore sees the mark and moves the restore epoch alike.
func MarkRestore(src, dst string) (err error) {
	tmp := dst + ".db"
	defer os.Remove(tmp)
	if err := backupDB(src, tmp); err != nil {
		return err
	}
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	if err := db.Update(store.MarkRestore); err != nil {
		db.Close()
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	body, err := os.Open(tmp)
	if err != nil {
		return err
	}
	defer body.Close()
	return writeFileSync(dst, io.MultiReader(bytes.NewReader(snapshotMagic), body))
}

// CheckSnapshot verifies that the file at path is a snapshot stream whose
// database opens; a backup is checked before it replaces any state.
func CheckSnapshot(path string) (err error) {
	tmp := path + ".check"
	defer os.Remove(tmp)
	if err := backupDB(path, tmp); err != nil {
		return err
	}
	st, err := os.Stat(tmp)
	if err != nil {
		return err
	}
	// bbolt maps the file: a page past its end (a backup cut short) is a
	// SIGBUS that kills the coordinator, not an error. The size its meta
	// page records is checked first, and any other fault while checking is
	// turned into an error.
	if st.Size() < 2*4096 {
		return fmt.Errorf("backup database is cut short (%d bytes)", st.Size())
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("backup database is damaged: %v", r)
		}
	}()
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("backup database does not open: %w", err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		if tx.Size() > st.Size() {
			return fmt.Errorf("backup database is cut short: %d of its %d bytes", st.Size(), tx.Size())
		}
		if tx.Bucket(store.BucketMeta) == nil || tx.Bucket(store.BucketAccounts) == nil {
			return errors.New("backup database lacks hostplane buckets")
		}
		return nil
	})
}

// backupDB writes the database of the snapshot stream at src (a backup:
// snapshotMagic, then the bbolt file) to the file tmp.
func backupDB(src, tmp string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	head := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(in, head); err != nil || !bytes.Equal(head, snapshotMagic) {
		return errors.New("not a hostplane backup (bad header)")
	}
	return writeFileSync(tmp, in)
}

func writeFileSync(path string, r io.Reader) error {
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(fh, r); err != nil {
		fh.Close()
		os.Remove(path)
		return err
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		os.Remove(path)
		return err
	}
	return fh.Close()
}
