package fsm

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/plainjson/codectest"
	"github.com/hostplane/hostplane/pkg/api"
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
	o.Create.Locations = []string{"fra-1", "ist 2"}
	locations, _ := json.Marshal(o)
	for _, b := range [][]byte{plain, overcommit, locations, []byte(`{"create":{"locations":[]}}`)} {
		if !checkReadServerOrder(t, b) {
			t.Errorf("a plain order was not read: %s", b)
		}
	}
	o.Create.CPUOvercommit = 1.5
	fraction, _ := json.Marshal(o)
	o.Create.CPUOvercommit, o.Create.Addresses = 0, &AddrRequest{}
	addresses, _ := json.Marshal(o)
	for _, b := range [][]byte{fraction, addresses, []byte(`{"create":{"locations":null}}`), []byte(`{"create":{"locations":["k\u00f6ln"]}}`), []byte(`{"tx_id":"a","plan_slug":"b"}`), []byte(`{"create":{"cpu_overcommit":9007199254740993}}`)} {
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
	f.Add([]byte(`{"plan_slug":"x","create":{"cpu_overcommit":8,"locations":["fra-1","Köln",""]}}`))
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

// realOrder is an order as the API proposes it (the leader's bytes of one
// in BenchmarkOrdersVsTickets: zero times, provision params, a deadline).
func realOrder() ServerOrder {
	o := testOrder(3, "vps-t")
	s, a := &o.Create.Server, &o.Create.Action
	s.Hostname, s.Plan, s.OSTemplate, s.OS = "web-0", api.ServerPlan{Slug: "vps-t", VCPUs: 1, MemoryMiB: 256, DiskGiB: 1}, "base", "base"
	a.ResourceType, a.NeedsSecret, a.Mutating = "server", true, true
	a.Params = json.RawMessage(`{"hostname":"web-0","plan":{"vcpus":1,"memory_mib":256,"disk_gib":1},"template":"base"}`)
	a.Deadline = time.Date(2026, 12, 2, 6, 48, 18, 915812910, time.UTC)
	o.Create.CPUOvercommit = 8
	return o
}

// checkOrderEncoding: whenever encodeServerOrder writes o, it writes
// json.Marshal's bytes, and NewEnvelope's payload is those bytes too.
func checkOrderEncoding(t testing.TB, o ServerOrder) (fast bool) {
	t.Helper()
	fast = codectest.Encoding(t, "encodeServerOrder", encodeServerOrder, o)
	codectest.Encoding(t, "encodeServerCreate", func(c *ServerCreate) ([]byte, bool) { return encodeServerCreate(nil, c) }, o.Create)
	want, err := json.Marshal(o)
	if err != nil {
		return fast
	}
	env, err := NewEnvelope(CmdServerOrder, time.Now(), o)
	if err != nil || !bytes.Equal(env.Data, want) {
		t.Fatalf("NewEnvelope(%+v) = %s (%v), json.Marshal %s", o, env.Data, err, want)
	}
	return fast
}

func TestServerOrderEncodingMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 2, 6, 48, 18, 1, time.UTC)
	for name, o := range map[string]func(o *ServerOrder){
		"as proposed":           func(*ServerOrder) {},
		"no overcommit":         func(o *ServerOrder) { o.Create.CPUOvercommit = 0 },
		"negative zero":         func(o *ServerOrder) { o.Create.CPUOvercommit = math.Copysign(0, -1) },
		"negative overcommit":   func(o *ServerOrder) { o.Create.CPUOvercommit = -3 },
		"2^53":                  func(o *ServerOrder) { o.Create.CPUOvercommit = 1 << 53 },
		"html and unicode":      func(o *ServerOrder) { o.PlanSlug, o.Create.Server.Label, o.TxID = "<a&b>", "web \u2028 é", "\x01\"\\" },
		"paid, with addresses":  func(o *ServerOrder) { o.Create.Server.PaidUntil, o.Create.Server.IPv4 = &at, "198.51.100.7" },
		"no params, not secret": func(o *ServerOrder) { o.Create.Action.Params, o.Create.Action.NeedsSecret = nil, false },
		"locations":             func(o *ServerOrder) { o.Create.Locations = []string{"fra-1", "ist 2"} },
		"odd locations":         func(o *ServerOrder) { o.Create.Locations = []string{"Köln", "<&>", "", "\u2028\x00"} },
		"empty locations":       func(o *ServerOrder) { o.Create.Locations = []string{} },
	} {
		p := realOrder()
		o(&p)
		if !checkOrderEncoding(t, p) {
			t.Errorf("%s: not encoded", name)
		}
	}
	for name, o := range map[string]func(o *ServerOrder){
		"fraction":         func(o *ServerOrder) { o.Create.CPUOvercommit = 1.5 },
		"above 2^53":       func(o *ServerOrder) { o.Create.CPUOvercommit = 1 << 54 },
		"NaN":              func(o *ServerOrder) { o.Create.CPUOvercommit = math.NaN() },
		"infinite":         func(o *ServerOrder) { o.Create.CPUOvercommit = math.Inf(1) },
		"addresses":        func(o *ServerOrder) { o.Create.Addresses = &AddrRequest{} },
		"local deadline":   func(o *ServerOrder) { o.Create.Action.Deadline = at.In(time.FixedZone("x", 3600)) },
		"action meta":      func(o *ServerOrder) { o.Create.Action.Meta = map[string]string{"k": "v"} },
		"spaced params":    func(o *ServerOrder) { o.Create.Action.Params = json.RawMessage(`{"a": 1}`) },
		"server snapshots": func(o *ServerOrder) { o.Create.Server.Snapshots = []api.ServerSnapshot{{ID: "snap_1"}} },
	} {
		p := realOrder()
		o(&p)
		if checkOrderEncoding(t, p) {
			t.Errorf("%s: encoded outside the fast path", name)
		}
	}
}

func FuzzEncodeServerOrder(f *testing.F) {
	f.Add("vps-t", "web-0", "inv_1", "base", 8.0, int64(1764658098915812910), []byte(`{"template":"base"}`), uint8(0))
	f.Add("<&>", "\xff\u2028", "\x00\"\\", "", -0.5, int64(-62135596800000000), []byte(`{"a":[1,"x"]}`), uint8(255))
	f.Fuzz(func(t *testing.T, slug, label, id, tmpl string, overcommit float64, nanos int64, params []byte, opts uint8) {
		at := time.Unix(0, nanos).UTC()
		o := realOrder()
		o.PlanSlug, o.InvoiceID, o.PaymentID, o.TxID = slug, id, label, tmpl
		s, a := &o.Create.Server, &o.Create.Action
		s.ID, s.Label, s.Hostname, s.OSTemplate, s.VMName, s.CreatedAt, s.UpdatedAt = id, label, label, tmpl, slug, at, at
		a.ID, a.Target, a.Deadline, a.CreatedAt = id, label, at, at
		a.Params = nil
		if json.Valid(params) {
			a.Params = params
		}
		o.Create.CPUOvercommit = overcommit
		if opts&1 != 0 {
			s.PaidUntil = &at
		}
		if opts&2 != 0 {
			a.StartedAt, a.Step = &at, tmpl
		}
		if opts&4 != 0 {
			a.Error = &api.ActionError{Code: slug, Message: label}
		}
		a.NeedsSecret, a.Mutating = opts&8 != 0, opts&16 != 0
		if opts&32 != 0 {
			o.Create.CPUOvercommit = math.Trunc(overcommit)
		}
		if opts&64 != 0 {
			o.Create.Locations = []string{slug, label}
		}
		checkOrderEncoding(t, o)
	})
}
