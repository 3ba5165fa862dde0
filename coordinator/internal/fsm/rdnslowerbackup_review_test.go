package fsm

import (
	"path/filepath"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestRDNSChangeAfterRestoreOfLevel10Backup (review54): a cluster at level
// 11 restores a backup taken before its upgrade (level 10) from a longer
// log. The restored state is at level 10 until the leader raises it again
// (server/level.go, every 3 s), and the reconciler's full pass after the
// restore (reconcile.Run) reads it at once; a PTR changed in between must
// still make its zone dirty and show pending, as the webhook check holds
// "from level 11 or once the state holds an epoch" for this very window.
func TestRDNSChangeAfterRestoreOfLevel10Backup(t *testing.T) {
	h := syncedZoneAt(t, LevelRestoreEpoch-1)

	x := open(t, filepath.Join(t.TempDir(), "x.db"))
	t.Cleanup(func() { x.Close() })
	x.Apply(logAt(t, 1, CmdClusterLevel, h.at, ClusterLevel{Level: LevelRestoreEpoch}))
	// The leader is at level 11: it marks the backup (raftnode PreparedRestore.Install).
	snapshotAt(t, markedBackup(t, backup(t, h.fsms[0])), 10)(x)
	// The restore's full pass, read at once (level 10: the raw applied index).
	if res := x.Apply(logAt(t, 11, CmdReverseZoneSynced, h.at, ReverseZoneSynced{StateEpoch: 10, Zones: []ZoneSyncResult{{Zone: "100.51.198.in-addr.arpa", Index: 10}}})).(*Result); res.Err != nil {
		t.Fatal(res.Err)
	}
	// A PTR change before the leader raises the level again.
	x.Apply(logAt(t, 12, CmdServerPTR, h.at, ServerPTR{AccountID: "acc_1", ServerID: "srv_1", IP: "198.51.100.7", Hostname: "new.example.test"}))
	if z := reverseZone(t, x); !z.Dirty() {
		t.Errorf("a PTR changed after the restore of a level-10 backup left its zone clean (synced %d, changed %d): no pass syncs it before the next full one", z.SyncedIndex, z.ChangedIndex)
	}
	if s := ptrSync(t, x); s != api.PTRPending {
		t.Errorf("the PTR changed after the restore shows %q, want %q (PowerDNS has the old name)", s, api.PTRPending)
	}
}
