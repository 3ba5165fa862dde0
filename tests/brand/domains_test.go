package brand

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestSeed444hostDomains runs the 444host seed's domain examples (GET
// /v1/domains, GET /v1/domains/:id, PATCH /v1/domains/:id with the seed's
// body) on a coordinator process started with --brand 444host whose
// registrar is the repository's EPP registry (tests/eppd), every answer
// validated against the served 444host /openapi.json. The domain is bought
// first with POST /v1/domains (not in the seed; the route). The
// PATCH is pushed to the registry; with the registry down it is rolled back
// with the reason, as the seed says.
func TestSeed444hostDomains(t *testing.T) {
	reg := framework.StartEPPD(t, framework.EPPDOptions{TLDs: []string{"test"}})
	flags := append([]string{"--brand", "444host"}, reg.CoordinatorFlags()...)
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 1, Bin: framework.Coordinator(t), Webhooks: true,
		Extra: func(int, *framework.CoordinatorProcess) []string { return flags }})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm := c.Admin(0)
	if _, err := adm.CreateProduct(ctx, "domain-test", api.ProductRequest{Category: api.ProductDomain, NameEn: ".test", Tld: "test", RetailYearlyUsdCents: 1000}); err != nil {
		t.Fatal(err)
	}
	acc, key := newAccount(t, ctx, c, "domains@example.com", "domains:read", "domains:write", "orders:write", "webhooks:write")
	sa := newSeedAPI(t, ctx, c, acc.ID, key, 1250)
	call, obj := sa.call, sa.obj
	recv := framework.NewWebhookReceiver(t)
	hook := obj(call("POST", "/v1/webhooks", map[string]any{"url": recv.URL + "/hooks/444host", "events": []string{"domain.registered"}}, 201))
	secret, _ := hook["secret"].(string)

	reg1 := obj(call("POST", "/v1/domains", map[string]any{"name": "example.test", "years": 1, "nameservers": []string{"ns1.hosting.net", "ns2.hosting.net"},
		"contact": map[string]any{"name": "Jane Doe", "street": []string{"1 Main St"}, "city": "London", "cc": "GB", "email": "you@example.com"}}, 201))
	id, _ := reg1["id"].(string)
	ev := waitHook(t, recv, "domain.registered", func(d map[string]any) bool { return d["domainId"] == id })
	if ev.Data["domain"] != "example.test" || ev.Header.Get("X-444host-Event") != "domain.registered" || !sigOK(secret, ev.Header.Get("X-444host-Signature"), ev.Body) {
		t.Errorf("domain.registered delivery %v %s", ev.Header, ev.Body)
	}

	// GET /v1/domains: status, nameservers and expiry.
	var list struct {
		Data []map[string]any `json:"data"`
	}
	call("GET", "/v1/domains", nil, 200).Decode(t, &list)
	if len(list.Data) != 1 || list.Data[0]["id"] != id {
		t.Fatalf("GET /v1/domains: %v", list.Data)
	}
	has(t, "GET /v1/domains", list.Data[0], "status", "nameservers", "expires_at")
	d := obj(call("GET", "/v1/domains/"+id, nil, 200))
	has(t, "GET /v1/domains/:id", d, "status", "nameservers", "expires_at", "auto_renew", "transfer_lock", "whois_privacy")
	if d["status"] != "active" {
		t.Errorf("GET /v1/domains/:id: %v", d)
	}
	if off := obj(call("PATCH", "/v1/domains/"+id, map[string]any{"auto_renew": false}, 200)); off["auto_renew"] != false {
		t.Errorf("PATCH auto_renew false: %v", off)
	}

	// PATCH with the seed's body: applied at the registry.
	seedBody := map[string]any{"auto_renew": true, "nameservers": []string{"ns1.example.com", "ns2.example.com"}}
	p := obj(call("PATCH", "/v1/domains/"+id, seedBody, 200))
	if ch, _ := p["change"].(map[string]any); ch["status"] != "applied" || p["auto_renew"] != true {
		t.Errorf("PATCH (the seed's body): %v", p)
	}
	if got := reg.Domain("example.test"); got == nil || !slices.Equal(got.NS, []string{"ns1.example.com", "ns2.example.com"}) {
		t.Fatalf("the registry's delegation after the PATCH: %+v", got)
	}

	// The registry down: the push fails and the change is rolled back with
	// the reason; the registry keeps the delegation.
	reg.Down()
	r := call("PATCH", "/v1/domains/"+id, map[string]any{"nameservers": []string{"ns1.other.net", "ns2.other.net"}}, 409)
	if r.Code() != "change_failed" || !strings.Contains(string(r.Body), "could not be reached") {
		t.Errorf("PATCH with the registry down: %s", r)
	}
	back := obj(call("GET", "/v1/domains/"+id, nil, 200))
	if ns, _ := back["nameservers"].([]any); len(ns) != 2 || ns[0] != "ns1.example.com" {
		t.Errorf("after the rollback: %v", back)
	}
	if ch, _ := back["change"].(map[string]any); ch["status"] != "failed" || !strings.Contains(ch["reason"].(string), "could not be reached") {
		t.Errorf("the failed change: %v", back["change"])
	}
	reg.Up()
	if got := reg.Domain("example.test"); got == nil || !slices.Equal(got.NS, []string{"ns1.example.com", "ns2.example.com"}) {
		t.Fatalf("the registry changed behind the rollback: %+v", got)
	}
}
