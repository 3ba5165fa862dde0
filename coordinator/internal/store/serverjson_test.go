package store

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/plainjson/codectest"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// checkServerEncoding: whenever EncodeServer writes a server, it writes
// json.Marshal's bytes.
func checkServerEncoding(t testing.TB, s Server) (fast bool) {
	t.Helper()
	want, _ := json.Marshal(s)
	checkReadServer(t, want)
	return codectest.Encoding(t, "EncodeServer", EncodeServer, s)
}

// checkReadServer: whatever readServer reads, json.Unmarshal reads the same.
func checkReadServer(t testing.TB, b []byte) (read bool) {
	t.Helper()
	return codectest.Reading(t, "readServer", readServer, b)
}

func TestReadServer(t *testing.T) {
	at := time.Date(2026, 12, 1, 17, 4, 5, 123456000, time.UTC)
	s := Server{Server: api.Server{ID: "srv_1", Label: "web", Status: api.ServerRunning, Plan: api.ServerPlan{Slug: "vps-1", VCPUs: 1, MemoryMiB: 256, DiskGiB: 1}, Location: "ist 1",
		CreatedAt: at, UpdatedAt: at, PaidUntil: &at, TerminatedAt: &at}, AccountID: "acc_1", PowerState: "running", MonthlyUsdCents: -5, InvoiceID: "inv_1",
		Addrs:   []ServerAddr{{Pool: "v4", Unit: netip.MustParsePrefix("198.51.100.10/32"), Addr: netip.MustParsePrefix("198.51.100.10/24"), Gateway: "198.51.100.1"}},
		Renewal: &Renewal{InvoiceID: "inv_2", PeriodStart: at, PeriodEnd: at}, Suspension: &Suspension{By: "operator", Reason: "abuse", At: at}}
	plain, _ := json.Marshal(s)
	proposed, _ := json.Marshal(Server{Server: api.Server{ID: "srv_2"}, Addrs: []ServerAddr{}})
	codectest.Paths(t, "server record", func(b string) bool { return checkReadServer(t, []byte(b)) },
		[]string{string(plain), string(proposed), `{}`, `{"plan":{},"addrs":[]}`},
		[]string{`{"snapshots":[]}`, `{"ptrs":{"a":"b"}}`, `{"label":"<\u00e9>"}`, `{"addrs":[{"unit":"x"}]}`, `{"renewal":null}`, `{"plan":{"vcpus":4294967296}}`, `{"label":"a","id":"b"}`,
			`{"id":"a"}{}`}) // a value after the record
	db := testDB(t, func(tx *bolt.Tx) error { return PutJSON(tx, BucketServers, OwnedKey("acc_1", "srv_1"), s) })
	read(t, db, func(r ReadTx) {
		if got, err := r.OwnedServer("acc_1", "srv_1"); err != nil || !reflect.DeepEqual(got, s) {
			t.Errorf("OwnedServer = %+v, %v; want %+v", got, err, s)
		}
		if _, err := r.OwnedServer("acc_2", "srv_1"); err == nil || err.Error() != "server srv_1: not found" {
			t.Errorf("another account's server: %v", err)
		}
	})
}

func FuzzReadServer(f *testing.F) {
	at := time.Date(2026, 12, 1, 17, 4, 5, 123456000, time.UTC)
	good, _ := json.Marshal(Server{Server: api.Server{ID: "srv_1", Plan: api.ServerPlan{VCPUs: 2}, CreatedAt: at, PaidUntil: &at}, MonthlyUsdCents: 3,
		Addrs: []ServerAddr{{Pool: "p", Unit: netip.MustParsePrefix("2001:db8::/64"), Addr: netip.MustParsePrefix("2001:db8::1/64")}}, Renewal: &Renewal{}, Suspension: &Suspension{}})
	f.Add(good)
	f.Add([]byte(`{"id":"a","plan":{"vcpus":1,"memory_mib":0},"addrs":[{"unit":"","addr":"1.2.3.4/33"}],"monthly_usd_cents":-0}`))
	f.Fuzz(func(t *testing.T, b []byte) { checkReadServer(t, b) })
}

func TestServerEncodingMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 1, 17, 4, 5, 123456000, time.UTC)
	until := at.AddDate(0, 1, 0)
	ordered := Server{Server: api.Server{ID: "srv_1", Label: "web", Hostname: "web.example.com", Status: api.ServerProvisioning,
		Plan: api.ServerPlan{Slug: "vps-1", VCPUs: 1, MemoryMiB: 256, DiskGiB: 1}, OSTemplate: "debian-12", OS: "Debian 12",
		IPv4: "198.51.100.10", IPv6: "2001:db8:0:5::1/64", Location: "fra-1", ActionID: "act_1", CreatedAt: at, UpdatedAt: at, PaidUntil: &until},
		AccountID: "acc_1", NodeID: "hv-1", VMName: "vm-srv-1", MonthlyUsdCents: 100, InvoiceID: "inv_1",
		Addrs: []ServerAddr{
			{Pool: "v4", Unit: netip.MustParsePrefix("198.51.100.10/32"), Addr: netip.MustParsePrefix("198.51.100.10/24"), Gateway: "198.51.100.1"},
			{Pool: "v6", Unit: netip.MustParsePrefix("2001:db8:0:5::/64"), Addr: netip.MustParsePrefix("2001:db8:0:5::1/64")},
			{Pool: "mapped", Unit: netip.MustParsePrefix("::ffff:198.51.100.7/128"), Addr: netip.MustParsePrefix("::ffff:198.51.100.7/96")},
		}}
	running := ordered
	running.Status, running.PowerState, running.ActionID, running.UpdatedAt = api.ServerRunning, api.ServerRunning, "", at.Add(time.Minute)
	renewing := running
	renewing.Renewal = &Renewal{InvoiceID: "inv_2", PeriodStart: until, PeriodEnd: until.AddDate(0, 1, 0)}
	renewing.Suspension = &Suspension{By: SuspendNonPayment, Reason: "invoice <inv_2> unpaid", InvoiceID: "inv_2", At: at}
	terminated := running
	terminated.TerminatedAt, terminated.Addrs, terminated.Suspension = &at, nil, &Suspension{By: SuspendOperator, At: at}
	placed := Server{Server: api.Server{ID: "srv_2", Label: "ünï \u2028 \"x\" \xff", CreatedAt: at, UpdatedAt: at}}
	codectest.Paths(t, "server", func(s Server) bool { return checkServerEncoding(t, s) },
		[]Server{ordered, running, renewing, terminated, placed},
		[]Server{
			{Server: api.Server{CreatedAt: at.In(time.FixedZone("x", 3600)), UpdatedAt: at}},
			{Server: api.Server{CreatedAt: at, UpdatedAt: at, PaidUntil: &time.Time{}}, Renewal: &Renewal{PeriodStart: at, PeriodEnd: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
			{Server: api.Server{CreatedAt: at, UpdatedAt: at}, Snapshots: []api.ServerSnapshot{{ID: "s"}}},
			{Server: api.Server{CreatedAt: at, UpdatedAt: at}, PTRs: map[string]string{"198.51.100.10": "a.example"}},
			{Server: api.Server{CreatedAt: at, UpdatedAt: at}, PTRAt: map[string]uint64{"198.51.100.10": 3}},
			{Server: api.Server{CreatedAt: at, UpdatedAt: at}, Addrs: []ServerAddr{{Pool: "p"}}},
		})
}

func FuzzEncodeServer(f *testing.F) {
	f.Add("srv_1", "web", "running", uint32(1), uint64(256), int64(1764608645123456000), []byte{198, 51, 100, 10}, uint8(24), "198.51.100.1", int64(100), uint8(7))
	f.Add("s<\"\\", "\xff\u2028", "x\x00", uint32(0), uint64(1<<63), int64(-62135596800000000), []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1}, uint8(64), "", int64(-1), uint8(0))
	f.Fuzz(func(t *testing.T, id, label, status string, vcpus uint32, mem uint64, nanos int64, ip []byte, bits uint8, gateway string, cents int64, opts uint8) {
		at := time.Unix(0, nanos).UTC()
		s := Server{Server: api.Server{ID: id, Label: label, Hostname: gateway, Status: status, Plan: api.ServerPlan{Slug: label, VCPUs: vcpus, MemoryMiB: mem, DiskGiB: mem / 3},
			OSTemplate: status, IPv4: gateway, ActionID: id, CreatedAt: at, UpdatedAt: at.Add(time.Duration(cents))},
			AccountID: id, NodeID: status, VMName: label, MonthlyUsdCents: cents, InvoiceID: gateway}
		if addr, ok := netip.AddrFromSlice(ip); ok {
			s.Addrs = []ServerAddr{{Pool: label, Unit: netip.PrefixFrom(addr, int(bits)), Addr: netip.PrefixFrom(addr, int(bits)/2), Gateway: gateway}}
		}
		if opts&1 != 0 {
			s.PaidUntil = &at
		}
		if opts&2 != 0 {
			s.TerminatedAt, s.PowerState = &at, status
		}
		if opts&4 != 0 {
			s.Renewal = &Renewal{InvoiceID: id, PeriodStart: at, PeriodEnd: at.AddDate(0, 1, 0)}
		}
		if opts&8 != 0 {
			s.Suspension = &Suspension{By: status, Reason: label, InvoiceID: gateway, At: at}
		}
		checkServerEncoding(t, s)
	})
}
