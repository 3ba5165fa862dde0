package httpapi

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/pkg/api"
)

// A hosting order retried with its Idempotency-Key answers the
// first answer (README/openapi: "A replay of the same Idempotency-Key and
// body returns the first answer" for orders; the retry answers the same
// account without the passwords). Its connection details are the account's
// (sftp_host, ports, db_host, db_network), as the first answer said; the
// replay answers the FSM's value instead, whose connection is the empty one
// the record embeds (openapi: every connection field required, db_network
// among them). review56's repro; it failed before 3e8a247.
func TestHostingOrderReplayKeepsTheConnection(t *testing.T) {
	s, _, key, _ := hostingOrderAPI(t)

	body := `{"plan_slug":"web-1","domain":"web.example.test","username":"shopx"}`
	conn := func(what string, r reply) api.HostingConnection {
		t.Helper()
		var o struct {
			Hosting struct {
				ID         string                `json:"id"`
				Connection api.HostingConnection `json:"connection"`
			} `json:"hosting"`
		}
		if r.status != http.StatusCreated || json.Unmarshal(r.body, &o) != nil || o.Hosting.ID == "" {
			t.Fatalf("%s: %d %s", what, r.status, r.body)
		}
		return o.Hosting.Connection
	}
	first := conn("order", s.call(key, "POST", "/v1/hosting", body, "Idempotency-Key", "rv56-1"))
	again := conn("its retry", s.call(key, "POST", "/v1/hosting", body, "Idempotency-Key", "rv56-1"))
	if first.SFTPUser != "shopx" || first.DBNetwork == "" {
		t.Fatalf("the order's connection %+v", first)
	}
	if again != first {
		t.Errorf("the retry's connection %+v, want the order's %+v", again, first)
	}
}

// hostingOrderAPI is an API that takes hosting orders: a hosting plan web-1
// (500 cents a month), an account (acc, its key with orders:write,
// hosting:read and :write, billing:read) holding 2,500 cents and a hosting
// account hst (ada, ada.hosting.test) on the hosting node, live (ServerAdmin
// stores the placement settings) with PHP 8.2.
func hostingOrderAPI(t *testing.T) (s *srvAPI, acc, key, hst string) {
	t.Helper()
	s = newSrvAPI(t)
	s.apply(fsm.CmdProductPut, fsm.ProductPut{Slug: "web-1", Create: true, Product: api.ProductRequest{Category: api.ProductHosting,
		NameEn: "Web 1", RetailMonthlyUsdCents: 500, Specs: api.ProductSpecs{Hosting: &api.HostingPlan{PHPWorkers: 3, PHPMemoryMiB: 96, MaxExecutionSeconds: 20, UploadMiB: 16, DiskMiB: 2048}}}})
	acc, key = s.account(api.ScopeOrdersWrite, api.ScopeHostingRead, api.ScopeHostingWrite, api.ScopeBillingRead)
	s.apply(fsm.CmdWalletCredit, fsm.WalletCredit{TxID: "wtx_dep", AccountID: acc, AmountUsdCents: 2500})
	hst = s.hostingAccount(acc, "ada", "ada.hosting.test")
	s.a.ServerAdmin(http.NotFoundHandler(), ServerAdminConfig{Nodes: NodeDeps{Live: func(string) (time.Time, bool) { return time.Now(), true }}})
	d, err := s.a.serverDeps()
	if err != nil {
		t.Fatal(err)
	}
	deps := *d
	deps.NodePHPVersions = func(string) ([]string, bool) { return []string{"8.2"}, true }
	s.a.SetServerDeps(&deps)
	return s, acc, key, hst
}

// A hosting action (suspend, PHP version; unsuspend and delete alike, in
// tests/audit probe58_idem_test.go) retried with its
// Idempotency-Key answers the first answer too, the account's connection
// details and disk allowance included; before, its replay answered the
// stored account with an empty connection (sftp_host "", ports 0, no
// db_network) and disk_mib 0 (probe58's repro).
func TestHostingActionReplayKeepsTheConnection(t *testing.T) {
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/suspend", `{}`},
		{"PUT", "/php", `{"php_version":"8.2"}`},
	} {
		s, _, key, hst := hostingOrderAPI(t)
		view := func(what string, r reply) api.HostingAccount {
			t.Helper()
			var o api.HostingActionAccepted
			if r.status != http.StatusAccepted || json.Unmarshal(r.body, &o) != nil || o.Hosting == nil {
				t.Fatalf("%s %s: %s: %d %s", c.method, c.path, what, r.status, r.body)
			}
			return *o.Hosting
		}
		first := view("first", s.call(key, c.method, "/v1/hosting/"+hst+c.path, c.body, "Idempotency-Key", "p58"+c.path))
		again := s.call(key, c.method, "/v1/hosting/"+hst+c.path, c.body, "Idempotency-Key", "p58"+c.path)
		got := view("its retry", again)
		if first.Connection.SFTPUser != "ada" || first.Connection.DBNetwork == "" {
			t.Fatalf("%s %s: the first answer's connection %+v, quota %+v", c.method, c.path, first.Connection, first.Quota)
		}
		if again.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("%s %s: the retry is no replay: %d %s", c.method, c.path, again.status, again.body)
		}
		if got.Connection != first.Connection || got.Quota != first.Quota {
			t.Errorf("%s %s: the retry's connection %+v quota %+v, want the first's %+v %+v", c.method, c.path, got.Connection, got.Quota, first.Connection, first.Quota)
		}
	}
}
