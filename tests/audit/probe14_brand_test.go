package audit

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestProbe14Brand444host probes a coordinator serving the 444host brand
// (003 seed: /v1/vps, vps:* scopes, h444_ keys, vps.ptr.changed, reseller
// prices) as a hostile or careless customer of that brand would, with the
// real PowerDNS and EPP registry behind it:
//
//   - reverse DNS through /v1/vps/:id/ips/:ip/ptr lands in PowerDNS and fires
//     vps.ptr.changed with exactly vpsId, ip and ptr (null when cleared);
//     the other brand's path /v1/servers/… is not served;
//   - B (every scope) on A's VPS or address gets the 404 of an unknown id;
//     a key without vps:write gets a 403 that names vps:write, and no
//     answer of this brand names the other brand's words (servers:…,
//     /v1/servers, serverId, snc_);
//   - the other brand's event names are 400s naming the field;
//   - the reseller discount holds for domains on this brand too: the
//     products list, the quote, the charge and the renewal price.
func TestProbe14Brand444host(t *testing.T) {
	p := framework.StartPowerDNS(t)
	keyFile := filepath.Join(t.TempDir(), "pdns-key")
	if err := os.WriteFile(keyFile, []byte(p.APIKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := framework.StartEPPD(t, framework.EPPDOptions{TLDs: []string{"test"}})
	flags := append([]string{"--brand", "444host", "--pdns-api-url", p.APIURL, "--pdns-api-key-file", keyFile,
		"--pdns-nameservers", "ns1.example.test,ns2.example.test", "--pdns-ptr-ttl", "300", "--pdns-retry-max", "1s"}, reg.CoordinatorFlags()...)
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 1, Bin: framework.Coordinator(t), Webhooks: true,
		Agents: true, AgentPing: 200 * time.Millisecond, AgentGrace: 2 * time.Second,
		Extra: func(int, *framework.CoordinatorProcess) []string { return flags }})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := c.Admin(0)
	scopes := []string{"account:read", "vps:read", "vps:write", "orders:write", "billing:read", "domains:read", "domains:write", "webhooks:read", "webhooks:write"}
	accA, keyA, err := c.NewAccount(ctx, "probe14-444-a@example.com", scopes...)
	if err != nil {
		t.Fatal(err)
	}
	_, keyB, err := c.NewAccount(ctx, "probe14-444-b@example.com", scopes...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(keyA, "h444_") {
		t.Fatalf("minted %.6s…, want h444_", keyA)
	}
	c.StartTestAgent("probe14-444-node", c.AgentAddrs()[0], "-kvm")
	for _, pool := range []api.IPPoolCreateRequest{{Name: "pub4", CIDR: "198.51.100.0/24", Gateway: "198.51.100.1"}} {
		if _, err := adm.CreateIPPool(ctx, pool); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := adm.AddReverseZone(ctx, api.ReverseZoneRequest{Zone: netZone4, Pool: "pub4"}); err != nil {
		t.Fatal(err)
	}
	for slug, pr := range map[string]api.ProductRequest{
		"vps-2":    {Category: api.ProductVPS, NameEn: "VPS 2", RetailMonthlyUsdCents: 1200, Specs: api.ProductSpecs{VCPU: 1, RAMMB: 256, DiskGB: 1}},
		"dom-test": {Category: api.ProductDomain, NameEn: ".test", Tld: "test", RetailYearlyUsdCents: 1000},
	} {
		if _, err := adm.CreateProduct(ctx, slug, pr); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := adm.SetAccountPricing(ctx, accA.ID, api.AccountPricing{DiscountPercent: 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreditWallet(ctx, accA.ID, api.WalletCreditRequest{AmountUsdCents: 10_000, Gateway: "test"}); err != nil {
		t.Fatal(err)
	}
	a := framework.NewAPI(t, c.URL(0), nil)
	// call sends one request; no answer of this brand may name the other
	// brand's words, unless the request did (an echo of what was sent).
	call := func(key, method, path string, body any) framework.Reply {
		t.Helper()
		rep := a.Call(key, method, path, body, nil)
		sent, _ := json.Marshal(body)
		for _, w := range []string{"servers:", "/v1/servers", "serverId", "server.ptr", "snc_", "Sunucu"} {
			if strings.Contains(string(rep.Body), w) && !strings.Contains(path+string(sent), w) {
				t.Errorf("%s names sunucu's %q", rep, w)
			}
		}
		return rep
	}
	hooks := framework.NewWebhookReceiver(t)
	if rep := call(keyA, "POST", "/v1/webhooks", map[string]any{"url": hooks.URL + "/hook", "events": []string{"*"}}); rep.Status != 201 {
		t.Fatal(rep)
	}

	// A's VPS (reseller price), its address.
	rep := call(keyA, "POST", "/v1/vps", map[string]any{"plan_slug": "vps-2", "label": "p14", "hostname": "p14", "os_template": "base"})
	if rep.Status != 201 {
		t.Fatal(rep)
	}
	var vps map[string]any
	rep.Decode(t, &vps)
	id := ""
	for _, k := range []string{"vps", "server"} {
		if v, ok := vps[k].(map[string]any); ok {
			id, _ = v["id"].(string)
		}
	}
	if id == "" {
		t.Fatalf("no VPS id in %s", rep)
	}
	var ip string
	framework.WaitFor(t, "the VPS has its address", 60*time.Second, 200*time.Millisecond, func() bool {
		var l struct {
			Data []map[string]any `json:"data"`
		}
		r := a.Call(keyA, "GET", "/v1/vps/"+id+"/ips", nil, nil)
		if r.Status != 200 {
			return false
		}
		r.Decode(t, &l)
		for _, v := range l.Data {
			if s, _ := v["ip"].(string); strings.HasPrefix(s, "198.51.100.") {
				ip = s
				return v["zoneHosted"] == true
			}
		}
		return false
	})
	ptr := "/v1/vps/" + id + "/ips/" + ip + "/ptr"

	t.Run("reverse DNS through /v1/vps", func(t *testing.T) {
		if rep := call(keyA, "PUT", ptr, map[string]string{"hostname": "mail.p14.example.test"}); rep.Status != 200 {
			t.Fatal(rep)
		}
		ev := hooks.Wait(t, "vps.ptr.changed", 30*time.Second, func(m map[string]any) bool { return m["ptr"] == "mail.p14.example.test" })
		keys := make([]string, 0, len(ev.Data))
		for k := range ev.Data {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if strings.Join(keys, ",") != "ip,ptr,vpsId" || ev.Data["vpsId"] != id || ev.Data["ip"] != ip || ev.Header.Get("X-444host-Event") != "vps.ptr.changed" {
			t.Errorf("vps.ptr.changed: %v %s", ev.Header, ev.Body)
		}
		waitPTR(t, p, ip, "mail.p14.example.test.")
		if rep := call(keyA, "PUT", "/v1/servers/"+id+"/ips/"+ip+"/ptr", map[string]string{"hostname": "other.example.test"}); rep.Status != 404 {
			t.Errorf("sunucu's path on 444host: %s, want 404", rep)
		}
		if rep := call(keyA, "DELETE", ptr, nil); rep.Status != 200 {
			t.Fatal(rep)
		}
		hooks.Wait(t, "vps.ptr.changed", 30*time.Second, func(m map[string]any) bool { v, ok := m["ptr"]; return ok && v == nil && m["vpsId"] == id })
		waitPTR(t, p, ip, "")
	})

	t.Run("another account, a narrow key, the other brand's names", func(t *testing.T) {
		base := call(keyB, "PUT", "/v1/vps/"+unknown(id)+"/ips/"+ip+"/ptr", map[string]string{"hostname": "evil.example.test"})
		if base.Status != 404 {
			t.Fatalf("an unknown VPS: %s", base)
		}
		for _, path := range []string{ptr, "/v1/vps/" + id + "/ips/198.51.100.250/ptr"} {
			for _, m := range []string{"PUT", "DELETE"} {
				var body any
				if m == "PUT" {
					body = map[string]string{"hostname": "evil.example.test"}
				}
				key := keyB
				if strings.Contains(path, ".250") {
					key = keyA
				}
				if rep := call(key, m, path, body); rep.Status != 404 || rep.Code() != base.Code() {
					t.Errorf("%s %s: %s, want the 404 %s", m, path, rep, base.Code())
				}
			}
		}
		waitPTR(t, p, ip, "")
		k, err := adm.CreateKey(ctx, accA.ID, api.KeyCreateRequest{Scopes: []string{"vps:read"}})
		if err != nil {
			t.Fatal(err)
		}
		rep := call(k.Key, "PUT", ptr, map[string]string{"hostname": "ro.example.test"})
		if rep.Status != 403 || !strings.Contains(string(rep.Body), "vps:write") {
			t.Errorf("a vps:read key's PUT: %s, want a 403 naming vps:write", rep)
		}
		if rep := call(keyA, "POST", "/v1/webhooks", map[string]any{"url": hooks.URL + "/h2", "events": []string{"server.ptr.changed"}}); rep.Status != 400 || !strings.Contains(string(rep.Body), "events") {
			t.Errorf("a webhook for sunucu's server.ptr.changed: %s, want 400 naming events", rep)
		}
	})

	t.Run("the reseller discount holds for domains", func(t *testing.T) {
		var prods struct {
			Data []map[string]any `json:"data"`
		}
		call(keyA, "GET", "/v1/products", nil).Decode(t, &prods)
		for _, pr := range prods.Data {
			if pr["slug"] == "dom-test" && pr["your_yearly_usd_cents"] != float64(800) {
				t.Errorf("A's .test price: %v, want your_yearly_usd_cents 800", pr)
			}
		}
		body := map[string]any{"name": "p14-reseller.test", "years": 2, "contact": contact}
		var q api.DomainQuote
		call(keyA, "POST", "/v1/domains/quote", body).Decode(t, &q)
		if q.YearlyUsdCents != 800 || q.TotalUsdCents != 1600 {
			t.Errorf("A's quote: %+v, want 800 a year", q)
		}
		var before, after api.Wallet
		call(keyA, "GET", "/v1/billing/wallet", nil).Decode(t, &before)
		rep := call(keyA, "POST", "/v1/domains", body)
		if rep.Status != http.StatusCreated && rep.Status != http.StatusAccepted {
			t.Fatal(rep)
		}
		var x api.Domain
		rep.Decode(t, &x)
		call(keyA, "GET", "/v1/billing/wallet", nil).Decode(t, &after)
		if spent := before.BalanceUsdCents - after.BalanceUsdCents; spent != 1600 || x.YearlyUsdCents != 800 {
			t.Errorf("the order charged %d and renews at %d; want 1600 and 800", spent, x.YearlyUsdCents)
		}
		if rep := call(keyB, "GET", "/v1/domains/"+x.ID, nil); rep.Status != 404 {
			t.Errorf("B reads A's domain: %s", rep)
		}
	})
}

// waitPTR waits until PowerDNS p answers want for the PTR of ip ("": none).
func waitPTR(t *testing.T, p *framework.PowerDNS, ip, want string) {
	t.Helper()
	r := &netRig{rig: &rig{t: t}, pdns: p}
	r.waitServed(ip, want)
}
