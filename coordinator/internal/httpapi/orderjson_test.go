package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/apitest"
	"github.com/hostplane/hostplane/internal/plainjson/codectest"
	"github.com/hostplane/hostplane/pkg/api"
)

// checkServerOrderBody: whenever encodeServerOrder writes an order's body,
// it writes json.Encoder's bytes (json.Marshal's and a newline), and
// writeJSON answers those bytes.
func checkServerOrderBody(t testing.TB, o api.ServerOrder) (fast bool) {
	t.Helper()
	fast = codectest.Encoding(t, "encodeServerOrder", func(o *api.ServerOrder) ([]byte, bool) {
		b, ok := encodeServerOrder(o)
		if !ok {
			return nil, false
		}
		if len(b) == 0 || b[len(b)-1] != '\n' {
			t.Fatalf("encodeServerOrder wrote no trailing newline: %q", b)
		}
		return b[:len(b)-1], true
	}, o)
	var want bytes.Buffer
	if err := json.NewEncoder(&want).Encode(o); err != nil {
		return fast // writeJSON then writes nothing more; not ours
	}
	rec := httptest.NewRecorder()
	writeJSON(rec, 201, o)
	if !bytes.Equal(rec.Body.Bytes(), want.Bytes()) {
		t.Fatalf("writeJSON(%+v)\n got %s\nwant %s", o, rec.Body.Bytes(), want.Bytes())
	}
	return fast
}

func TestServerOrderBodyMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 1, 17, 4, 5, 123456000, time.UTC)
	until := at.AddDate(0, 1, 0)
	ordered := apitest.PaidServerOrder(at, "1")
	ordered.Server.OS, ordered.Server.Location, ordered.RootPassword = "Debian 12", "", "Zq7<&>\"\\x"
	hostile := ordered
	hostile.Server.Label, hostile.Server.Hostname, hostile.RootPassword = "ünï \u2028 \"x\" \xff <b>", "", ""
	hostile.Server.IPv4, hostile.Server.IPv6, hostile.Server.ActionID, hostile.Server.PaidUntil, hostile.Server.TerminatedAt = "", "", "", nil, &at
	hostile.Action.StartedAt, hostile.Action.FinishedAt, hostile.Action.Error = &at, &until, &api.ActionError{Code: "x<", Message: "\x00\u2029"}
	hostile.Invoice.PaidAt, hostile.Invoice.Lines, hostile.Invoice.Payments = nil, nil, []api.Payment{}
	later := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	codectest.Paths(t, "order", func(o api.ServerOrder) bool { return checkServerOrderBody(t, o) },
		[]api.ServerOrder{ordered, hostile, {}}, // UTC times
		[]api.ServerOrder{
			{Server: api.Server{CreatedAt: at.In(time.FixedZone("x", 3600))}},
			{Action: api.Action{FinishedAt: &later}},
			{Invoice: api.Invoice{Payments: []api.Payment{{CreatedAt: later}}}},
		})
}

func FuzzEncodeServerOrderBody(f *testing.F) {
	f.Add("srv_1", "web", "pending", uint32(1), uint64(256), int64(1764608645123456000), "pw", int64(900), uint8(7))
	f.Add("s<\"\\", "\xff\u2028", "x\x00", uint32(0), uint64(1<<63), int64(-62135596800000000), "", int64(-1), uint8(0))
	f.Fuzz(func(t *testing.T, id, label, status string, vcpus uint32, mem uint64, nanos int64, password string, cents int64, opts uint8) {
		at := time.Unix(0, nanos).UTC()
		later := at.Add(time.Duration(cents))
		o := api.ServerOrder{
			Server: api.Server{ID: id, Label: label, Hostname: password, Status: status, Plan: api.ServerPlan{Slug: label, VCPUs: vcpus, MemoryMiB: mem, DiskGiB: mem / 3},
				OSTemplate: status, OS: label, IPv4: password, IPv6: id, ActionID: id, CreatedAt: at, UpdatedAt: later},
			Action:       api.Action{ID: id, Command: status, Status: status, Progress: int(cents % 101), ResourceType: label, ResourceID: id, CreatedAt: later},
			Invoice:      api.Invoice{ID: id, Number: label, Status: status, Currency: password, TotalUsdCents: cents, CreatedAt: at, DueAt: later},
			RootPassword: password,
		}
		if opts&1 != 0 {
			o.Server.PaidUntil, o.Invoice.PaidAt = &later, &at
		}
		if opts&2 != 0 {
			o.Server.TerminatedAt, o.Action.StartedAt, o.Action.FinishedAt = &at, &at, &later
		}
		if opts&4 != 0 {
			o.Action.Error = &api.ActionError{Code: status, Message: label}
		}
		if opts&8 != 0 {
			o.Invoice.Lines = []api.InvoiceLine{{Description: label, Quantity: cents / 3, UnitPriceUsdCents: cents, AmountUsdCents: -cents}}
		}
		if opts&16 != 0 {
			o.Invoice.Payments = []api.Payment{{ID: id, Method: status, AmountUsdCents: cents, TransactionID: password, CreatedAt: later}}
		}
		checkServerOrderBody(t, o)
	})
}

// BenchmarkServerOrderBody: writeJSON's body of a server order through
// encodeServerOrder beside json.Encoder.
//
//	go test ./coordinator/internal/httpapi -run '^$' -bench ServerOrderBody -benchmem
func BenchmarkServerOrderBody(b *testing.B) {
	at := time.Date(2026, 12, 1, 17, 4, 5, 123456000, time.UTC)
	o := apitest.PaidServerOrder(at, "01KBKQ4Z3N0000000000000000") // ids as long as real ones
	o.RootPassword = "Zq7mWc2rT9xKp4Lh"
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			if _, ok := encodeServerOrder(&o); !ok {
				b.Fatal("slow path")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			var buf bytes.Buffer
			_ = json.NewEncoder(&buf).Encode(o)
		}
	})
}

