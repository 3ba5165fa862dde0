package fsm

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// rdnsAfterLongerRestore: a backup whose reverse zone is synced at its own
// index ~60 (a PTR set, then the sync recorded) is installed at Raft index 10
// of a cluster with a shorter log (a `cluster restore`), at semantics level
// lvl; at index 11 the PTR changes again. It returns the restored FSM and
// the index the next command takes.
func rdnsAfterLongerRestore(t *testing.T, lvl uint16) (*FSM, uint64) {
	t.Helper()
	h := syncedZoneAt(t, lvl)
	x := open(t, filepath.Join(t.TempDir(), "x.db"))
	t.Cleanup(func() { x.Close() })
	snapshotAt(t, backup(t, h.fsms[0]), 10)(x)
	x.Apply(logAt(t, 11, CmdServerPTR, h.at, ServerPTR{AccountID: "acc_1", ServerID: "srv_1", IP: "198.51.100.7", Hostname: "new.example.test"}))
	return x, 12
}

func reverseZone(t *testing.T, f *FSM) (z store.ReverseZone) {
	t.Helper()
	if err := f.View(func(tx *bolt.Tx) (err error) { z, err = store.Read(tx).ReverseZone("100.51.198.in-addr.arpa"); return }); err != nil {
		t.Fatal(err)
	}
	return z
}

func ptrSync(t *testing.T, f *FSM) string {
	t.Helper()
	ip := netip.MustParseAddr("198.51.100.7")
	var v api.ServerIP
	_ = f.View(func(tx *bolt.Tx) error {
		r := store.Read(tx)
		s, err := r.Server("srv_1")
		if err != nil {
			return err
		}
		zs, err := r.ReverseZones()
		v = WithReverseDNS(ServerIPView(s, ip), s, ip, zs)
		return err
	})
	return v.PTRSync
}

// TestRDNSChangeAfterRestoreFromLongerLog: after a `cluster restore` of a
// backup from a longer log, a PTR changed on the restored cluster must make
// its zone dirty (the reverse-DNS reconciler's changed-zones pass syncs
// only dirty zones) and show as pending (GET /v1/servers/{id}/ips' ptrSync)
// until a sync covering it is recorded; the backup's indexes are past the
// cluster's own Raft indexes, so from semantics level 11 reverse DNS counts
// in event indexes (the Raft index plus the offset the restore raised),
// and the reconciler records the event index it read.
func TestRDNSChangeAfterRestoreFromLongerLog(t *testing.T) {
	x, next := rdnsAfterLongerRestore(t, LevelRestoreEpoch)
	if z := reverseZone(t, x); !z.Dirty() {
		t.Fatalf("a PTR changed after the restore left its zone clean (synced %d, changed %d): the reconciler's pass skips it", z.SyncedIndex, z.ChangedIndex)
	}
	if s := ptrSync(t, x); s != api.PTRPending {
		t.Fatalf("a PTR changed after the restore shows %q, want %q", s, api.PTRPending)
	}
	// The reconciler's pass reads the state and records the index it read
	// (reconcile.readIndex: applied plus offset at this level).
	var read uint64
	_ = x.View(func(tx *bolt.Tx) error {
		r := store.Read(tx)
		read = r.AppliedIndex() + r.EventIndexOffset()
		return nil
	})
	if res := x.Apply(logAt(t, next, CmdReverseZoneSynced, t0, ReverseZoneSynced{Zones: []ZoneSyncResult{{Zone: "100.51.198.in-addr.arpa", Index: read}}})).(*Result); res.Err != nil {
		t.Fatalf("recording the pass after the restore: %v", res.Err)
	}
	if z := reverseZone(t, x); z.Dirty() {
		t.Fatalf("the zone is still dirty after a sync that read the change (synced %d, changed %d)", z.SyncedIndex, z.ChangedIndex)
	}
	if s := ptrSync(t, x); s != api.PTRSynced {
		t.Fatalf("the PTR shows %q after its sync, want %q", s, api.PTRSynced)
	}
}

// TestRDNSChangeAfterRestoreFromLongerLogAtLevel10: below level 11 reverse
// DNS counts in raw Raft indexes, as the releases before: the change after
// the restore leaves the zone clean and the PTR shown synced, until a full
// pass of the reconciler (which a restore starts: reconcile.Run) puts it in
// PowerDNS. The same log applies the same on every release.
func TestRDNSChangeAfterRestoreFromLongerLogAtLevel10(t *testing.T) {
	x, _ := rdnsAfterLongerRestore(t, LevelRestoreEpoch-1)
	if z := reverseZone(t, x); z.Dirty() || ptrSync(t, x) != api.PTRSynced {
		t.Fatalf("at level 10 the zone is dirty (%+v) or the PTR pending: the releases before count raw indexes", z)
	}
}

