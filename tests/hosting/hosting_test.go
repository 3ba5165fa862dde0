// Package hosting tests web hosting end to end: three coordinator processes,
// a hostplane-agent process with the hosting role, and the real nginx,
// PHP-FPM, MariaDB and sshd of its node, driven through /v1 and the admin API.
package hosting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

func TestMain(m *testing.M) { os.Exit(framework.Main(m)) }

type hookReceiver struct {
	mu     sync.Mutex
	events []map[string]any
	srv    *httptest.Server
}

func (h *hookReceiver) find(typ, key, val string) map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range h.events {
		if d, _ := ev["data"].(map[string]any); ev["type"] == typ && d[key] == val {
			return d
		}
	}
	return nil
}

type world struct {
	t      *testing.T
	env    *hostenv.Env
	c      *framework.ProcessCluster
	agent  *hostenv.Agent
	nodeID string
	acct   string
	key    string
	other  string
	hooks  *hookReceiver
}

func newWorld(t *testing.T) *world { return newWorldWith(t, worldOptions{}) }

// worldOptions adds flags to the coordinators and the agent of a world.
type worldOptions struct {
	coordinatorArgs func(env *hostenv.Env) []string
	agentArgs       []string
	// agentArgsFor, if set, adds agent flags that need the Env (its ports).
	agentArgsFor func(env *hostenv.Env) []string
	// prepare, if set, readies the node's root before its agent starts
	// (a file system for sites/, say).
	prepare func(t *testing.T, env *hostenv.Env)
}

func newWorldWith(t *testing.T, o worldOptions) *world {
	env := hostenv.New(t)
	w := &world{t: t, env: env, nodeID: env.Prefix + "-web1"}
	var extra func(int, *framework.CoordinatorProcess) []string
	if o.coordinatorArgs != nil {
		args := o.coordinatorArgs(env)
		extra = func(int, *framework.CoordinatorProcess) []string { return args }
	}
	w.c = framework.NewProcessCluster(t, framework.ProcessOptions{N: 3, Bin: framework.Coordinator(t),
		Secret: "hosting-e2e-cluster-secret-0123", RaftTimeout: framework.RaftTimeout, LogLevel: "debug",
		Agents: true, AgentPing: 200 * time.Millisecond, AgentGrace: 2 * time.Second, Webhooks: true, Extra: extra})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	scopes := []string{api.ScopeHostingRead, api.ScopeHostingWrite, api.ScopeHostingDestroy, api.ScopeServersRead,
		api.ScopeWebhooksRead, api.ScopeWebhooksWrite}
	acc, key, err := w.c.NewAccount(ctx, env.Prefix+"-owner@example.com", scopes...)
	if err != nil {
		t.Fatal(err)
	}
	w.acct, w.key = acc.ID, key
	if _, w.other, err = w.c.NewAccount(ctx, env.Prefix+"-other@example.com", scopes...); err != nil {
		t.Fatal(err)
	}
	w.hooks = &hookReceiver{}
	w.hooks.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var ev map[string]any
		if json.NewDecoder(r.Body).Decode(&ev) == nil {
			w.hooks.mu.Lock()
			w.hooks.events = append(w.hooks.events, ev)
			w.hooks.mu.Unlock()
		}
		rw.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(w.hooks.srv.Close)
	if _, err := w.client(0, w.key).CreateWebhook(ctx, api.WebhookCreateRequest{URL: w.hooks.srv.URL + "/hook", Events: []string{"*"}}, ""); err != nil {
		t.Fatal(err)
	}
	if o.prepare != nil {
		o.prepare(t, env)
	}
	args := o.agentArgs
	if o.agentArgsFor != nil {
		args = append(append([]string{}, args...), o.agentArgsFor(env)...)
	}
	w.agent = env.JoinAgent(t, w.c, w.nodeID, args...)
	return w
}

func (w *world) client(i int, key string) *client.Client { return w.c.Client(i, key) }

// active creates a hosting account (create) and waits for its creation to
// succeed.
func (w *world) active(user, domain string) api.AdminHostingCreated {
	w.t.Helper()
	out := w.create(user, domain)
	w.mustSucceed(out.Action.ID)
	return out
}

// activeSite is active for the test's own names: the user w.env.Prefix+name
// and the domain label-<prefix>.test.
func (w *world) activeSite(name, label string) (user, domain string, created api.AdminHostingCreated) {
	w.t.Helper()
	user, domain = w.env.Prefix+name, label+"-"+w.env.Prefix+".test"
	return user, domain, w.active(user, domain)
}