// checkServerOrderRequestRead: whenever readServerOrderRequest reads a body,
// decodeStrict decodes it without a refusal into the same request; it
// reports whether it read the body.
func checkServerOrderRequestRead(t testing.TB, body []byte) (fast bool) {
	t.Helper()
	got, ok := readServerOrderRequest(body)
	if !ok {
		return false
	}
	var want api.ServerOrderRequest
	if err := decodeStrict(body, &want); err != nil {
		t.Fatalf("readServerOrderRequest read %q, which decodeStrict refuses: %v", body, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("readServerOrderRequest(%q)\n got %#v\nwant %#v", body, got, want)
	}
	return true
}

// TestReadServerOrderRequest: the body a client marshalling
// api.ServerOrderRequest sends is read without reflection, as decodeStrict
// reads it; anything else (whitespace, members out of order, twice, in
// another case or unknown, escapes, non-ASCII, null, trailing data) is left
// to decodeStrict, and DecodeServerOrder answers it as before.
func TestReadServerOrderRequest(t *testing.T) {
	var clients []string // the bodies a client marshalling the request sends
	for _, req := range []api.ServerOrderRequest{
		{PlanSlug: "vps-t", Label: "web-1", Hostname: "web-1.example.com", OSTemplate: "debian-12"},
		{PlanSlug: "vps-t", Hostname: "h", OSTemplate: "base", OSFamily: "debian", Location: "ist-1", SSHKeys: []string{"ssh-ed25519 AAAA x", "ssh-rsa B"}},
		{PlanSlug: "vps-t", Hostname: "h", OSTemplate: "base", SSHKeys: []string{}},
		{},
	} {
		body, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, string(body))
	}
	codectest.Paths(t, "body", func(body string) bool { return checkServerOrderRequestRead(t, []byte(body)) }, clients, []string{
		`{"plan_slug": "vps-t","hostname":"h","os_template":"t"}`,
		`{"plan_slug":"vps-t","hostname":"h","os_template":"t"}` + "\n",
		`{"hostname":"h","plan_slug":"vps-t","os_template":"t"}`,
		`{"plan_slug":"vps-t","plan_slug":"vps-u","hostname":"h","os_template":"t"}`,
		`{"Plan_Slug":"vps-t","hostname":"h","os_template":"t"}`,
		`{"plan_slug":"vps-t","hostname":"h","os_template":"t","extra":1}`,
		`{"plan_slug":"vps-t","label":"w\u00e9b","hostname":"h","os_template":"t"}`,
		`{"plan_slug":"vps-t","label":"wéb","hostname":"h","os_template":"t"}`,
		`{"plan_slug":"vps-t","label":null,"hostname":"h","os_template":"t"}`,
		`{"plan_slug":"vps-t","hostname":"h","os_template":"t","ssh_keys":null}`,
		`{"plan_slug":"vps-t","hostname":"h","os_template":"t"}{}`,
		`{"plan_slug":"vps-t","hostname":"h","os_template":"t"`,
		`{"plan_slug":"","label":"a\u003cb\u003e\u0026c","hostname":"","os_template":""}`,
		`null`, ``, `[]`,
	})
	// DecodeServerOrder's answers are as before on both paths.
	if req, err := DecodeServerOrder([]byte(`{"plan_slug":"vps-t","label":"web","hostname":"h","os_template":"base","location":"ist-1"}`)); err != nil ||
		!reflect.DeepEqual(req, api.ServerOrderRequest{PlanSlug: "vps-t", Label: "web", Hostname: "h", OSTemplate: "base", Location: "ist-1"}) {
		t.Errorf("fast path: %+v, %v", req, err)
	}
	if _, err := DecodeServerOrder([]byte(`{"plan_slug":"vps-t","hostname":"h","os_template":"base","extra":1}`)); err == nil || !strings.Contains(err.Error(), "extra") {
		t.Errorf("unknown member: %v, want a refusal naming it", err)
	}
	if _, err := DecodeServerOrder([]byte(`{"plan_slug":"vps-t","hostname":"H!","os_template":"base"}`)); err == nil || !strings.Contains(err.Error(), "hostname") {
		t.Errorf("bad hostname on the fast path: %v, want a refusal naming hostname", err)
	}
}

// FuzzReadServerOrderRequest holds readServerOrderRequest to decodeStrict:
// whatever it reads, decodeStrict reads the same.
func FuzzReadServerOrderRequest(f *testing.F) {
	for _, s := range []string{
		`{"plan_slug":"vps-2","label":"web-1","hostname":"web-1","os_template":"ubuntu-22.04","os_family":"ubuntu"}`,
		`{"plan_slug":"vps-2","hostname":"web-1.example.com","os_template":"debian-12","location":"ist-1","ssh_keys":["ssh-ed25519 AAAA x"]}`,
		`{"plan_slug":"vps-2","hostname":"h","os_template":"t","ssh_keys":[]}`, `{}`, `{"label":"<&>"}`,
		`{"plan_slug":"vps-2","hostname":"h","os_template":"t"}{}`, `{"PLAN_SLUG":"x"}`, `{"plan_slug":"a","plan_slug":"b"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkServerOrderRequestRead(t, body) })
}
