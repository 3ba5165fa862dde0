package store

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/plainjson/codectest"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// checkActionCodec: whenever EncodeAction writes an action it writes
// json.Marshal's bytes, and whenever readAction reads those bytes it gives
// what json.Unmarshal gives. It reports whether both took the fast path.
func checkActionCodec(t testing.TB, a Action) (fast bool) {
	t.Helper()
	ok := codectest.Encoding(t, "EncodeAction", EncodeAction, a)
	want, err := json.Marshal(a)
	if err != nil {
		return false
	}
	return codectest.Reading(t, "readAction", readAction, want) && ok
}

func TestActionCodecMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 1, 17, 4, 5, 123456000, time.UTC)
	later := at.Add(time.Second)
	provision := Action{Action: api.Action{ID: "act_1", Command: api.ActionServerProvision, Status: api.ActionPending, ResourceType: "server", ResourceID: "srv_1", CreatedAt: at},
		AccountID: "acc_1", NodeID: "hv-1", Target: "vm-1", Mutating: true, Deadline: at.Add(time.Hour),
		Params: json.RawMessage(`{"bridge":"br0","hostname":"h.example.com","plan":{"vcpus":1,"memory_mib":256,"disk_gib":1},"resolvers":[],"ssh_keys":["ssh-ed25519 AAAA x@y"],"n":-3,"t":true,"f":false,"z":null}`)}
	running := provision
	running.Status, running.StartedAt, running.Step, running.Progress = api.ActionRunning, &at, "accepted", 40
	done := running
	done.Status, done.FinishedAt, done.Progress = api.ActionSuccess, &later, 100
	failed := running
	failed.Status, failed.FinishedAt, failed.Error = api.ActionFailed, &later, &api.ActionError{Code: "failed", Message: "no template (the order's 100 cents were refunded to the wallet)"}
	plain := Action{Action: api.Action{ID: "act_2", Command: api.ActionServerStop, CreatedAt: at}, NeedsSecret: true, SnapshotID: "snap_1", Deadline: at}
	rebooted := done
	rebooted.Command, rebooted.Method = api.ActionServerReboot, api.NodeRebootStarted // a reboot of a stopped server
	odd := []Action{
		{Action: api.Action{ID: "act_<3>", Status: "é\u2028\xff"}, Step: "a\"b\\c\n"},                                  // escaped strings: encoded fast, read slowly
		{Action: api.Action{ID: "a", CreatedAt: at.In(time.FixedZone("x", 3600))}},                                     // another zone
		{Action: api.Action{ID: "a", CreatedAt: at}, Deadline: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},           // json.Marshal refuses
		{Action: api.Action{ID: "a", CreatedAt: at}, Params: json.RawMessage(`{"a": 1}`)},                              // not compact
		{Action: api.Action{ID: "a", CreatedAt: at}, Params: json.RawMessage(`{"a":"<b>"}`)},                           // escaped for HTML
		{Action: api.Action{ID: "a", CreatedAt: at}, Params: json.RawMessage(`{"a":1.5}`)},                             // a float
		{Action: api.Action{ID: "a", CreatedAt: at}, Params: json.RawMessage(`null`)},                                  // null params
		{Action: api.Action{ID: "a", CreatedAt: at}, Meta: map[string]string{"os": "debian"}},                          // meta
		{Action: api.Action{ID: "a", CreatedAt: at}, Snapshot: &api.ServerSnapshot{ID: "s", Name: "n", CreatedAt: at}}, // snapshot
	}
	// A plain action takes the fast path both ways; an odd one not both ways.
	codectest.Paths(t, "action", func(a Action) bool { return checkActionCodec(t, a) },
		[]Action{provision, running, done, failed, plain, rebooted, {Action: api.Action{Error: &api.ActionError{}}}}, odd)
	// Records encoding/json reads but writes otherwise are read slowly.
	codectest.Paths(t, "action record", func(raw string) bool { return codectest.Reading(t, "readAction", readAction, []byte(raw)) }, nil,
		[]string{`{"id":"a" }`, `{"command":"c","id":"a"}`, `{"id":"a","id":"b"}`, `{"progress":1.0}`, `{"params":{"a":[1,2]},"x":1}`, `{"error":null}`, `{"started_at":null}`,
			`{"id":"a"}{}`}) // a value after the record
}