// create places an account through the admin API, retrying while the node's
// inventory (its PHP versions) has not reached the leader yet, and after a
// 503 node_reconnecting (the node's agent finding a new leader after an
// election: a refusal that created nothing, "retry in a few seconds"), as
// an operator would.
func (w *world) create(user, domain string) api.AdminHostingCreated {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := w.c.AnyAlive(nil).Admin().CreateHosting(ctx, api.AdminHostingCreateRequest{AccountID: w.acct,
			Plan: "hosting-starter", Domain: domain, Username: user})
		cancel()
		if err == nil {
			return out
		}
		var ae *api.Error
		reconnecting := errors.As(err, &ae) && ae.StatusCode == http.StatusServiceUnavailable && ae.Code == "node_reconnecting"
		if !(reconnecting || strings.Contains(err.Error(), "no PHP-FPM versions")) || time.Now().After(deadline) {
			w.t.Fatalf("create %s: %v", user, err)
		}
		if reconnecting {
			w.t.Logf("create %s: %v: sent again in 1 s", user, err)
			time.Sleep(time.Second)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (w *world) mustSucceed(id string) {
	w.t.Helper()
	framework.WaitActionSuccess(w.t, w.client(1, w.key), id, 60*time.Second)
}

// noneOnDisk fails the test for each file that holds one of secrets (what
// names them in the failure) under the coordinators' data directories (Raft
// log, snapshots, FSM, logs) or the agent's root (journal, logs, node files).
func (w *world) noneOnDisk(t *testing.T, what string, secrets ...string) {
	t.Helper()
	for _, dir := range []string{filepath.Dir(w.c.Nodes[0].DataDir), w.env.Root} {
		_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			b, _ := os.ReadFile(path)
			for _, s := range secrets {
				if strings.Contains(string(b), s) {
					t.Errorf("%s is in %s", what, path)
				}
			}
			return nil
		})
	}
}

// rawGet is GET of a /v1 path with the owner's key through coordinator 2:
// status, headers, body.
func (w *world) rawGet(path string) (int, http.Header, string) {
	w.t.Helper()
	return w.rawGetAs(2, w.key, path)
}