// TestStaleRDNSSyncAfterRestore: a reconciler pass read from the state a
// `cluster restore` replaced (PowerDNS synced to that state) and recorded
// after the restore must not mark the restored state's dirty zone synced:
// from level 11 its synced indexes are ignored (StateEpoch), and the pass
// the restore starts (reconcile.Run) syncs the zone and records it. A
// removed zone's deletion (true whichever state) still applies.
func TestStaleRDNSSyncAfterRestore(t *testing.T) {
	h := newServerHarness(t)
	h.must(CmdClusterLevel, ClusterLevel{Level: LevelRestoreEpoch})
	runningServer(h, "198.51.100.7/24")
	h.must(CmdReverseZoneAdd, ReverseZoneAdd{Zone: "100.51.198.in-addr.arpa"})
	h.must(CmdServerPTR, ServerPTR{AccountID: "acc_1", ServerID: "srv_1", IP: "198.51.100.7", Hostname: "b.example.test"})
	if z := reverseZone(t, h.fsms[0]); !z.Dirty() {
		t.Fatalf("the backup's zone is clean before any sync: %+v", z)
	}
	x := open(t, filepath.Join(t.TempDir(), "x.db"))
	t.Cleanup(func() { x.Close() })
	for i := uint64(1); i <= 40; i++ {
		x.Apply(logAt(t, i, CmdAccountCreate, h.at, AccountCreate{ID: fmt.Sprintf("acc_x%d", i), Email: fmt.Sprintf("x%d@example.com", i)}))
	}
	snapshotAt(t, markedBackup(t, backup(t, h.fsms[0])), 41)(x)
	// The replaced state's pass (epoch 0, read at its index 40).
	if res := x.Apply(logAt(t, 42, CmdReverseZoneSynced, h.at, ReverseZoneSynced{Zones: []ZoneSyncResult{{Zone: "100.51.198.in-addr.arpa", Index: 40}}})).(*Result); res.Err != nil {
		t.Fatal(res.Err)
	}
	if z := reverseZone(t, x); !z.Dirty() || ptrSync(t, x) != api.PTRPending {
		t.Fatalf("a pass read from the replaced state marked the restored zone synced (%+v, ptr %s): PowerDNS serves the replaced state's PTR", z, ptrSync(t, x))
	}
	// The restored state's own pass (epoch 41) records it.
	if res := x.Apply(logAt(t, 43, CmdReverseZoneSynced, h.at, ReverseZoneSynced{StateEpoch: 41, Zones: []ZoneSyncResult{{Zone: "100.51.198.in-addr.arpa", Index: 42}}})).(*Result); res.Err != nil {
		t.Fatal(res.Err)
	}
	if z := reverseZone(t, x); z.Dirty() || ptrSync(t, x) != api.PTRSynced {
		t.Fatalf("the restored state's own pass left the zone dirty: %+v", z)
	}
}

// syncedZoneAt is the backup's cluster of rdnsAfterLongerRestore at
// semantics level lvl: a running server whose PTR is set in a mapped zone,
// and the zone's sync recorded at its own index ~60.
func syncedZoneAt(t *testing.T, lvl uint16) *whHarness {
	t.Helper()
	h := newServerHarness(t)
	h.must(CmdClusterLevel, ClusterLevel{Level: lvl})
	runningServer(h, "198.51.100.7/24")
	h.must(CmdReverseZoneAdd, ReverseZoneAdd{Zone: "100.51.198.in-addr.arpa"})
	for i := 0; h.idx < 58; i++ {
		h.must(CmdAccountCreate, AccountCreate{ID: fmt.Sprintf("acc_p%d", i), Email: fmt.Sprintf("p%d@example.com", i)})
	}
	h.must(CmdServerPTR, ServerPTR{AccountID: "acc_1", ServerID: "srv_1", IP: "198.51.100.7", Hostname: "old.example.test"})
	h.must(CmdReverseZoneSynced, ReverseZoneSynced{Zones: []ZoneSyncResult{{Zone: "100.51.198.in-addr.arpa", Index: h.idx}}})
	if z := reverseZone(t, h.fsms[0]); z.Dirty() {
		t.Fatalf("the backup's zone is dirty after its sync: %+v", z)
	}
	return h
}
