package fsm

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/plainjson/codectest"
)

// checkReadServerOrder: whatever readServerOrder reads, json.Unmarshal reads
// the same.
func checkReadServerOrder(t testing.TB, b []byte) (read bool) {
	t.Helper()
	return codectest.Reading(t, "readServerOrder", readServerOrder, b)
}

func TestReadServerOrder(t *testing.T) {
	o := testOrder(7, "vps-1")
	plain, _ := json.Marshal(o)
	o.Create.CPUOvercommit = 4
	overcommit, _ := json.Marshal(o)
	for _, b := range [][]byte{plain, overcommit} {
		if !checkReadServerOrder(t, b) {
			t.Errorf("a plain order was not read: %s", b)
		}
	}
	o.Create.CPUOvercommit = 1.5
	fraction, _ := json.Marshal(o)
	o.Create.CPUOvercommit, o.Create.Addresses = 0, &AddrRequest{}
	addresses, _ := json.Marshal(o)
	for _, b := range [][]byte{fraction, addresses, []byte(`{"tx_id":"a","plan_slug":"b"}`), []byte(`{"create":{"cpu_overcommit":9007199254740993}}`)} {
		if checkReadServerOrder(t, b) {
			t.Errorf("readServerOrder read %s", b)
		}
	}
}

func FuzzReadServerOrder(f *testing.F) {
	o := testOrder(1, "vps-1")
	o.Create.CPUOvercommit = 4
	b, _ := json.Marshal(o)
	f.Add(b)
	f.Add([]byte(`{"plan_slug":"x","create":{"server":{"id":"s","plan":{"vcpus":1}},"action":{"params":{"a":[1]}},"cpu_overcommit":-0},"tx_id":""}`))
	f.Fuzz(func(t *testing.T, b []byte) { checkReadServerOrder(t, b) })
}

func TestReadActionPayloads(t *testing.T) {
	at := time.Date(2026, 12, 1, 17, 4, 5, 123456000, time.UTC)
	progress, _ := json.Marshal(ActionProgress{ID: "act_1", At: at, Percent: 40, Step: "accepted"})
	finish, _ := json.Marshal(ActionFinish{ID: "act_1", Success: true, Result: json.RawMessage(`{"template":"debian-12"}`)})
	failed, _ := json.Marshal(ActionFinish{ID: "act_1", ErrorCode: "failed", ErrorMessage: "no template debian-12"})
	for _, b := range [][]byte{progress, finish, failed} {
		if !checkReadActionPayload(t, b) {
			t.Errorf("a plain payload was not read: %s", b)
		}
	}
	for _, b := range []string{`{"id":"a","result":null}`, `{"success":true,"id":"a"}`, `{"id":"a","error_message":"\\u00e9"}`, `{"id":"a","at":null}`, `{"id":"a","percent":1.5}`} {
		if checkReadActionPayload(t, []byte(b)) {
			t.Errorf("read %s", b)
		}
	}
}

// checkReadActionPayload: whatever readActionProgress and readActionFinish
// read, json.Unmarshal reads the same; it reports whether either read b.
func checkReadActionPayload(t testing.TB, b []byte) (read bool) {
	t.Helper()
	progress := codectest.Reading(t, "readActionProgress", readActionProgress, b)
	finish := codectest.Reading(t, "readActionFinish", readActionFinish, b)
	return progress || finish
}

func FuzzReadActionPayloads(f *testing.F) {
	f.Add([]byte(`{"id":"act_1","at":"2026-12-01T17:04:05.123456Z","percent":40,"step":"accepted"}`))
	f.Add([]byte(`{"id":"act_1","success":true,"result":{"template":"debian-12","n":[1,-2,null]}}`))
	f.Add([]byte(`{"id":"act_1","success":false,"error_code":"failed","error_message":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) { checkReadActionPayload(t, b) })
}