// rawGetAs is GET of a /v1 path with key through coordinator i: status,
// headers, body.
func (w *world) rawGetAs(i int, key, path string) (int, http.Header, string) {
	w.t.Helper()
	req, _ := http.NewRequest("GET", w.c.URL(i)+path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, b := framework.Fetch(w.t, nil, req)
	return res.StatusCode, res.Header, string(b)
}

// The product path on three coordinators: create (passwords once) → upload
// index.php over SFTP → HTTP with that Host runs it as the account's user →
// PHP version refusal → suspend (site, SFTP, database refused) → unsuspend →
// delete (nothing left, username reusable); webhooks, isolation of another
// API account, and bad input refused with nothing written.
func TestHostingThroughTheAPI(t *testing.T) {
	w := newWorld(t)
	ctx := hostenv.Ctx(t)
	adm := w.c.AnyAlive(nil).Admin()

	// Bad input: refused naming the field, nothing written.
	for field, vals := range map[string][]string{
		"username": {"Root", "../x", "a;b", "a$b", "ab\nc", "root", strings.Repeat("a", 17), "ab\u0441d"},
		"domain":   {"EXAMPLE.com..", "example.com..", ".", "../etc", "a;b.com", "*.example.com", "127.0.0.1", "ex\u0430mple.com", "a\nb.com"},
	} {
		for _, v := range vals {
			req := api.AdminHostingCreateRequest{AccountID: w.acct, Plan: "hosting-starter", Domain: "ok-" + w.env.Prefix + ".test", Username: w.env.Prefix + "ok"}
			if field == "username" {
				req.Username = v
			} else {
				req.Domain = v
			}
			_, err := adm.CreateHosting(ctx, req)
			if api.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), `"`+field+`"`) {
				t.Errorf("%s %q: %v", field, v, err)
			}
		}
	}
	if hs, err := adm.ListHosting(ctx, ""); err != nil || len(hs) != 0 {
		t.Fatalf("bad input wrote accounts: %+v %v", hs, err)
	}

	user, domain := w.env.Prefix+"w", "www-"+w.env.Prefix+".test"
	created := w.create(user, domain)
	if created.SFTPPassword == "" || created.DBPassword == "" || created.Hosting.Status != api.HostingProvisioning || created.NodeID != w.nodeID {
		t.Fatalf("created %+v", created)
	}
	w.mustSucceed(created.Action.ID)
	id := created.Hosting.ID
	// No coordinator wrote a password anywhere, nor the agent.
	w.noneOnDisk(t, "a password", created.SFTPPassword, created.DBPassword)

	code, hdr, body := w.rawGet("/v1/hosting/" + id)
	if code != 200 || hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET hosting: %d %v", code, hdr)
	}
	if strings.Contains(body, created.SFTPPassword) || strings.Contains(body, created.DBPassword) || strings.Contains(body, w.nodeID) {
		t.Fatalf("GET hosting shows a password or the node: %s", body)
	}
	var view api.HostingAccount
	_ = json.Unmarshal([]byte(body), &view)
	if view.Status != api.HostingActive || view.PHPVersion != "8.2" || view.Connection.SFTPUser != user || view.Connection.DBName != user ||
		view.Limits.PHPWorkers != 4 {
		t.Fatalf("hosting view %+v", view)
	}
	if _, _, list := w.rawGet("/v1/hosting"); !strings.Contains(list, id) || strings.Contains(list, created.DBPassword) {
		t.Fatalf("list: %s", list)
	}
	if _, err := w.client(0, w.other).HostingAccount(ctx, id); api.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("another account reads it: %v", err)
	}
	if _, err := w.client(0, w.other).SuspendHosting(ctx, id, ""); api.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("another account suspends it: %v", err)
	}
	waitHook := func(typ string) map[string]any {
		deadline := time.Now().Add(20 * time.Second)
		for {
			if d := w.hooks.find(typ, "hostingId", id); d != nil {
				return d
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s webhook for %s", typ, id)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if d := waitHook("hosting.created"); d["username"] != user || d["domain"] != domain || d["status"] != api.HostingActive {
		t.Fatalf("hosting.created payload %v", d)
	}

	// SFTP with the password shown once; PHP runs as the account's user.
	hostenv.PutProbe(t, w.env.SSHAddr, user, created.SFTPPassword, "sftp")
	hostenv.WantSite(t, w.env.HTTPAddr, domain, user, "site")
	if _, err := hostenv.DBLogin(w.env.DBPort, user, created.DBPassword, user, "SELECT CURRENT_USER()"); err != nil {
		t.Fatalf("database: %v", err)
	}

	// PHP versions: a 400 lists the installed ones; an installed one moves the pool.
	_, err := w.client(0, w.key).SetHostingPHP(ctx, id, "7.4", "")
	if api.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "php_version") || !strings.Contains(err.Error(), "installed: 8.2") {
		t.Fatalf("php 7.4: %v", err)
	}
	acc, err := w.client(0, w.key).SetHostingPHP(ctx, id, "8.2", "php-1")
	if err != nil {
		t.Fatal(err)
	}
	w.mustSucceed(acc.Action.ID)

	// Suspend: site, SFTP and database refused.
	acc, err = w.client(1, w.key).SuspendHosting(ctx, id, "susp-1")
	if err != nil {
		t.Fatal(err)
	}
	w.mustSucceed(acc.Action.ID)
	if code, _ := hostenv.Get(t, w.env.HTTPAddr, domain, "/"); code != 503 {
		t.Fatalf("suspended site: %d", code)
	}
	if _, err := hostenv.SFTP(w.env.SSHAddr, user, created.SFTPPassword); err == nil {
		t.Fatal("sftp of a suspended account")
	}
	if out, err := hostenv.DBLogin(w.env.DBPort, user, created.DBPassword, user, "SELECT 1"); err == nil || !strings.Contains(out, "locked") {
		t.Fatalf("database of a suspended account: %q %v", out, err)
	}
	if h, _ := w.client(2, w.key).HostingAccount(ctx, id); h.Status != api.HostingSuspended {
		t.Fatalf("status after suspend: %+v", h)
	}
	if _, err := w.client(0, w.key).SuspendHosting(ctx, id, ""); api.StatusOf(err) != http.StatusConflict {
		t.Fatalf("second suspend: %v", err)
	}
	acc, err = w.client(2, w.key).UnsuspendHosting(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	w.mustSucceed(acc.Action.ID)
	if code, body := hostenv.Get(t, w.env.HTTPAddr, domain, "/"); code != 200 || !strings.Contains(body, "user="+user) {
		t.Fatalf("unsuspended site: %d %q", code, body)
	}
	if c, err := hostenv.SFTP(w.env.SSHAddr, user, created.SFTPPassword); err != nil {
		t.Fatalf("sftp after unsuspend: %v", err)
	} else {
		c.Close()
	}

	// Delete: nothing left on the node; the username is reusable.
	acc, err = w.client(0, w.key).DeleteHosting(ctx, id, "del-1")
	if err != nil {
		t.Fatal(err)
	}
	w.mustSucceed(acc.Action.ID)
	assertGone(t, w, user, domain)
	if h, _ := w.client(0, w.key).HostingAccount(ctx, id); h.Status != api.HostingDeleted {
		t.Fatalf("status after delete: %+v", h)
	}
	// Again, through hostplanectl: the passwords are printed once and work.
	out, err := exec.Command(framework.Ctl(t), "--socket", w.c.Nodes[1].AdminSocket(), "hosting", "create", "--account", w.acct,
		"--plan", "hosting-starter", "--domain", domain, "--username", user).CombinedOutput()
	if err != nil {
		t.Fatalf("hostplanectl hosting create: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`hosting account (hst_\S+) .*action (act_\S+)\n(?s:.*)SFTP: .*shown only this once\): (\S+)\n.*shown only this once\): (\S+)\n`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("hostplanectl output:\n%s", out)
	}
	w.mustSucceed(m[2])
	if c, err := hostenv.SFTP(w.env.SSHAddr, user, m[3]); err != nil {
		t.Fatalf("sftp with the printed password: %v", err)
	} else {
		c.Close()
	}
	if _, err := hostenv.DBLogin(w.env.DBPort, user, m[4], user, "SELECT 1"); err != nil {
		t.Fatalf("database with the printed password: %v", err)
	}
	acc, err = w.client(0, w.key).DeleteHosting(ctx, m[1], "")
	if err != nil {
		t.Fatal(err)
	}
	w.mustSucceed(acc.Action.ID)
	assertGone(t, w, user, domain)

	// The agent killed mid-create: on restart the action completes once.
	w.agent.Stop()
	w.agent.Start(api.NodeOpHostingCreate + ":database")
	w.c.WaitNode(w.nodeID, 30*time.Second, "connected", func(n api.AgentNode) bool { return n.Connected })
	cu, cd := w.env.Prefix+"k", "k-"+w.env.Prefix+".test"
	crash := w.create(cu, cd)
	w.agent.WaitExit(60 * time.Second)
	w.agent.Start("")
	w.mustSucceed(crash.Action.ID)
	if _, err := hostenv.DBLogin(w.env.DBPort, cu, crash.DBPassword, cu, "SELECT 1"); err != nil {
		t.Fatalf("database after the crash: %v", err)
	}
	hostenv.PutProbe(t, w.env.SSHAddr, cu, crash.SFTPPassword, "sftp after the crash")
	hostenv.WantSite(t, w.env.HTTPAddr, cd, cu, "site after the crash")
	w.recoveredOnce(t, "create", crash.Action.ID)
}

// recoveredOnce fails the test unless the agent's log shows the action id
// (what) started once and completed once by the agent's recovery.
func (w *world) recoveredOnce(t *testing.T, what, id string) {
	t.Helper()
	started, resumed := 0, 0
	for _, l := range strings.Split(framework.ReadFile(t, w.agent.Log), "\n") {
		if strings.Contains(l, "op="+id) && strings.Contains(l, `msg="operation started"`) {
			started++
		}
		if strings.Contains(l, "op="+id) && strings.Contains(l, `msg="operation succeeded"`) && strings.Contains(l, "recovery=true") {
			resumed++
		}
	}
	if started != 1 || resumed != 1 {
		t.Fatalf("the %s started %d times and was completed by recovery %d times (want 1 and 1)", what, started, resumed)
	}
}

func assertGone(t *testing.T, w *world, user, domain string) {
	t.Helper()
	if out, err := exec.Command("getent", "passwd", user).CombinedOutput(); err == nil {
		t.Fatalf("user left: %s", out)
	}
	root := w.env.Root
	for _, p := range []string{filepath.Join(root, "sites", user), filepath.Join(root, "hosts", domain), filepath.Join(root, "accounts", user+".json")} {
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("%s left", p)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(w.env.Root, "fpm", "*", "pool.d", user+".conf")); len(m) != 0 {
		t.Fatalf("pool left: %v", m)
	}
	out, err := exec.Command("mariadb", "--no-defaults", "--socket="+w.env.DBSocket, "-uroot", "-N", "-B", "-e",
		fmt.Sprintf("SELECT (SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name='%s') + (SELECT COUNT(*) FROM mysql.user WHERE user='%s')", user, user)).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "0" {
		t.Fatalf("database left: %q %v", out, err)
	}
	if code, _ := hostenv.Get(t, w.env.HTTPAddr, domain, "/"); code != 404 {
		t.Fatalf("deleted site answers %d", code)
	}
}
