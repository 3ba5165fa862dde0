package reconcile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/fsm/fsmtest"
	"github.com/hostplane/hostplane/coordinator/internal/ipam"
	"github.com/hostplane/hostplane/coordinator/internal/store"
)

// TestReadIndex: the index a pass reports PowerDNS serves the state at
// (readIndex) after the restore of a backup from a longer log (31 entries,
// restored into a replica at entry 3 and followed by a zone mapped at entry
// 4): from semantics level 11, and below it once the state holds a restore
// epoch (a level-10 backup a `cluster restore` marked), it is the event
// index (4 plus the offset of 31 the restore raised), the index the FSM
// counts the zone's change in; a level-10 state without an epoch counts raw
// Raft indexes (4), as the releases before. In each case a pass recorded
// at readIndex (with the epoch it read, as pass does) leaves the zone
// clean, and the zone is dirty before.
func TestReadIndex(t *testing.T) {
	now := time.Now().UTC()
	for _, tc := range []struct {
		name   string
		level  uint16 // of the backup and of the replica it is restored into
		marked bool   // by a `cluster restore` (fsm.MarkRestore)
		want   uint64
	}{
		{"level 10", fsm.LevelRestoreEpoch - 1, false, 4},
		{"level 11", fsm.LevelRestoreEpoch, false, 4 + 31},
		{"level 11, marked", fsm.LevelRestoreEpoch, true, 4 + 31},
		{"level-10 backup marked: an epoch held", fsm.LevelRestoreEpoch - 1, true, 4 + 31},
	} {
		t.Run(tc.name, func(t *testing.T) {
			long := fsmtest.Open(t)
			long.MustAt(t, now, fsm.CmdClusterLevel, fsm.ClusterLevel{Level: tc.level})
			long.MustAt(t, now, fsm.CmdIPPoolCreate, fsm.IPPoolCreate{Pool: store.IPPool{Pool: ipam.Pool{Name: "v4", CIDR: "198.51.100.0/24", Gateway: "198.51.100.1", Bridge: "br0"}}})
			for i := range 29 {
				long.MustAt(t, now, fsm.CmdAccountCreate, fsm.AccountCreate{ID: fmt.Sprint("acc_", i), Email: fmt.Sprintf("a%d@example.com", i)})
			}
			var buf bytes.Buffer
			if err := long.FSM.Backup(&buf); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "backup")
			if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.marked {
				if err := fsm.MarkRestore(path, path+".marked"); err != nil {
					t.Fatal(err)
				}
				path += ".marked"
			}
			x := fsmtest.Open(t)
			x.MustAt(t, now, fsm.CmdClusterLevel, fsm.ClusterLevel{Level: tc.level})
			for i := range 2 {
				x.MustAt(t, now, fsm.CmdAccountCreate, fsm.AccountCreate{ID: fmt.Sprint("acc_x", i), Email: fmt.Sprintf("x%d@example.com", i)})
			}
			fh, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := x.FSM.Restore(fh); err != nil {
				t.Fatal(err)
			}
			x.MustAt(t, now, fsm.CmdReverseZoneAdd, fsm.ReverseZoneAdd{Zone: "100.51.198.in-addr.arpa", Pool: "v4"})

			var got, epoch uint64
			var z store.ReverseZone
			_ = x.FSM.Read(func(rt store.ReadTx) (err error) {
				got, epoch = readIndex(rt), rt.RestoreEpoch()
				z, err = rt.ReverseZone("100.51.198.in-addr.arpa")
				return err
			})
			if got != tc.want {
				t.Fatalf("readIndex %d, want %d (zone changed at %d)", got, tc.want, z.ChangedIndex)
			}
			if !z.Dirty() {
				t.Fatalf("the zone mapped after the restore is clean before any pass: %+v", z)
			}
			x.MustAt(t, now, fsm.CmdReverseZoneSynced, fsm.ReverseZoneSynced{Zones: []fsm.ZoneSyncResult{{Zone: z.Zone, Index: got}}, StateEpoch: epoch})
			_ = x.FSM.Read(func(rt store.ReadTx) (err error) { z, err = rt.ReverseZone(z.Zone); return err })
			if z.Dirty() {
				t.Fatalf("a pass recorded at readIndex %d leaves the zone dirty (synced %d, changed %d)", got, z.SyncedIndex, z.ChangedIndex)
			}
		})
	}
}
