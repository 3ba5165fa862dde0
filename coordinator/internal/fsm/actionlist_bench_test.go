package fsm

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkLevelTwoBackfill is the apply that raises a level-1 state of
// 100,000 finished actions (1,000 accounts, created one a second, so the
// accounts' actions interleave in id order) to level 2: the action index's
// backfill, its commit and fsync, as every replica applies it. One op is one
// raise; building the state is not timed. Run it with -benchtime 3x.
func BenchmarkLevelTwoBackfill(b *testing.B) {
	const actions, accounts = 100000, 1000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		f := open(b, filepath.Join(b.TempDir(), "f.db"))
		at := t0
		err := f.db.Update(func(tx *bolt.Tx) error {
			for j := 0; j < actions; j++ {
				at = at.Add(time.Second)
				done := at.Add(time.Minute)
				a := store.Action{Action: api.Action{ID: ids.New("act", at), Command: api.ActionServerReboot, Status: api.ActionSuccess, Progress: 100,
					ResourceType: "server", ResourceID: ids.New("srv", t0.Add(time.Duration(j%5000)*time.Hour)), CreatedAt: at, StartedAt: &at, FinishedAt: &done, Method: api.NodeRebootGuest},
					AccountID: fmt.Sprintf("acc_%026d", j%accounts), NodeID: "hv-1", Target: "hp-srv", Mutating: true, Deadline: at.Add(time.Hour)}
				raw, ok := store.EncodeAction(&a)
				if !ok {
					return fmt.Errorf("action %s does not encode", a.ID)
				}
				if err := tx.Bucket(store.BucketActions).Put([]byte(a.ID), raw); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		l := logAt(b, 1, CmdClusterLevel, at, ClusterLevel{Level: 2})
		b.StartTimer()
		r := f.ApplyBatch([]*raft.Log{l})[0].(*Result)
		b.StopTimer()
		var indexed int
		_ = f.View(func(tx *bolt.Tx) error { indexed = tx.Bucket(store.BucketAccountActions).Stats().KeyN; return nil })
		if r.Err != nil || indexed != actions {
			b.Fatalf("raise: %v, %d actions indexed, want %d", r.Err, indexed, actions)
		}
		f.Close()
	}
	b.ReportAllocs()
}
