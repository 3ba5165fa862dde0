// Package brand tests one coordinator build serving both brands: a
// coordinator process run with --brand 444host answers the 444host seed's
// examples (API v1.4) under its paths, scopes, key prefix, events, payload
// fields and webhook headers, validated against the /openapi.json it serves,
// and a sunucu coordinator refuses 444host's names (and the reverse).
package brand

import (
	"context"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/brand"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

func TestMain(m *testing.M) { os.Exit(framework.Main(m)) }

// waitHook is recv.Wait (30 s) with the delivery's 444host headers logged.
func waitHook(t *testing.T, recv *framework.WebhookReceiver, typ string, match func(map[string]any) bool) framework.WebhookDelivery {
	t.Helper()
	h := recv.Wait(t, typ, 30*time.Second, match)
	t.Logf("webhook delivered: X-444host-Event: %s, X-444host-Signature: %.24s…, body %s", h.Header.Get("X-444host-Event"), h.Header.Get("X-444host-Signature"), h.Body)
	return h
}

// sigOK checks the signature as the 444host seed describes it, with no
// hostplane code: X-444host-Signature: t=<ts>,v1=HMAC-SHA256(secret, "<ts>." + body).
func sigOK(secret, header string, body []byte) bool {
	return framework.WebhookSignatureOK(secret, header, body, 0)
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// has fails unless obj has every field.
func has(t *testing.T, what string, obj map[string]any, fields ...string) {
	t.Helper()
	for _, f := range fields {
		if _, ok := obj[f]; !ok {
			t.Errorf("%s: no field %q (fields: %v)", what, f, keys(obj))
		}
	}
}

// seedAPI makes the seed's requests with one key, each answer validated
// against the coordinator's /openapi.json and logged.
type seedAPI struct {
	t   *testing.T
	a   *framework.API
	key string
}

// newAccount makes an account with a first key of scopes, which must be
// minted in 444host's form (h444_…).
func newAccount(t *testing.T, ctx context.Context, c *framework.ProcessCluster, email string, scopes ...string) (api.Account, string) {
	t.Helper()
	acc, key, err := c.NewAccount(ctx, email, scopes...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, "h444_") {
		t.Fatalf("minted key %.9s…, want h444_…", key)
	}
	return acc, key
}

// newSeedAPI credits the account's wallet with cents (the seed's example
// balance) and returns the caller of the seed's requests with key,
// validated against the document c serves.
func newSeedAPI(t *testing.T, ctx context.Context, c *framework.ProcessCluster, accountID, key string, cents int64) seedAPI {
	t.Helper()
	if _, err := c.Admin(0).CreditWallet(ctx, accountID, api.WalletCreditRequest{AmountUsdCents: cents, Gateway: "test"}); err != nil {
		t.Fatal(err)
	}
	return seedAPI{t: t, a: framework.NewAPI(t, c.URL(0), nil), key: key}
}

// hostingSeedAPI starts a --brand 444host coordinator with env's hosting
// node joined to it as nodeID, a hosting-starter product of plan (500 cents
// a month) and an account with a first key of scopes (newAccount) whose
// wallet holds cents: the caller of the seed's requests with that key.
func hostingSeedAPI(t *testing.T, env *hostenv.Env, email, nodeID string, plan api.HostingPlan, cents int64, scopes ...string) seedAPI {
	t.Helper()
	c := start(t, "444host", true)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	acc, key := newAccount(t, ctx, c, email, scopes...)
	env.JoinAgent(t, c, nodeID)
	if _, err := c.Admin(0).CreateProduct(ctx, "hosting-starter", api.ProductRequest{Category: api.ProductHosting, NameEn: "Hosting Starter",
		RetailMonthlyUsdCents: 500, Specs: api.ProductSpecs{Hosting: &plan}}); err != nil {
		t.Fatal(err)
	}
	return newSeedAPI(t, ctx, c, acc.ID, key, cents)
}

// call makes the request (hdr: header name, value, …) and fails the test
// unless it answers want.
func (s seedAPI) call(method, path string, body any, want int, hdr ...string) framework.Reply {
	s.t.Helper()
	h := map[string]string{}
	for i := 0; i+1 < len(hdr); i += 2 {
		h[hdr[i]] = hdr[i+1]
	}
	r, err := s.a.Try(s.key, method, path, body, h)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Logf("%s %s → %d %.160s", method, path, r.Status, strings.TrimSpace(string(r.Body)))
	if r.Status != want {
		s.t.Fatalf("%s: want %d", r, want)
	}
	return r
}

// obj decodes a JSON object answer.
func (s seedAPI) obj(r framework.Reply) map[string]any {
	s.t.Helper()
	var m map[string]any
	r.Decode(s.t, &m)
	return m
}

// waitAction follows the action an answer accepted until it succeeded.
func (s seedAPI) waitAction(r framework.Reply) {
	s.t.Helper()
	var acc api.ActionAccepted
	r.Decode(s.t, &acc)
	aid := acc.Action.ID
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var act api.Action
		s.call("GET", "/v1/actions/"+aid, nil, 200).Decode(s.t, &act)
		if act.Finished() {
			if act.Status != api.ActionSuccess {
				s.t.Fatalf("action %s: %+v", aid, act)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("action %s did not finish", aid)
}

func start(t *testing.T, brandName string, agents bool) *framework.ProcessCluster {
	return framework.NewProcessCluster(t, framework.ProcessOptions{N: 1, Bin: framework.Coordinator(t),
		Agents: agents, AgentPing: 200 * time.Millisecond, AgentGrace: 2 * time.Second, Webhooks: true,
		Extra: func(int, *framework.CoordinatorProcess) []string { return []string{"--brand", brandName} }})
}

// TestSeed444host runs the 444host seed's examples against a coordinator
// process started with --brand 444host (and a scripted agent for the VPS
// part), every answer validated against the /openapi.json it serves.
func TestSeed444host(t *testing.T) {
	c := start(t, "444host", true)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := c.Admin(0)

	// Keys are minted h444_… with 444host scopes; sunucu's scope names are refused.
	scopes := []string{"account:read", "vps:read", "vps:write", "vps:destroy", "orders:write", "billing:read",
		"tickets:read", "tickets:write", "webhooks:read", "webhooks:write"}
	acc, key := newAccount(t, ctx, c, "you@example.com", scopes...)
	if _, err := adm.CreateKey(ctx, acc.ID, api.KeyCreateRequest{Scopes: []string{"servers:read"}}); err == nil || !strings.Contains(err.Error(), `unknown scope "servers:read"`) {
		t.Errorf("a key with sunucu's servers:read: %v, want 400 unknown scope", err)
	}
	dflt, err := adm.CreateKey(ctx, acc.ID, api.KeyCreateRequest{})
	if err != nil || !strings.HasPrefix(dflt.Key, "h444_") || !slices.Contains(dflt.Info.Scopes, "vps:write") || slices.Contains(dflt.Info.Scopes, "vps:destroy") {
		t.Errorf("default key: %v %.9s %v, want h444_ with vps:read/write and no vps:destroy", err, dflt.Key, dflt.Info.Scopes)
	}

	// The catalogue and node the seed's order needs.
	c.StartTestAgent("brand-node-1", c.AgentAddrs()[0], "-kvm")
	if _, err := adm.CreateIPPool(ctx, api.IPPoolCreateRequest{Name: "pub4", CIDR: "46.31.78.0/24", Gateway: "46.31.78.1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateProduct(ctx, "vps-2", api.ProductRequest{Category: api.ProductVPS, NameEn: "VPS 2", RetailMonthlyUsdCents: 1200,
		Specs: api.ProductSpecs{VCPU: 2, RAMMB: 4096, DiskGB: 60}}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.SetAccountPricing(ctx, acc.ID, api.AccountPricing{DiscountPercent: 20}); err != nil {
		t.Fatal(err)
	}
	sa := newSeedAPI(t, ctx, c, acc.ID, key, 1250)
	a := sa.a
	call, obj := sa.call, sa.obj

	// Webhooks first, so every event below is delivered: the seed's example
	// subscription, and one for every event.
	recv := framework.NewWebhookReceiver(t)
	call("POST", "/v1/webhooks", map[string]any{"url": recv.URL + "/x", "events": []string{"server.created"}}, 400)
	seedHook := obj(call("POST", "/v1/webhooks", map[string]any{"url": recv.URL + "/hooks/444host", "events": []string{"vps.power.changed", "ticket.replied"}}, 201))
	all := obj(call("POST", "/v1/webhooks", map[string]any{"url": recv.URL + "/all", "events": []string{"*"}}, 201))
	secret, _ := all["secret"].(string)
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("create webhook: secret %q", secret)
	}
	if ev, _ := seedHook["events"].([]any); len(ev) != 2 || ev[0] != "vps.power.changed" {
		t.Errorf("subscription events %v", seedHook["events"])
	}

	// Account.
	account := obj(call("GET", "/v1/account", nil, 200))
	has(t, "GET /v1/account", account, "id", "email", "email_verified", "balance_usd_cents", "created_at")
	if account["email"] != "you@example.com" || account["balance_usd_cents"] != float64(1250) {
		t.Errorf("account %v", account)
	}

	// Catalogue: retail 1200, the reseller's own 960.
	var prods struct {
		Data []map[string]any `json:"data"`
	}
	call("GET", "/v1/products", nil, 200).Decode(t, &prods)
	if len(prods.Data) != 1 {
		t.Fatalf("products %v", prods.Data)
	}
	p := prods.Data[0]
	spec, _ := p["specs"].(map[string]any)
	if p["slug"] != "vps-2" || p["category"] != "vps" || p["name_en"] != "VPS 2" || p["retail_monthly_usd_cents"] != float64(1200) ||
		p["your_monthly_usd_cents"] != float64(960) || spec["vcpu"] != float64(2) || spec["ram_mb"] != float64(4096) || spec["disk_gb"] != float64(60) {
		t.Errorf("product %v", p)
	}

	// POST /v1/vps: the seed's order (the scripted node has the template "base").
	order := map[string]any{"plan_slug": "vps-2", "label": "web-1", "hostname": "web-1", "os_family": "ubuntu", "os_template": "base"}
	ord := obj(call("POST", "/v1/vps", order, 201, "Idempotency-Key", "order-web-1"))
	srv, _ := ord["server"].(map[string]any)
	id, _ := srv["id"].(string)
	if id == "" || ord["root_password"] == "" || ord["root_password"] == nil {
		t.Fatalf("order: %v", ord)
	}
	if again := obj(call("POST", "/v1/vps", order, 201, "Idempotency-Key", "order-web-1")); again["server"].(map[string]any)["id"] != id {
		t.Errorf("retried order made another server: %v", again["server"])
	}
	created := waitHook(t, recv, "vps.created", func(d map[string]any) bool { return d["vpsId"] == id })
	if got := strings.Join(keys(created.Data), ","); got != "hostname,ipv4,label,planSlug,status,vpsId" {
		t.Errorf("vps.created payload fields %s, want the seed's vpsId, label, hostname, planSlug, status, ipv4", got)
	}
	if created.Data["hostname"] != "web-1" || created.Data["planSlug"] != "vps-2" || created.Data["label"] != "web-1" || created.Data["status"] != "running" {
		t.Errorf("vps.created %s", created.Body)
	}
	ip, _ := created.Data["ipv4"].(string)
	if !strings.HasPrefix(ip, "46.31.78.") {
		t.Fatalf("vps.created ipv4 %q", ip)
	}
	if !sigOK(secret, created.Header.Get("X-444host-Signature"), created.Body) {
		t.Errorf("X-444host-Signature %q does not verify as the seed describes", created.Header.Get("X-444host-Signature"))
	}
	if created.Header.Get("X-444host-Event") != "vps.created" || created.Header.Get("X-444host-Delivery") == "" {
		t.Errorf("delivery headers %v", created.Header)
	}
	for h := range created.Header {
		if strings.HasPrefix(strings.ToLower(h), "x-sunucu") {
			t.Errorf("delivery carries sunucu header %s", h)
		}
	}

	// VPS reads.
	var list struct {
		Data []map[string]any `json:"data"`
	}
	call("GET", "/v1/vps", nil, 200).Decode(t, &list)
	if len(list.Data) != 1 || list.Data[0]["id"] != id {
		t.Errorf("GET /v1/vps: %v", list.Data)
	}
	detail := obj(call("GET", "/v1/vps/"+id, nil, 200))
	has(t, "GET /v1/vps/:id", detail, "id", "label", "hostname", "status", "plan", "ipv4")
	if detail["status"] != "running" || detail["ipv4"] != ip+"/24" {
		t.Errorf("GET /v1/vps/:id: %v", detail)
	}
	if r, err := a.Try(key, "GET", "/v1/vps/"+id+"/stats", nil, nil); err != nil || (r.Status != 200 && r.Status != 503) {
		t.Errorf("GET /v1/vps/:id/stats: %v %v", r, err)
	}
	var ips struct {
		Data []map[string]any `json:"data"`
	}
	call("GET", "/v1/vps/"+id+"/ips", nil, 200).Decode(t, &ips)
	if len(ips.Data) != 1 {
		t.Fatalf("GET /v1/vps/:id/ips: %v", ips.Data)
	}
	has(t, "GET /v1/vps/:id/ips", ips.Data[0], "ip", "primary", "gateway", "netmask", "ptr", "zoneHosted")
	if e := ips.Data[0]; e["ip"] != ip || e["primary"] != true || e["gateway"] != "46.31.78.1" || e["netmask"] != "255.255.255.0" || e["ptr"] != nil || e["zoneHosted"] != false {
		t.Errorf("GET /v1/vps/:id/ips: %v", e)
	}

	// Reverse DNS: set, listed on the server and in all-ips, cleared; events.
	call("PUT", "/v1/vps/"+id+"/ips/"+ip+"/ptr", map[string]any{"hostname": "mail.example.com"}, 200)
	call("GET", "/v1/vps/"+id+"/ips", nil, 200).Decode(t, &ips)
	if ips.Data[0]["ptr"] != "mail.example.com" {
		t.Errorf("ptr after PUT: %v", ips.Data[0])
	}
	var allIPs struct {
		Data []map[string]any `json:"data"`
	}
	call("GET", "/v1/vps/all-ips", nil, 200).Decode(t, &allIPs)
	if len(allIPs.Data) != 1 || allIPs.Data[0]["label"] != "web-1" || len(allIPs.Data[0]["ips"].([]any)) != 1 ||
		allIPs.Data[0]["ips"].([]any)[0].(map[string]any)["ptr"] != "mail.example.com" {
		t.Errorf("GET /v1/vps/all-ips: %v", allIPs.Data)
	}
	set := waitHook(t, recv, "vps.ptr.changed", func(d map[string]any) bool { return d["ptr"] == "mail.example.com" })
	if got := strings.Join(keys(set.Data), ","); got != "ip,ptr,vpsId" || set.Data["vpsId"] != id || set.Data["ip"] != ip {
		t.Errorf("vps.ptr.changed %s", set.Body)
	}
	call("DELETE", "/v1/vps/"+id+"/ips/"+ip+"/ptr", nil, 200)
	waitHook(t, recv, "vps.ptr.changed", func(d map[string]any) bool { _, ok := d["ptr"]; return ok && d["ptr"] == nil && d["vpsId"] == id })

	// Power, label, reinstall: each an action; its event carries vpsId.
	waitAction := sa.waitAction
	waitAction(call("POST", "/v1/vps/"+id+"/power/reboot", nil, 202))
	power := waitHook(t, recv, "vps.power.changed", func(d map[string]any) bool { return d["vpsId"] == id && d["action"] == "reboot" })
	if got := strings.Join(keys(power.Data), ","); got != "action,vpsId" {
		t.Errorf("vps.power.changed %s", power.Body)
	}
	if label := obj(call("PATCH", "/v1/vps/"+id+"/label", map[string]any{"label": "web-prod-1"}, 200)); label["label"] != "web-prod-1" {
		t.Errorf("PATCH label: %v", label)
	}
	waitAction(call("POST", "/v1/vps/"+id+"/reinstall", map[string]any{"os": "ubuntu", "osTemplate": "base"}, 202, "Idempotency-Key", "reinstall-1"))
	re := waitHook(t, recv, "vps.reinstalled", func(d map[string]any) bool { return d["vpsId"] == id })
	if got := strings.Join(keys(re.Data), ","); got != "os,osTemplate,vpsId" || re.Data["osTemplate"] != "base" {
		t.Errorf("vps.reinstalled %s", re.Body)
	}

	// Billing: the order's paid invoice, the wallet after the 960 debit.
	var invs struct {
		Data []map[string]any `json:"data"`
	}
	call("GET", "/v1/billing/invoices", nil, 200).Decode(t, &invs)
	if len(invs.Data) != 1 || invs.Data[0]["status"] != "paid" || invs.Data[0]["total_usd_cents"] != float64(960) {
		t.Fatalf("invoices %v", invs.Data)
	}
	call("GET", "/v1/billing/invoices/"+invs.Data[0]["id"].(string), nil, 200)
	if w := obj(call("GET", "/v1/billing/wallet", nil, 200)); w["balance_usd_cents"] != float64(290) {
		t.Errorf("wallet %v, want 1250 - 960 = 290", w)
	}
	call("GET", "/v1/billing/wallet/transactions?limit=200", nil, 200)
	waitHook(t, recv, "invoice.paid", func(d map[string]any) bool { return d["totalUsdCents"] == float64(960) })

	// Tickets: open (the seed's body), staff reply (ticket.replied to the
	// seed's subscription), customer reply, close.
	tk := obj(call("POST", "/v1/tickets", map[string]any{"subject": "Mail deliverability", "message": "Our PTR record is set but…", "priority": "medium", "department": "technical"}, 201, "Idempotency-Key", "t-1"))
	tid, _ := tk["id"].(string)
	waitHook(t, recv, "ticket.created", func(d map[string]any) bool { return d["ticketId"] == tid && d["priority"] == "medium" })
	if _, err := adm.StaffReply(ctx, tid, api.StaffReplyRequest{Body: "Check the zone.", StaffName: "Support"}); err != nil {
		t.Fatal(err)
	}
	replied := waitHook(t, recv, "ticket.replied", func(d map[string]any) bool { return d["ticketId"] == tid })
	if replied.Header.Get("X-444host-Event") != "ticket.replied" {
		t.Errorf("ticket.replied headers %v", replied.Header)
	}
	call("POST", "/v1/tickets/"+tid+"/reply", map[string]any{"body": "Thanks — that fixed it."}, 201)
	call("POST", "/v1/tickets/"+tid+"/close", nil, 200)
	call("GET", "/v1/tickets/"+tid, nil, 200)
	call("GET", "/v1/tickets", nil, 200)

	// Webhook management: masked secret, pause (is_active), delivery log in
	// 444host's names, rotate, redeliver, delete.
	hid, _ := all["id"].(string)
	if g := obj(call("GET", "/v1/webhooks/"+hid, nil, 200)); g["secret"] == secret {
		t.Error("GET /v1/webhooks/:id shows the secret")
	}
	call("GET", "/v1/webhooks", nil, 200)
	var dl struct {
		Data []map[string]any `json:"data"`
	}
	call("GET", "/v1/webhooks/"+hid+"/deliveries?limit=200", nil, 200).Decode(t, &dl)
	var firstDelivery string
	for _, d := range dl.Data {
		typ, _ := d["event_type"].(string)
		if strings.HasPrefix(typ, "server.") {
			t.Errorf("delivery log names %s", typ)
		}
		if typ == "vps.created" {
			firstDelivery, _ = d["delivery_id"].(string)
		}
	}
	if firstDelivery == "" {
		t.Fatalf("no vps.created in the delivery log: %v", dl.Data)
	}
	n := len(recv.Deliveries(""))
	call("POST", "/v1/webhooks/"+hid+"/deliveries/"+firstDelivery+"/redeliver", nil, 202)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var again *framework.WebhookDelivery
		for _, h := range recv.Deliveries("")[n:] {
			if h.Type == "vps.created" {
				again = &h
			}
		}
		if again != nil {
			if again.Data["vpsId"] != id || again.Data["serverId"] != nil || !sigOK(secret, again.Header.Get("X-444host-Signature"), again.Body) {
				t.Errorf("redelivered %s", again.Body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("redeliver: no second vps.created")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// pkg/client with the brand option: its methods (written with sunucu's
	// paths) reach 444host's, every answer validated; without it they 404.
	cl := a.Client(key)
	cl.Brand = brand.MustGet(brand.H444)
	if sl, err := cl.Servers(ctx, 1, 10); err != nil || len(sl.Data) != 1 || sl.Data[0].ID != id {
		t.Errorf("client Servers: %v %+v", err, sl)
	}
	if sv, err := cl.Server(ctx, id); err != nil || sv.Label != "web-prod-1" {
		t.Errorf("client Server: %v %+v", err, sv)
	}
	if l, err := cl.AccountIPs(ctx); err != nil || len(l.Data) != 1 || l.Data[0].ServerID != id {
		t.Errorf("client AccountIPs: %v %+v", err, l)
	}
	if l, err := cl.ServerIPs(ctx, id); err != nil || len(l.Data) != 1 || l.Data[0].IP != ip {
		t.Errorf("client ServerIPs: %v %+v", err, l)
	}
	if q, err := cl.QuoteServer(ctx, api.ServerOrderRequest{PlanSlug: "vps-2", Label: "q", Hostname: "q", OSTemplate: "base"}); err != nil || q.YourMonthlyUsdCents != 960 {
		t.Errorf("client QuoteServer: %v %+v", err, q)
	}
	if _, err := a.Client(key).Servers(ctx, 1, 10); api.StatusOf(err) != 404 {
		t.Errorf("a sunucu client on 444host: %v, want 404", err)
	}

	// Terminate.
	waitAction(call("DELETE", "/v1/vps/"+id, nil, 202, "Idempotency-Key", "term-1"))
	waitHook(t, recv, "vps.terminated", func(d map[string]any) bool { return d["vpsId"] == id && len(d) == 1 })
	if r := obj(call("POST", "/v1/webhooks/"+hid+"/rotate-secret", nil, 200)); !strings.HasPrefix(r["secret"].(string), "whsec_") {
		t.Errorf("rotate: %v", r)
	}
	if p := obj(call("PATCH", "/v1/webhooks/"+hid, map[string]any{"is_active": false}, 200)); p["isActive"] != false {
		t.Errorf("PATCH is_active false: %v", p)
	}

	// Every delivery used 444host's names.
	for _, h := range recv.Deliveries("") {
		if strings.HasPrefix(h.Type, "server.") || h.Data["serverId"] != nil {
			t.Errorf("delivery in sunucu's names: %s", h.Body)
		}
	}

	// sunucu's names are not served here.
	for _, p := range []string{"/v1/servers", "/v1/servers/ips", "/v1/servers/" + id, "/v1/servers/" + id + "/ips"} {
		if r, _ := a.Try(key, "GET", p, nil, nil); r.Status != 404 {
			t.Errorf("GET %s on a 444host coordinator: %d, want 404", p, r.Status)
		}
	}
	if r, _ := a.Try("snc_"+strings.TrimPrefix(key, "h444_"), "GET", "/v1/account", nil, nil); r.Status != 401 {
		t.Errorf("an snc_ key: %d, want 401", r.Status)
	}

	// MCP: tool names follow the brand.
	names := mcpTools(t, ctx, c.URL(0), key)
	for _, want := range []string{"list_vps", "get_vps", "order_vps", "quote_vps", "set_vps_ptr", "power_vps", "reinstall_vps", "terminate_vps"} {
		if !slices.Contains(names, want) {
			t.Errorf("MCP tools/list has no %s: %v", want, names)
		}
	}
	for _, n := range names {
		if strings.Contains(n, "server") {
			t.Errorf("MCP tool %s keeps sunucu's name", n)
		}
	}
}

func mcpTools(t *testing.T, ctx context.Context, base, key string) []string {
	t.Helper()
	hc := oauth2.NewClient(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: key}))
	hc.Timeout = 30 * time.Second
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "brand-test", Version: "1"}, nil).Connect(ctx, &mcp.StreamableClientTransport{Endpoint: base + "/mcp", HTTPClient: hc}, nil)
	if err != nil {
		t.Fatalf("connect %s/mcp: %v", base, err)
	}
	defer cs.Close()
	return framework.ToolNames(t, ctx, cs)
}

// TestSunucuRefuses444host: the default brand serves sunucu's names and
// refuses 444host's.
func TestSunucuRefuses444host(t *testing.T) {
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 1, Bin: framework.Coordinator(t), Webhooks: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	acc, key, err := c.NewAccount(ctx, "s@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, "snc_") {
		t.Fatalf("minted key %.8s…, want snc_…", key)
	}
	if _, err := c.Admin(0).CreateKey(ctx, acc.ID, api.KeyCreateRequest{Scopes: []string{"vps:read"}}); err == nil || !strings.Contains(err.Error(), `unknown scope "vps:read"`) {
		t.Errorf("a key with 444host's vps:read: %v, want 400 unknown scope", err)
	}
	a := framework.NewAPI(t, c.URL(0), nil)
	for _, p := range []string{"/v1/vps", "/v1/vps/all-ips", "/v1/vps/srv_x"} {
		if r, _ := a.Try(key, "GET", p, nil, nil); r.Status != 404 {
			t.Errorf("GET %s on a sunucu coordinator: %d, want 404", p, r.Status)
		}
	}
	if r, _ := a.Try(key, "GET", "/v1/servers/ips", nil, nil); r.Status != 200 {
		t.Errorf("GET /v1/servers/ips: %v", r)
	}
	r, _ := a.Try(key, "POST", "/v1/webhooks", map[string]any{"url": "https://example.com/h", "events": []string{"vps.created"}}, nil)
	if r.Status != 400 || r.Code() != "unknown_event" || !strings.Contains(string(r.Body), "server.created") {
		t.Errorf("subscribing to vps.created: %v", r)
	}
	if r, _ := a.Try("h444_"+strings.TrimPrefix(key, "snc_"), "GET", "/v1/account", nil, nil); r.Status != 401 {
		t.Errorf("an h444_ key: %d, want 401", r.Status)
	}
	names := mcpTools(t, ctx, c.URL(0), key)
	if !slices.Contains(names, "list_servers") || slices.Contains(names, "list_vps") {
		t.Errorf("sunucu MCP tools: %v", names)
	}
}

// TestMixedBrandsRefused: every coordinator of a cluster must run the same
// brand. The first leader records its brand in the replicated state; a
// coordinator restarted with another --brand refuses to serve (/readyz and
// /v1 answer 503 brand_mismatch naming both brands), hands leadership away
// when it is elected, and serves again once restarted with the cluster's.
func TestMixedBrandsRefused(t *testing.T) {
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 3, Bin: framework.Coordinator(t), RaftTimeout: framework.RaftTimeout})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, key, err := c.NewAccount(ctx, "mixed@example.com")
	if err != nil {
		t.Fatal(err)
	}
	leader := c.WaitLeader(20 * time.Second)
	odd := c.Nodes[(leader+1)%3]
	args := append([]string(nil), odd.Args...)
	odd.Kill()
	odd.Args = append(odd.Args, "--brand", "444host")
	if err := odd.Start(); err != nil {
		t.Fatal(err)
	}
	get := func(url, key string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	refused := func(what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, body := get(odd.URL()+"/readyz", "")
			if code == 503 && strings.Contains(body, "runs --brand 444host but the cluster's brand is sunucu") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: /readyz of %s: %d %s, want 503 brand mismatch", what, odd.ID, code, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if code, body := get(odd.URL()+"/v1/account", key); code != 503 || !strings.Contains(body, `"code":"brand_mismatch"`) {
			t.Errorf("%s: GET /v1/account on %s: %d %s, want 503 brand_mismatch", what, odd.ID, code, body)
		}
	}
	refused("follower")

	// Elected, it refuses too and hands leadership to a coordinator of the
	// cluster's brand; the cluster keeps serving.
	// (The transfer may report failure: the new leader hands leadership on
	// at once. Its log says whether it was elected.)
	for try := 0; try < 5 && !strings.Contains(framework.Tail(odd.LogPath(), 400), "refusing to serve"); try++ {
		l, err := c.LeaderIndex(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Nodes[l].Admin().ClusterTransferLeadership(ctx, odd.ID); err != nil {
			t.Logf("transfer to %s: %v", odd.ID, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if log := framework.Tail(odd.LogPath(), 400); !strings.Contains(log, "refusing to serve") || !strings.Contains(log, "the cluster's brand is sunucu, not 444host") {
		t.Fatalf("%s was never elected and refused (log tail:\n%s)", odd.ID, framework.Tail(odd.LogPath(), 30))
	}
	refused("after its election")
	deadline := time.Now().Add(30 * time.Second)
	for {
		l, err := c.LeaderIndex(10 * time.Second)
		if err == nil && c.Nodes[l] != odd {
			if code, body := get(c.URL(l)+"/v1/account", key); code == 200 {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("leader %s: %d %s", c.Nodes[l].ID, code, body)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("the 444host coordinator kept the leadership (%v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Restarted with the cluster's brand, it serves again.
	odd.Args = args
	if err := odd.Restart(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if code, body := get(odd.URL()+"/v1/account", key); code != 200 {
		t.Errorf("after the restart with --brand sunucu: %d %s", code, body)
	}
}