// ReadTx.Action gives the stored action whichever way it was written, and
// names a missing one.
func TestActionReadsBothWays(t *testing.T) {
	at := time.Date(2026, 12, 1, 17, 4, 5, 0, time.UTC)
	fast := Action{Action: api.Action{ID: "act_fast", Status: api.ActionPending, CreatedAt: at}, Params: json.RawMessage(`{"a":1}`), Deadline: at}
	slow := Action{Action: api.Action{ID: "act_slow", Status: api.ActionPending, CreatedAt: at}, Meta: map[string]string{"os": "x"}, Deadline: at}
	db := testDB(t, func(tx *bolt.Tx) error {
		for _, a := range []Action{fast, slow} {
			if err := PutJSON(tx, BucketActions, []byte(a.ID), a); err != nil {
				return err
			}
		}
		return nil
	})
	read(t, db, func(r ReadTx) {
		for _, want := range []Action{fast, slow} {
			got, err := r.Action(want.ID)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("Action(%s) = %+v, %v; want %+v", want.ID, got, err, want)
			}
		}
		if _, err := r.Action("act_none"); err == nil || err.Error() != "action act_none: not found" {
			t.Errorf("missing action: %v", err)
		}
	})
}

func FuzzEncodeAction(f *testing.F) {
	f.Add("act_1", "server.provision", "running", 40, "srv_1", int64(1764608645123456000), []byte(`{"a":[1,"b",{}],"c":null}`), "accepted", uint8(7))
	f.Add("act_2", "server.reboot", "started", 100, "srv_1", int64(1764608645123456000), []byte(`{}`), "", uint8(32+8))
	f.Add("a<\"\\", "\xff\u2028", "x\x00", -1, "", int64(-62135596800000000), []byte(`{"a": "<"}`), "", uint8(0))
	f.Fuzz(func(t *testing.T, id, command, status string, progress int, resource string, nanos int64, params []byte, step string, opts uint8) {
		at := time.Unix(0, nanos).UTC()
		a := Action{Action: api.Action{ID: id, Command: command, Status: status, Progress: progress, ResourceType: "server", ResourceID: resource, CreatedAt: at},
			AccountID: id, NodeID: resource, Target: step, Params: params, NeedsSecret: opts&1 != 0, Mutating: opts&2 != 0, Deadline: at.Add(time.Duration(progress)), Step: step}
		if opts&4 != 0 {
			a.StartedAt = &at
		}
		if opts&8 != 0 {
			a.FinishedAt, a.Error = &at, &api.ActionError{Code: status, Message: step}
		}
		if opts&16 != 0 {
			a.SnapshotID = command
		}
		if opts&32 != 0 {
			a.Method = status
		}
		checkActionCodec(t, a)
	})
}

// FuzzReadAction: whatever readAction reads, json.Unmarshal reads the same.
func FuzzReadAction(f *testing.F) {
	at := time.Date(2026, 12, 1, 17, 4, 5, 123456000, time.UTC)
	good, _ := json.Marshal(Action{Action: api.Action{ID: "act_1", Status: "running", CreatedAt: at, StartedAt: &at, Error: &api.ActionError{Code: "c"}},
		Params: json.RawMessage(`{"plan":{"vcpus":1},"keys":["k"]}`), Mutating: true, Deadline: at})
	f.Add(good)
	rebooted, _ := json.Marshal(Action{Action: api.Action{ID: "act_2", Command: api.ActionServerReboot, Status: "success", CreatedAt: at, Method: "started"}, Deadline: at})
	f.Add(rebooted)
	f.Add([]byte(`{"id":"a","progress":-0,"created_at":"2026-12-01T17:04:05+03:00","params":[true,false,null,"x"],"needs_secret":false}`))
	f.Add([]byte(`{"created_at":"2026-13-01T17:04:05Z"}`))
	f.Fuzz(func(t *testing.T, b []byte) { codectest.Reading(t, "readAction", readAction, b) })
}
