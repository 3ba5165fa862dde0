package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/auth"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/raftnode"
	"github.com/hostplane/hostplane/coordinator/internal/webhook"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

type whAPI struct {
	t    testing.TB
	a    *API
	srv  *httptest.Server
	dir  string
	node *raftnode.Node
	api  *framework.API // pkg/client, every /v1 answer checked against openapi.json
}

type mapResolver map[string]string

func (m mapResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	if ip, ok := m[host]; ok {
		return []net.IPAddr{{IP: net.ParseIP(ip)}}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// noPlaintextOnDisk snapshots w's Raft state, then fails the test (errf names
// the file) for every file under its data directory that holds one of secrets.
func noPlaintextOnDisk(t *testing.T, w *whAPI, errf string, secrets ...string) {
	t.Helper()
	if err := w.node.Raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		_ = filepath.Walk(w.dir, func(p string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() {
				return nil
			}
			raw, _ := os.ReadFile(p)
			if bytes.Contains(raw, []byte(s)) {
				t.Errorf(errf, p)
			}
			return nil
		})
	}
}

// leadingNode is a single-node Raft member "n1" on data directory dir (short
// timeouts, closed when the test ends) once it leads.
func leadingNode(tb testing.TB, dir string) *raftnode.Node {
	tb.Helper()
	node, err := raftnode.Open(raftnode.Config{ID: "n1", Dir: dir, BindAddr: framework.FreeAddr(tb, "tcp"), Bootstrap: true,
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { node.Close() })
	framework.WaitFor(tb, "n1 leads", 10*time.Second, 10*time.Millisecond, node.IsLeader)
	return node
}

// newWHAPI starts a single-node Raft member with the API on an httptest server.
func newWHAPI(t testing.TB) *whAPI {
	t.Helper()
	return newWHAPIWith(t, Config{NodeID: "n1"})
}

// newWHAPIWith is newWHAPI with the API's configuration cfg (NodeID "n1":
// the Raft node's).
func newWHAPIWith(t testing.TB, cfg Config) *whAPI {
	t.Helper()
	dir := t.TempDir()
	node := leadingNode(t, dir)
	a := New(cfg, node, slog.New(slog.DiscardHandler), nil, nil)
	if err := node.Raft.Barrier(5 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	a.SetLeaderReady(node.Raft.CurrentTerm())
	sealer, err := webhook.NewSealer(bytes.Repeat([]byte{7}, webhook.KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	a.SetWebhookDeps(&WebhookDeps{Sealer: sealer, MaxPerAccount: 3, Guard: &webhook.Guard{Resolver: mapResolver{
		"hooks.example.com": "93.184.216.34", "internal.example.com": "10.9.8.7",
	}}})
	srv := httptest.NewServer(a.Handler(nil))
	t.Cleanup(srv.Close)
	return &whAPI{t: t, a: a, srv: srv, dir: dir, node: node, api: framework.NewAPI(t, srv.URL, OpenAPI)}
}

// account makes an account and a key with the given scopes.
func (w *whAPI) account(scopes ...string) (string, string) {
	w.t.Helper()
	acc := w.newAccount()
	_, plain := w.addKey(acc, fsm.KeyCreate{Scopes: scopes})
	return acc, plain
}

// newAccount makes an account and returns its id.
func (w *whAPI) newAccount() string {
	w.t.Helper()
	acc := ids.New("acc", time.Now())
	w.apply(fsm.CmdAccountCreate, fsm.AccountCreate{ID: acc, Email: acc + "@example.com", Name: "x", Country: "TR"})
	return acc
}

// addKey adds a key to account acc with a fresh secret, a new id and the
// name "k" unless k names it, and the rest of k (scopes, rate limit,
// allow-list, expiry); it returns the key's id and secret.
func (w *whAPI) addKey(acc string, k fsm.KeyCreate) (string, string) {
	w.t.Helper()
	plain, hash, prefix := auth.NewKey("snc_")
	k.ID, k.AccountID, k.Hash, k.Prefix = ids.New("key", time.Now()), acc, hash, prefix
	if k.Name == "" {
		k.Name = "k"
	}
	w.apply(fsm.CmdKeyCreate, k)
	return k.ID, plain
}

// rawGet sends GET path to w's server past the validating client (for a
// path it does not check, or a check of its own), with key as a Bearer
// token unless empty, and returns the response and its body.
func (w *whAPI) rawGet(path, key string) (*http.Response, []byte) {
	w.t.Helper()
	resp := w.openGet(context.Background(), path, key)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// openGet is rawGet under ctx with the body left unread: the caller reads
// it (a stream, for as long as ctx lasts) and closes it.
func (w *whAPI) openGet(ctx context.Context, path, key string) *http.Response {
	w.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", w.srv.URL+path, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	return resp
}

func (w *whAPI) apply(typ fsm.CommandType, p any) any {
	w.t.Helper()
	env, _ := fsm.NewEnvelope(typ, time.Now(), p)
	res, err := w.a.Apply(context.Background(), env)
	if err != nil {
		w.t.Fatalf("apply %d: %v", typ, err)
	}
	return res.Value
}

// do sends a request through pkg/client (the answer checked against
// openapi.json) and returns the status and the decoded JSON body.
func (w *whAPI) do(key, method, path, body string, hdr ...string) (int, map[string]any) {
	w.t.Helper()
	r := w.api.Call(key, method, path, rawBody(body), headers(hdr))
	var out map[string]any
	_ = json.Unmarshal(r.Body, &out)
	return r.Status, out
}

// rawBody is body as-is, or none when empty.
func rawBody(body string) any {
	if body == "" {
		return nil
	}
	return body
}

// headers turns name, value pairs into a map.
func headers(kv []string) map[string]string {
	h := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		h[kv[i]] = kv[i+1]
	}
	return h
}

func TestWebhookEndpoints(t *testing.T) {
	w := newWHAPI(t)
	_, key := w.account(api.ScopeWebhooksRead, api.ScopeWebhooksWrite)
	_, readOnly := w.account(api.ScopeWebhooksRead)
	_, otherKey := w.account(api.ScopeWebhooksRead, api.ScopeWebhooksWrite)
	_, noScope := w.account(api.ScopeTicketsRead)

	body := `{"url":"https://hooks.example.com/a","events":["ticket.created","invoice.paid"],"description":"prod"}`
	if st, e := w.do(readOnly, "POST", "/v1/webhooks", body); st != 403 {
		t.Fatalf("create with webhooks:read only: %d %v", st, e)
	}
	if st, _ := w.do(noScope, "GET", "/v1/webhooks", ""); st != 403 {
		t.Fatalf("list without webhooks:read: %d", st)
	}
	st, created := w.do(key, "POST", "/v1/webhooks", body)
	if st != 201 {
		t.Fatalf("create: %d %v", st, created)
	}
	id, _ := created["id"].(string)
	secret, _ := created["secret"].(string)
	if !ids.Valid("wh", id) || !strings.HasPrefix(secret, "whsec_") || len(secret) != 49 || created["isActive"] != true {
		t.Fatalf("created %v", created)
	}
	st, got := w.do(key, "GET", "/v1/webhooks/"+id, "")
	if st != 200 || got["secret"] == secret || !strings.HasSuffix(got["secret"].(string), secret[len(secret)-4:]) || !strings.Contains(got["secret"].(string), "•") {
		t.Fatalf("get: %d %v", st, got)
	}
	if st, l := w.do(readOnly, "GET", "/v1/webhooks", ""); st != 200 || l["total"] != float64(0) {
		t.Fatalf("another account's list: %d %v", st, l)
	}
	if st, l := w.do(key, "GET", "/v1/webhooks", ""); st != 200 || l["total"] != float64(1) || strings.Contains(toJSON(l), secret) {
		t.Fatalf("list: %d %v", st, l)
	}
	// Another account sees a 404 everywhere.
	for _, c := range [][2]string{{"GET", ""}, {"PATCH", `{"isActive":false}`}, {"DELETE", ""}} {
		if st, _ := w.do(otherKey, c[0], "/v1/webhooks/"+id, c[1]); st != 404 {
			t.Errorf("%s by another account: %d", c[0], st)
		}
	}
	if st, _ := w.do(otherKey, "POST", "/v1/webhooks/"+id+"/rotate-secret", ""); st != 404 {
		t.Errorf("rotate by another account: %d", st)
	}
	if st, _ := w.do(otherKey, "GET", "/v1/webhooks/"+id+"/deliveries", ""); st != 404 {
		t.Errorf("deliveries by another account: %d", st)
	}

	// Bad input.
	bad := []struct{ body, code, says string }{
		{`{"url":"https://hooks.example.com/a","events":["ticket.opened"]}`, "unknown_event", "ticket.created, ticket.replied"},
		{`{"url":"https://hooks.example.com/a","events":[]}`, "invalid_field", "events"},
		{`{"url":"http://127.0.0.1","events":["*"]}`, "webhook_url_refused", "https"},
		{`{"url":"https://10.0.0.1","events":["*"]}`, "webhook_url_refused", "RFC 1918"},
		{`{"url":"https://169.254.169.254","events":["*"]}`, "webhook_url_refused", "metadata"},
		{`{"url":"https://[::1]","events":["*"]}`, "webhook_url_refused", "loopback"},
		{`{"url":"https://internal.example.com/h","events":["*"]}`, "webhook_url_refused", "10.9.8.7 is a private address"},
		{`{"url":"https://hooks.example.com/a","events":["*"],"secret":"mine"}`, "unknown_field", "secret"},
	}
	for _, b := range bad {
		st, e := w.do(key, "POST", "/v1/webhooks", b.body)
		if st != 400 || e["code"] != b.code || !strings.Contains(e["message"].(string), b.says) {
			t.Errorf("%s: %d %v", b.body, st, e)
		}
	}

	// PATCH: pause with isActive, resume with is_active, disagreement is a 400.
	if st, p := w.do(key, "PATCH", "/v1/webhooks/"+id, `{"isActive":false}`); st != 200 || p["isActive"] != false {
		t.Fatalf("pause: %d %v", st, p)
	}
	if st, p := w.do(key, "PATCH", "/v1/webhooks/"+id, `{"is_active":true,"events":["*"]}`); st != 200 || p["isActive"] != true || toJSON(p["events"]) != `["*"]` {
		t.Fatalf("resume: %d %v", st, p)
	}
	if st, _ := w.do(key, "PATCH", "/v1/webhooks/"+id, `{"isActive":true,"is_active":false}`); st != 400 {
		t.Fatalf("disagreeing flags: %d", st)
	}
	if st, _ := w.do(key, "PATCH", "/v1/webhooks/"+id, `{}`); st != 400 {
		t.Fatalf("empty patch: %d", st)
	}
	if st, e := w.do(key, "PATCH", "/v1/webhooks/"+id, `{"url":"https://169.254.169.254/"}`); st != 400 || e["code"] != "webhook_url_refused" {
		t.Fatalf("patch to metadata: %d %v", st, e)
	}

	// Rotate: a new secret, once.
	st, rot := w.do(key, "POST", "/v1/webhooks/"+id+"/rotate-secret", "")
	newSecret, _ := rot["secret"].(string)
	if st != 200 || !strings.HasPrefix(newSecret, "whsec_") || newSecret == secret {
		t.Fatalf("rotate: %d %v", st, rot)
	}

	// Deliveries: empty log; unknown delivery is a 404; bad limit a 400.
	if st, l := w.do(key, "GET", "/v1/webhooks/"+id+"/deliveries?limit=200", ""); st != 200 || l["total"] != float64(0) {
		t.Fatalf("deliveries: %d %v", st, l)
	}
	if st, _ := w.do(key, "GET", "/v1/webhooks/"+id+"/deliveries?limit=201", ""); st != 400 {
		t.Fatalf("limit 201: %d", st)
	}
	if st, _ := w.do(key, "POST", "/v1/webhooks/"+id+"/deliveries/"+ids.New("dlv", time.Now())+"/redeliver", ""); st != 404 {
		t.Fatalf("redeliver unknown: %d", st)
	}

	// Idempotency-Key: the replay returns the masked form, never the secret.
	st1, c1 := w.do(key, "POST", "/v1/webhooks", `{"url":"https://hooks.example.com/b","events":["*"]}`, "Idempotency-Key", "k1")
	st2, c2 := w.do(key, "POST", "/v1/webhooks", `{"url":"https://hooks.example.com/b","events":["*"]}`, "Idempotency-Key", "k1")
	if st1 != 201 || st2 != 201 || c1["id"] != c2["id"] || !strings.HasPrefix(c1["secret"].(string), "whsec_") || !strings.Contains(c2["secret"].(string), "•") {
		t.Fatalf("idempotent create: %d %v / %d %v", st1, c1, st2, c2)
	}
	// The per-account cap (3 here).
	if st, _ := w.do(key, "POST", "/v1/webhooks", `{"url":"https://hooks.example.com/c","events":["*"]}`); st != 201 {
		t.Fatalf("third: %d", st)
	}
	if st, e := w.do(key, "POST", "/v1/webhooks", `{"url":"https://hooks.example.com/d","events":["*"]}`); st != 409 || !strings.Contains(e["message"].(string), "maximum") {
		t.Fatalf("past the cap: %d %v", st, e)
	}

	// Delete.
	if st, _ := w.do(key, "DELETE", "/v1/webhooks/"+id, ""); st != 200 {
		t.Fatalf("delete: %d", st)
	}
	if st, _ := w.do(key, "GET", "/v1/webhooks/"+id, ""); st != 404 {
		t.Fatalf("get after delete: %d", st)
	}

	// No plaintext secret in the Raft log or the FSM.
	noPlaintextOnDisk(t, w, "plaintext secret found in %s", secret, newSecret, c1["secret"].(string))
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
