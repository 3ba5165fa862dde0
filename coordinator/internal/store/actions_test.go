package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// TestActionsReadAsGetJSON: an action read through ReadTx.Actions (the
// bucket looked up once) and through ReadTx.Action is what encoding/json
// decodes from the record: a record the plain reader reads, one it leaves to
// encoding/json (a field it does not know), a missing one (ErrNotFound,
// named) and one that does not decode (the decode error, naming the key);
// several reads through one Actions each get their own record.
func TestActionsReadAsGetJSON(t *testing.T) {
	at := time.Date(2026, 6, 3, 10, 0, 0, 0, time.UTC)
	plain := Action{Action: api.Action{ID: "act_1", Command: api.ActionServerProvision, Status: api.ActionPending, ResourceType: "server",
		ResourceID: "srv_1", CreatedAt: at}, NodeID: "hv-1", Target: "vm-1", Params: json.RawMessage(`{"template":"debian-12"}`), Deadline: at.Add(time.Hour)}
	other := plain
	other.ID, other.ResourceID = "act_2", "srv_2"
	records := map[string]string{"act_3": `{"id":"act_3","command":"server.start","unknown_field":1}`, "act_4": `{"id":`}
	db := testDB(t, func(tx *bolt.Tx) error {
		for _, a := range []Action{plain, other} {
			raw, ok := EncodeAction(&a)
			if !ok {
				t.Fatalf("EncodeAction %s", a.ID)
			}
			if err := tx.Bucket(BucketActions).Put([]byte(a.ID), raw); err != nil {
				return err
			}
		}
		for k, v := range records {
			if err := tx.Bucket(BucketActions).Put([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	_ = db.View(func(tx *bolt.Tx) error {
		r := Read(tx)
		actions := r.Actions()
		for _, id := range []string{"act_1", "act_2", "act_3", "act_4", "act_5", "act_1"} {
			var want Action
			wantErr := GetJSON(tx, BucketActions, []byte(id), &want)
			for name, read := range map[string]func(string) (Action, error){"Actions.Action": actions.Action, "ReadTx.Action": r.Action} {
				got, err := read(id)
				switch {
				case wantErr == nil && err != nil:
					t.Errorf("%s %s: %v", name, id, err)
				case wantErr == nil && !reflect.DeepEqual(got, want):
					t.Errorf("%s %s: %+v, want %+v", name, id, got, want)
				case errors.Is(wantErr, ErrNotFound) && (!errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "action "+id)):
					t.Errorf("%s %s: %v, want not found naming it", name, id, err)
				case wantErr != nil && !errors.Is(wantErr, ErrNotFound) && (err == nil || err.Error() != wantErr.Error()):
					t.Errorf("%s %s: %v, want %v", name, id, err, wantErr)
				}
			}
		}
		return nil
	})
}

// BenchmarkActionReads: 8 actions read in one read transaction of a
// bucket of 300, as a dispatcher scan after a burst of orders reads them:
// through one Actions (the bucket looked up once) and, the baseline,
// ReadTx.Action each (looked up for each read).
func BenchmarkActionReads(b *testing.B) {
	at := time.Date(2026, 6, 3, 10, 0, 0, 0, time.UTC)
	db, err := bolt.Open(filepath.Join(b.TempDir(), "store.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var ids []string
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := CreateBuckets(tx); err != nil {
			return err
		}
		for i := range 300 {
			a := Action{Action: api.Action{ID: fmt.Sprintf("act_%04d", i), Command: api.ActionServerProvision, Status: api.ActionPending,
				ResourceType: "server", ResourceID: fmt.Sprintf("srv_%04d", i), CreatedAt: at}, NodeID: "hv-1", Target: "vm-1",
				Params: json.RawMessage(`{"plan":{"vcpus":1,"memory_mib":1024,"disk_gib":25},"template":"debian-12"}`), Deadline: at.Add(time.Hour)}
			raw, _ := EncodeAction(&a)
			if err := tx.Bucket(BucketActions).Put([]byte(a.ID), raw); err != nil {
				return err
			}
			if i%37 == 0 && len(ids) < 8 {
				ids = append(ids, a.ID)
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	for _, way := range []struct {
		name string
		read func(r ReadTx) func(string) (Action, error)
	}{
		{"Actions.Action", func(r ReadTx) func(string) (Action, error) { return r.Actions().Action }},
		{"ReadTx.Action", func(r ReadTx) func(string) (Action, error) { return r.Action }},
	} {
		b.Run(way.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = db.View(func(tx *bolt.Tx) error {
					read := way.read(Read(tx))
					for _, id := range ids {
						if _, err := read(id); err != nil {
							b.Fatal(err)
						}
					}
					return nil
				})
			}
		})
	}
}
