package audit

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
)

// adminHTTP is an HTTP client of coordinator p's admin socket.
func adminHTTP(p *framework.CoordinatorProcess) *http.Client {
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", p.AdminSocket())
		},
	}}
}

func do(t *testing.T, hc *http.Client, method, url string, hdr map[string]string, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return framework.Fetch(t, hc, req)
}

// TestAdminMethodsAndCustomerKeys: on every coordinator's admin socket, a
// known admin path called with another method is a 405 with Allow naming the
// methods it takes (README: "A known path called with another method is a
// 405 with Allow"; before, the admin API answered 404 "no such admin
// endpoint", as for a path it does not have), in every admin layer
// (accounts, nodes, reverse zones, servers); an unknown path stays a 404.
// A customer's key, with every scope, gets nothing of the admin API on the
// public listener: /internal/admin is a 401 (the cluster's forwarding mount)
// and creates nothing, /admin is a 404, a backup is not streamed.
func TestAdminMethodsAndCustomerKeys(t *testing.T) {
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 3, Bin: framework.Coordinator(t), RaftTimeout: framework.RaftTimeout})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, key, err := c.NewAccount(ctx, "customer@example.com", api.AllScopes...)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range c.Nodes {
		hc := adminHTTP(p)
		for _, tc := range []struct{ method, path, allow string }{
			{"GET", "/admin/accounts", "POST"},
			{"DELETE", "/admin/accounts/acc_x", "GET"},
			{"GET", "/admin/cluster/join", "POST"},
			{"POST", "/admin/cluster/status", "GET"},
			{"PUT", "/admin/cluster/backup", "GET"},
			{"GET", "/admin/invoices/inv_x/pay", "POST"},
			{"DELETE", "/admin/products", "GET"},
			{"POST", "/admin/os-templates/base", "PUT"},
			{"PATCH", "/admin/reverse-zones", "GET"},
			{"DELETE", "/admin/nodes", "GET"},
			{"PUT", "/admin/servers", "POST"},
		} {
			resp, body := do(t, hc, tc.method, "http://admin"+tc.path, nil, "")
			e, err := framework.Reply{Status: resp.StatusCode, Body: body}.Envelope()
			if resp.StatusCode != 405 || !strings.Contains(resp.Header.Get("Allow"), tc.allow) || strings.Contains(resp.Header.Get("Allow"), tc.method) ||
				err != nil || e.Code != "method_not_allowed" || resp.Header.Get("X-Request-Id") == "" {
				t.Errorf("%s: %s %s: want 405 with Allow holding %s: %d Allow %q %s", p.ID, tc.method, tc.path, tc.allow, resp.StatusCode, resp.Header.Get("Allow"), body)
			}
		}
		if resp, body := do(t, hc, "GET", "http://admin/admin/nope", nil, ""); resp.StatusCode != 404 || resp.Header.Get("Allow") != "" {
			t.Errorf("%s: unknown admin path: %d %q %s", p.ID, resp.StatusCode, resp.Header.Get("Allow"), body)
		}

		pub := &http.Client{Timeout: 15 * time.Second}
		for _, hdr := range []map[string]string{
			{"Authorization": "Bearer " + key},
			{"X-API-Key": key},
			{"Authorization": "Bearer " + key, "X-Hostplane-Cluster-Token": key},
		} {
			resp, body := do(t, pub, "POST", p.URL()+"/internal/admin/accounts", hdr, `{"email":"intruder@example.com"}`)
			if resp.StatusCode != 401 {
				t.Errorf("%s: a customer key on /internal/admin/accounts (%v): %d %s", p.ID, hdr, resp.StatusCode, body)
			}
			resp, body = do(t, pub, "GET", p.URL()+"/internal/admin/cluster/backup", hdr, "")
			if resp.StatusCode != 401 || len(body) > 1000 {
				t.Errorf("%s: a customer key asked for a backup (%v): %d, %d bytes", p.ID, hdr, resp.StatusCode, len(body))
			}
			resp, body = do(t, pub, "POST", p.URL()+"/admin/accounts", hdr, `{"email":"intruder@example.com"}`)
			if resp.StatusCode != 404 {
				t.Errorf("%s: a customer key on /admin/accounts of the public listener (%v): %d %s", p.ID, hdr, resp.StatusCode, body)
			}
		}
	}
	if r := ctl(t, c.Nodes[0], "account", "show", "intruder@example.com"); r.code != 1 || !strings.Contains(r.stderr, "404") {
		t.Fatalf("the customer's admin calls made an account: %s", r)
	}
}

