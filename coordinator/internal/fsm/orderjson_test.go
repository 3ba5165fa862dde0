package fsm

import (
	"encoding/json"
	"reflect"
	"testing"
)

// checkReadServerOrder: whatever readServerOrder reads, json.Unmarshal reads
// the same.
func checkReadServerOrder(t testing.TB, b []byte) (read bool) {
	t.Helper()
	p, ok := readServerOrder(b)
	if ok {
		var want ServerOrder
		if err := json.Unmarshal(b, &want); err != nil || !reflect.DeepEqual(p, want) {
			t.Fatalf("readServerOrder(%s) = %+v, json.Unmarshal %+v (%v)", b, p, want, err)
		}
	}
	return ok
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
