package brand

import (
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// TestSeed444hostHosting runs the 444host seed's hosting examples (order,
// list and detail, PHP version, SSL retry, suspend, unsuspend, delete)
// against a coordinator process started with --brand 444host and a real
// hosting node (a hostplane-agent with nginx, PHP-FPM, MariaDB and sshd, as
// in tests/hosting), every answer validated against the 444host
// /openapi.json the coordinator serves. Between the calls the node is
// checked as a customer would: the site answers over HTTP, SFTP takes the
// password the order showed once.
func TestSeed444hostHosting(t *testing.T) {
	env := hostenv.New(t)
	sa := hostingSeedAPI(t, env, env.Prefix+"@example.com", env.Prefix+"-web1",
		api.HostingPlan{PHPWorkers: 2, PHPMemoryMiB: 128, MaxExecutionSeconds: 30, UploadMiB: 16, DiskMiB: 1024}, 1250,
		"account:read", "orders:write", "hosting:read", "hosting:write", "hosting:destroy", "billing:read", "webhooks:write")
	a, key := sa.a, sa.key
	call, obj := sa.call, sa.obj

	recv := framework.NewWebhookReceiver(t)
	hook := obj(call("POST", "/v1/webhooks", map[string]any{"url": recv.URL + "/hooks/444host", "events": []string{"hosting.created", "invoice.paid"}}, 201))
	secret, _ := hook["secret"].(string)

	// POST /v1/hosting: the seed's order (its username made this test's, so
	// the system user is removed afterwards); no php_version.
	user := env.Prefix + "ex"
	order := map[string]any{"plan_slug": "hosting-starter", "domain": "example.com", "username": user}
	ordReply := call("POST", "/v1/hosting", order, 201, "Idempotency-Key", "hosting-1")
	ord := obj(ordReply)
	h, _ := ord["hosting"].(map[string]any)
	id, _ := h["id"].(string)
	sftpPW, _ := ord["sftp_password"].(string)
	dbPW, _ := ord["db_password"].(string)
	if id == "" || sftpPW == "" || dbPW == "" {
		t.Fatalf("order answered no account or no passwords: %v", ord)
	}
	if h["domain"] != "example.com" || h["username"] != user || h["plan"] != "hosting-starter" || h["php_version"] != "8.2" {
		t.Errorf("ordered account %v (php_version: the node's newest installed, 8.2 here; the seed's default is 8.3)", h)
	}
	again := obj(call("POST", "/v1/hosting", order, 201, "Idempotency-Key", "hosting-1"))
	if again["hosting"].(map[string]any)["id"] != id || again["sftp_password"] != nil || again["db_password"] != nil {
		t.Errorf("the retried order: %v, want the same account without the passwords", again)
	}
	// The seed has no action route (ours, GET /v1/actions/:id, needs
	// vps:read); a hosting integration follows the account's status.
	settled := func(want string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			var v map[string]any
			a.Call(key, "GET", "/v1/hosting/"+id, nil, nil).Decode(t, &v)
			if v["status"] == want && v["action_id"] == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("hosting account %s not %s with no action in progress after 60 s: %v", id, want, v)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	settled("active")

	created := waitHook(t, recv, "hosting.created", func(d map[string]any) bool { return d["hostingId"] == id })
	if got := strings.Join(keys(created.Data), ","); got != "domain,hostingId,status,username" ||
		created.Data["username"] != user || created.Data["domain"] != "example.com" || created.Data["status"] != "active" {
		t.Errorf("hosting.created %s, want the seed's hostingId, username, domain, status", created.Body)
	}
	if created.Header.Get("X-444host-Event") != "hosting.created" || !sigOK(secret, created.Header.Get("X-444host-Signature"), created.Body) {
		t.Errorf("hosting.created delivery headers %v", created.Header)
	}
	waitHook(t, recv, "invoice.paid", func(d map[string]any) bool { return d["totalUsdCents"] == float64(500) })
	if w := obj(call("GET", "/v1/billing/wallet", nil, 200)); w["balance_usd_cents"] != float64(750) {
		t.Errorf("wallet %v, want 1250 - 500 = 750 (one debit for the retried order)", w)
	}

	// The site runs as the account's user; SFTP takes the password shown once.
	hostenv.PutProbe(t, env.SSHAddr, user, sftpPW, "sftp")
	site := func(want int) {
		t.Helper()
		code, body := hostenv.Get(t, env.HTTPAddr, "example.com", "/")
		if code != want || (want == 200 && !strings.Contains(body, "user="+user+"\n")) {
			t.Fatalf("http://example.com/ on the node: %d %q, want %d", code, body, want)
		}
	}
	site(200)

	// GET /v1/hosting and /v1/hosting/:id: status, quota, usage, connection
	// hosts; never a password.
	var list struct {
		Data []map[string]any `json:"data"`
	}
	r := call("GET", "/v1/hosting", nil, 200)
	r.Decode(t, &list)
	if len(list.Data) != 1 || list.Data[0]["id"] != id {
		t.Errorf("GET /v1/hosting: %v", list.Data)
	}
	d := call("GET", "/v1/hosting/"+id, nil, 200)
	detail := obj(d)
	has(t, "GET /v1/hosting/:id", detail, "status", "quota", "limits", "connection", "php_version")
	if conn, _ := detail["connection"].(map[string]any); detail["status"] != "active" || conn["sftp_user"] != user || conn["sftp_host"] == "" {
		t.Errorf("GET /v1/hosting/:id: %v", detail)
	}
	for _, body := range [][]byte{r.Body, d.Body} {
		if strings.Contains(string(body), sftpPW) || strings.Contains(string(body), dbPW) {
			t.Errorf("a password in %s", body)
		}
	}

	// PUT /v1/hosting/:id/php: the seed's 8.3 is not installed on this node,
	// so it is a 400 naming php_version and the installed versions; 8.2 is
	// applied by the node.
	if r := call("PUT", "/v1/hosting/"+id+"/php", map[string]any{"php_version": "8.3"}, 400); !strings.Contains(string(r.Body), "php_version") || !strings.Contains(string(r.Body), "installed: 8.2") {
		t.Errorf("php 8.3: %s", r.Body)
	}
	call("PUT", "/v1/hosting/"+id+"/php", map[string]any{"php_version": "8.2"}, 202)
	settled("active")

	// POST /v1/hosting/:id/ssl/retry: certificates are issued for an
	// account's verified custom domain; this account has none: a 409
	// no_custom_domain (the account exists; a 404 read as it gone).
	if r := call("POST", "/v1/hosting/"+id+"/ssl/retry", nil, 409); !strings.Contains(strings.ToLower(string(r.Body)), "no custom domain") {
		t.Errorf("ssl retry without a custom domain: %s", r.Body)
	}

	// Suspend: the site stops serving; unsuspend restores it.
	call("POST", "/v1/hosting/"+id+"/suspend", nil, 202)
	settled("suspended")
	site(503)
	if _, err := hostenv.SFTP(env.SSHAddr, user, sftpPW); err == nil {
		t.Error("sftp into a suspended account")
	}
	call("POST", "/v1/hosting/"+id+"/suspend", nil, 409)
	call("POST", "/v1/hosting/"+id+"/unsuspend", nil, 202)
	settled("active")
	site(200)

	// DELETE (hosting:destroy): the site is gone and the username reusable.
	call("DELETE", "/v1/hosting/"+id, nil, 202)
	settled("deleted")
	site(404)
	re := obj(call("POST", "/v1/hosting", order, 201, "Idempotency-Key", "hosting-2"))
	if rh, _ := re["hosting"].(map[string]any); rh["id"] == id || rh["username"] != user {
		t.Errorf("reordering the deleted username: %v", re)
	}
}