// TestAdminSecretsShownOnce: an API key and a join token minted through a
// follower's admin socket are printed once (the key alone on stdout, so
// KEY=$(hostplanectl key create …) works) and never reach any coordinator's
// log, even at --log-level debug; a backup file is readable by its owner
// only. A write hostplanectl reports answered by a leadership change is
// checked and run again, as README tells an operator (ctlWrite).
func TestAdminSecretsShownOnce(t *testing.T) {
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 3, Bin: framework.Coordinator(t), RaftTimeout: framework.RaftTimeout,
		Agents: true, LogLevel: "debug"})
	ld, err := c.LeaderIndex(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	f := c.Nodes[(ld+1)%c.Len()]
	const email = "secret-holder@example.com"
	r := ctlWrite(t, f, func() (ctlRun, bool) {
		show := ctlRead(t, f, "--json", "account", "show", email)
		return show, show.code == 0
	}, "--json", "account", "create", "--email", email)
	var acc api.Account
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &acc) != nil {
		t.Fatalf("%s", r)
	}
	// A key made by a create a leadership change answered has lost its
	// secret with the answer: an operator revokes it and mints another.
	r = ctlWrite(t, f, func() (ctlRun, bool) {
		list := ctlRead(t, f, "--json", "key", "list", acc.ID)
		var keys []api.KeyInfo
		if list.code != 0 || json.Unmarshal([]byte(list.stdout), &keys) != nil {
			t.Fatalf("%s", list)
		}
		for _, k := range keys {
			if k.Name == "laptop" && k.RevokedAt == nil {
				if rv := ctlRead(t, f, "key", "revoke", k.ID); rv.code != 0 {
					t.Fatalf("revoke key %s, made by a create a leadership change answered: %s", k.ID, rv)
				}
			}
		}
		return ctlRun{}, false
	}, "key", "create", acc.ID, "--name", "laptop")
	key := strings.TrimSuffix(r.stdout, "\n")
	if r.code != 0 || !strings.HasPrefix(key, "snc_") || strings.ContainsAny(key, " \n") || strings.Contains(r.stderr, key) {
		t.Fatalf("key create: want the key alone on stdout: %s", r)
	}
	for i := range c.Len() {
		rep, err := framework.NewAPI(t, c.URL(i), nil).TryResending(context.Background(), client.Resend{}, key, "GET", "/v1/account", nil, nil)
		if err != nil || rep.Status != 200 {
			t.Fatalf("the printed key on coordinator %d: %s %v", i, rep, err)
		}
	}
	r = ctlRead(t, f, "--json", "key", "list", acc.ID)
	if r.code != 0 || strings.Contains(r.stdout, key) || strings.Contains(r.stdout, key[len(key)-20:]) {
		t.Fatalf("key list shows the secret: %s", r)
	}
	// A token made by a create a leadership change answered was never
	// shown, so is never used, and expires with its TTL.
	r = ctlWrite(t, f, nil, "--json", "node", "token", "create", "--admin-socket", f.AdminSocket(), "--ttl", "10m")
	var tok api.JoinTokenCreated
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &tok) != nil || !strings.HasPrefix(tok.Token, "hpj1.") {
		t.Fatalf("token create: %s", r)
	}
	tokSecret := strings.Split(tok.Token, ".")[2]
	file := t.TempDir() + "/state.snap"
	if r = ctlRead(t, f, "cluster", "backup", file); r.code != 0 {
		t.Fatalf("%s", r)
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 || st.Size() == 0 {
		t.Fatalf("backup file: %v %v", st, err)
	}
	// Let the usage flush and any late log line land.
	time.Sleep(3 * time.Second)
	// The key creation is logged by the coordinator that led then (the
	// leadership may have moved since ld was read).
	logged := false
	for _, p := range c.Nodes {
		log := framework.ReadFile(t, p.LogPath())
		logged = logged || strings.Contains(log, "/admin/accounts/"+acc.ID+"/keys")
		for what, s := range map[string]string{"API key": key, "API key body": key[len("snc_"):], "join token": tokSecret} {
			if strings.Contains(log, s) {
				t.Errorf("coordinator %s's log holds the %s", p.ID, what)
			}
		}
	}
	if !logged {
		t.Errorf("no coordinator logged the key creation: are these the right logs?")
	}
}

// electionAnswered says whether hostplanectl's run failed with a
// leadership change's 503 (no_leader, leader_unreachable) that it did not
// send again: a write without an Idempotency-Key, which may or may not have
// been applied (README, "Retry policy").
func electionAnswered(r ctlRun) bool {
	return r.code != 0 && (strings.Contains(r.stderr, "(no_leader)") || strings.Contains(r.stderr, "(leader_unreachable)"))
}

// ctlRead is ctl of a read, or of a write that sets what it says (a
// revoke), run again (up to five times) while a leadership change answers
// it for longer than hostplanectl's own resends.
func ctlRead(t *testing.T, p *framework.CoordinatorProcess, args ...string) ctlRun {
	t.Helper()
	r := ctl(t, p, args...)
	for try := 1; electionAnswered(r) && try < 5; try++ {
		t.Logf("%s: run again", r)
		r = ctl(t, p, args...)
	}
	return r
}

// ctlWrite is ctl of a write as README tells an operator to run one (up
// to five times): when hostplanectl reports it answered by a leadership
// change, made (nil: never) checks whether it was applied; if so, made's run
// is the answer, else the write runs again.
func ctlWrite(t *testing.T, p *framework.CoordinatorProcess, made func() (ctlRun, bool), args ...string) ctlRun {
	t.Helper()
	r := ctl(t, p, args...)
	for try := 1; electionAnswered(r) && try < 5; try++ {
		t.Logf("%s: checked, then run again", r)
		if made != nil {
			if m, ok := made(); ok {
				return m
			}
		}
		r = ctl(t, p, args...)
	}
	return r
}
