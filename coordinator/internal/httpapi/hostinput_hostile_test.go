package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// hostileHostNames are host names no field takes, in the JSON of a
// request body: a non-ASCII capital that Unicode lower-cases into ASCII
// (U+212A KELVIN SIGN is "k" to strings.ToLower), two trailing dots, and
// spaces (around the name and inside it).
var hostileHostNames = []string{`\u212aweb.example.com`, `web1.example.com..`, ` web1.example.com`, `web1.example.com `, `web1 .example.com`, `.`}

// orderingAPI is newSrvAPIWith (node n1) where servers can be ordered: the
// node hv-secret-node live with the KVM role and capacity, and a VPS product
// slug (1 vCPU, 256 MB, 1 GB; 12 USD a month).
func orderingAPI(tb testing.TB, slug string, capacity api.AgentNodeCapacity) *srvAPI {
	tb.Helper()
	s := newSrvAPIWith(tb, Config{NodeID: "n1"})
	s.a.ServerAdmin(http.NotFoundHandler(), ServerAdminConfig{Nodes: NodeDeps{Live: func(string) (time.Time, bool) { return time.Now(), true }}})
	s.apply(fsm.CmdNodeHello, fsm.NodeHello{NodeID: "hv-secret-node", CertSerial: "s1", Roles: []string{api.RoleKVM}, ProtocolVersion: 103,
		Capacity: capacity})
	s.apply(fsm.CmdProductPut, fsm.ProductPut{Slug: slug, Create: true, Product: api.ProductRequest{Category: api.ProductVPS, NameEn: "B",
		RetailMonthlyUsdCents: 1200, Specs: api.ProductSpecs{VCPU: 1, RAMMB: 256, DiskGB: 1}}})
	return s
}

// TestServerHostnameInputRule: a server order's hostname follows the host
// name rule of every other host name a customer gives (validate.HostnameInput):
// `Web1.Example.com.` is ordered as web1.example.com, stored and answered so,
// and its quote is priced; a hostile name (hostileHostNames) is a 400 naming
// hostname that charges, stores and places nothing. Before, any capital or a
// trailing dot was a 400 ("must be a lower-case DNS name") while a PTR host
// name or a domain took them. The operator's POST /admin/servers follows the
// same rule for its optional hostname.
func TestServerHostnameInputRule(t *testing.T) {
	s := orderingAPI(t, "vps-h", api.AgentNodeCapacity{VCPUs: 64, MemoryBytes: 1 << 40, DiskBytes: 1 << 44})
	acc, key := s.account(api.ScopeOrdersWrite, api.ScopeServersRead, api.ScopeBillingRead)
	s.apply(fsm.CmdWalletCredit, fsm.WalletCredit{TxID: "wtx_host", AccountID: acc, AmountUsdCents: 10_000})
	order := func(hostname string) string {
		return `{"plan_slug":"vps-h","hostname":"` + hostname + `","os_template":"debian-12"}`
	}
	servers := func() int {
		n := 0
		if err := s.node.FSM.Read(func(r store.ReadTx) (err error) { _, n, err = r.Servers(acc, 0, 1); return }); err != nil {
			t.Fatal(err)
		}
		return n
	}

	for i, h := range hostileHostNames {
		for _, path := range []string{"/v1/servers", "/v1/servers/quote"} {
			if r := s.call(key, "POST", path, order(h), "Idempotency-Key", fmt.Sprint("bad-", i, path)); r.status != http.StatusBadRequest || !strings.Contains(r.msg(), `"hostname"`) {
				t.Errorf("POST %s hostname %q: %d %s; want 400 naming hostname", path, h, r.status, r.body)
			}
		}
	}
	if b, n := s.balance(acc), servers(); b != 10_000 || n != 0 {
		t.Fatalf("refused hostnames charged or placed: balance %d, %d servers", b, n)
	}

	if r := s.call(key, "POST", "/v1/servers/quote", order("Web1.Example.com.")); r.status != http.StatusOK {
		t.Errorf("quote of Web1.Example.com.: %d %s", r.status, r.body)
	}
	r := s.call(key, "POST", "/v1/servers", order("Web1.Example.com."), "Idempotency-Key", "good-1")
	if r.status != http.StatusCreated {
		t.Fatalf("order of Web1.Example.com.: %d %s", r.status, r.body)
	}
	sv, _ := r.m["server"].(map[string]any)
	if sv["hostname"] != "web1.example.com" {
		t.Fatalf("order of Web1.Example.com. answered hostname %v, want web1.example.com", sv["hostname"])
	}
	var stored store.Server
	if err := s.node.FSM.Read(func(r store.ReadTx) (err error) { stored, err = r.Server(sv["id"].(string)); return }); err != nil {
		t.Fatal(err)
	}
	if stored.Hostname != "web1.example.com" {
		t.Fatalf("stored hostname %q, want web1.example.com", stored.Hostname)
	}
	if g := s.call(key, "GET", "/v1/servers/"+stored.ID, ""); g.status != 200 || g.m["hostname"] != "web1.example.com" {
		t.Fatalf("GET the server: %d %s", g.status, g.body)
	}

	// The admin create decodes the same rule.
	for _, h := range hostileHostNames {
		body := `{"account_id":"` + acc + `","plan":"small","template":"debian-12","hostname":"` + h + `"}`
		if _, _, err := DecodeAdminServerCreate([]byte(body)); err == nil || !strings.Contains(err.Error(), `"hostname"`) {
			t.Errorf("admin create hostname %q: %v; want an error naming hostname", h, err)
		}
	}
	req, _, err := DecodeAdminServerCreate([]byte(`{"account_id":"` + acc + `","plan":"small","template":"debian-12","hostname":"DB1.Example.COM."}`))
	if err != nil || req.Hostname != "db1.example.com" {
		t.Fatalf("admin create hostname DB1.Example.COM.: %q, %v; want db1.example.com", req.Hostname, err)
	}
}
