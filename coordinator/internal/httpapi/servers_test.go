package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

var allServerScopes = []string{api.ScopeServersRead, api.ScopeServersWrite, api.ScopeServersDestroy}

// actionCount is the number of stored actions (to prove a refused request
// committed nothing).
func (s *srvAPI) actionCount() int {
	n := 0
	_ = s.node.FSM.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(store.BucketActions).Stats().KeyN
		return nil
	})
	return n
}

func actionID(t *testing.T, r reply) string {
	t.Helper()
	act, _ := r.m["action"].(map[string]any)
	id, _ := act["id"].(string)
	if r.status != http.StatusAccepted || !ids.Valid("act", id) || act["status"] != api.ActionPending {
		t.Fatalf("not a 202 with a pending action: %d %s", r.status, r.body)
	}
	return id
}

func TestServerReadsScrubbedAndPaged(t *testing.T) {
	s := newSrvAPI(t)
	acc, key := s.account(allServerScopes...)
	made := s.servers(acc, 3)
	r := s.call(key, "GET", "/v1/servers?limit=2", "")
	if r.status != 200 || r.m["total"] != float64(3) || r.m["next_page"] != float64(2) {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	data := r.m["data"].([]any)
	if len(data) != 2 || data[0].(map[string]any)["id"] != made[2] || data[1].(map[string]any)["id"] != made[1] {
		t.Fatalf("not newest first: %s", r.body)
	}
	r2 := s.call(key, "GET", "/v1/servers?limit=2&page=2", "")
	if r2.status != 200 || len(r2.m["data"].([]any)) != 1 || r2.m["next_page"] != nil {
		t.Fatalf("page 2: %s", r2.body)
	}
	if r := s.call(key, "GET", "/v1/servers?limit=201", ""); r.status != 400 {
		t.Fatalf("limit 201: %d", r.status)
	}
	d := s.call(key, "GET", "/v1/servers/"+made[0], "")
	if d.status != 200 || d.m["id"] != made[0] || d.m["status"] != api.ServerRunning {
		t.Fatalf("detail: %d %s", d.status, d.body)
	}
	for _, body := range [][]byte{r.body, r2.body, d.body} {
		for _, leak := range []string{"node_id", "vm_name", "hv-secret-node", "hp-vm-", "account_id", "snapshots", "power_state"} {
			if bytes.Contains(body, []byte(leak)) {
				t.Errorf("%q leaks in %s", leak, body)
			}
		}
	}
	ips := s.call(key, "GET", "/v1/servers/"+made[0]+"/ips", "")
	if ips.status != 200 || string(bytes.TrimSpace(ips.body)) != `{"data":[{"ip":"203.0.113.7","version":4,"ptr":null,"primary":true,"gateway":null,"netmask":"255.255.255.0","prefix":24,"zoneHosted":false,"ptrSync":"not_hosted"}]}` {
		t.Fatalf("ips: %d %s", ips.status, ips.body)
	}
	if sn := s.call(key, "GET", "/v1/servers/"+made[0]+"/snapshots", ""); sn.status != 200 || string(bytes.TrimSpace(sn.body)) != `{"data":[]}` {
		t.Fatalf("snapshots: %d %s", sn.status, sn.body)
	}
	// servers:read only cannot act.
	_, readOnly := s.account(api.ScopeServersRead)
	if r := s.call(readOnly, "POST", "/v1/servers/"+made[0]+"/power/stop", ""); r.status != 403 {
		t.Fatalf("power with servers:read: %d", r.status)
	}
	// Default keys lack servers:destroy.
	_, writer := s.account(api.ScopeServersRead, api.ScopeServersWrite)
	if r := s.call(writer, "DELETE", "/v1/servers/"+made[0], ""); r.status != 403 || !strings.Contains(r.msg(), "servers:destroy") {
		t.Fatalf("terminate with servers:write: %d %s", r.status, r.body)
	}
}

// TestServerOtherAccount404: every server route answers 404 for another
// account's server (and action), and nothing is committed.
func TestServerOtherAccount404(t *testing.T) {
	s := newSrvAPI(t)
	acc, key := s.account(allServerScopes...)
	_, other := s.account(allServerScopes...)
	id := s.server(acc)
	r := s.call(key, "POST", "/v1/servers/"+id+"/snapshots", `{"name":"before upgrade"}`)
	actID := actionID(t, r)
	snapID := r.m["snapshot"].(map[string]any)["id"].(string)
	s.finish(actID, true)
	s.setStats(func(context.Context, string, string, bool, time.Duration, func(api.ServerStats) error) error {
		t.Error("stats asked for another account's server")
		return nil
	})
	before := s.actionCount()
	bodies := map[string]string{
		"/v1/servers/{id}/snapshots":      `{"name":"x"}`,
		"/v1/servers/{id}/reinstall":      `{"osTemplate":"debian-12"}`,
		"/v1/servers/{id}/label":          `{"label":"mine now"}`,
		"/v1/servers/{id}/power/{action}": "",
	}
	for _, rt := range (&API{}).serverRoutes() {
		path := strings.NewReplacer("{id}", id, "{snapshotId}", snapID, "{action}", "reboot").Replace(rt.Path)
		if rt.Path == "/v1/actions/{id}" {
			path = "/v1/actions/" + actID
		}
		if rt.Path == "/v1/actions" { // a list: below
			continue
		}
		if rt.Path == "/v1/servers" {
			if r := s.call(other, "GET", path, ""); r.status != 200 || r.m["total"] != float64(0) {
				t.Errorf("another account's list: %d %s", r.status, r.body)
			}
			continue
		}
		if rt.Path == "/v1/servers/ips" { // the caller's own addresses: none for the other account
			if r := s.call(other, "GET", path, ""); r.status != 200 || string(bytes.TrimSpace(r.body)) != `{"data":[],"page":1,"limit":50,"total":0,"next_page":null,"next_cursor":null}` {
				t.Errorf("another account's addresses: %d %s", r.status, r.body)
			}
			continue
		}
		// A GET or DELETE takes no body (one is refused 400 whoever asks).
		body := bodies[rt.Path]
		if rt.Method == "GET" || rt.Method == "DELETE" {
			body = ""
		}
		if r := s.call(other, rt.Method, path, body); r.status != 404 {
			t.Errorf("%s %s by another account: %d %s", rt.Method, rt.Path, r.status, r.body)
		}
		// A malformed id is a 404 too, never a 400 or 500.
		bad := strings.Replace(path, id, "srv_nope", 1)
		if rt.Path == "/v1/actions/{id}" {
			bad = "/v1/actions/act_../../x"
		}
		if r := s.call(key, rt.Method, bad, body); r.status != 404 {
			t.Errorf("%s %s with a bad id: %d %s", rt.Method, bad, r.status, r.body)
		}
	}
	// The list of actions: a 503 naming the level until the cluster is at
	// level 2; then another account's list is empty, and its list filtered
	// by this server the 404 of a server id that names nothing (the same
	// answer, so it confirms nothing).
	if r := s.call(other, "GET", "/v1/actions", ""); r.status != 503 || r.m["code"] != "cluster_upgrading" {
		t.Errorf("GET /v1/actions at level 1: %d %s", r.status, r.body)
	}
	s.apply(fsm.CmdClusterLevel, fsm.ClusterLevel{Level: 2})
	if r := s.call(key, "GET", "/v1/actions", ""); r.status != 200 || !strings.Contains(string(r.body), actID) {
		t.Errorf("the owner's list: %d %s", r.status, r.body)
	}
	if r := s.call(other, "GET", "/v1/actions", ""); r.status != 200 || string(bytes.TrimSpace(r.body)) != `{"data":[],"limit":50,"next_cursor":null}` {
		t.Errorf("GET /v1/actions by another account: %d %s", r.status, r.body)
	}
	theirs, none := s.call(other, "GET", "/v1/actions?resource_id="+id, ""), s.call(other, "GET", "/v1/actions?resource_id="+ids.New("srv", time.Now()), "")
	if theirs.status != 404 || none.status != 404 || theirs.m["message"] != none.m["message"] || theirs.m["code"] != none.m["code"] {
		t.Errorf("GET /v1/actions?resource_id= by another account: %d %s; of no server: %d %s", theirs.status, theirs.body, none.status, none.body)
	}
	if s.actionCount() != before {
		t.Fatal("a refused request committed an action")
	}
	if r := s.call(key, "GET", "/v1/actions/"+actID, ""); r.status != 200 || r.m["status"] != api.ActionSuccess || r.m["command"] != api.ActionSnapshotCreate || bytes.Contains(r.body, []byte("hv-secret-node")) {
		t.Fatalf("own action: %d %s", r.status, r.body)
	}
}

func TestServerActionsBusyAndFlow(t *testing.T) {
	s, _, key, id := newServerOwner(t)
	base := "/v1/servers/" + id

	r := s.call(key, "POST", base+"/power/stop", `{"grace_seconds":30}`)
	stop := actionID(t, r)
	if r.m["server"].(map[string]any)["action_id"] != stop || r.m["action"].(map[string]any)["command"] != api.ActionServerStop {
		t.Fatalf("stop: %s", r.body)
	}
	var stored store.Action
	_ = s.node.FSM.Read(func(r store.ReadTx) (err error) { stored, err = r.Action(stop); return })
	if string(stored.Params) != `{"grace_seconds":30}` || !stored.Mutating || stored.Target == "" || stored.Deadline.Before(time.Now().Add(50*time.Minute)) {
		t.Fatalf("stored action: %+v", stored)
	}
	s.mu.Lock()
	kicks := s.kicks
	s.mu.Unlock()
	if kicks != 1 {
		t.Fatalf("kicks %d", kicks)
	}
	// A second mutating request while the first is pending: 409 naming it.
	before := s.actionCount()
	for _, c := range [][3]string{{"POST", base + "/power/start", ""}, {"POST", base + "/snapshots", `{"name":"s"}`}, {"POST", base + "/password-reset", ""}, {"DELETE", base, ""}} {
		b := s.call(key, c[0], c[1], c[2])
		if b.status != 409 || b.code() != "action_in_progress" || !strings.Contains(b.msg(), stop) {
			t.Fatalf("%s %s while busy: %d %s", c[0], c[1], b.status, b.body)
		}
	}
	if s.actionCount() != before {
		t.Fatal("a refused action was stored")
	}
	// Nothing of the refused password reset is left with the dispatcher.
	if left := s.secretCount(); left != 0 {
		t.Fatalf("%d secrets left after refused proposals", left)
	}
	if a := s.call(key, "GET", "/v1/actions/"+stop, ""); a.status != 200 || a.m["status"] != api.ActionPending {
		t.Fatalf("follow: %d %s", a.status, a.body)
	}
	s.finish(stop, true)
	if d := s.call(key, "GET", base, ""); d.m["status"] != api.ServerStopped || d.m["action_id"] != nil {
		t.Fatalf("after stop: %s", d.body)
	}

	// Label.
	if l := s.call(key, "PATCH", base+"/label", `{"label":"db primary"}`); l.status != 200 || l.m["label"] != "db primary" || bytes.Contains(l.body, []byte("hv-secret")) {
		t.Fatalf("label: %d %s", l.status, l.body)
	}

	// Snapshots: create, list, revert, delete.
	r = s.call(key, "POST", base+"/snapshots", `{"name":"v1.0 release","description":"before the upgrade"}`)
	snapAct := actionID(t, r)
	snap := r.m["snapshot"].(map[string]any)
	snapID := snap["id"].(string)
	if !ids.Valid("snp", snapID) || snap["name"] != "v1.0 release" {
		t.Fatalf("snapshot create: %s", r.body)
	}
	_ = s.node.FSM.Read(func(r store.ReadTx) (err error) { stored, err = r.Action(snapAct); return })
	if string(stored.Params) != `{"description":"before the upgrade","name":"`+snapID+`"}` || stored.SnapshotID != snapID {
		t.Fatalf("snapshot params: %s %+v", stored.Params, stored)
	}
	s.finish(snapAct, true)
	if l := s.call(key, "GET", base+"/snapshots", ""); l.status != 200 || !strings.Contains(string(l.body), snapID) {
		t.Fatalf("snapshots: %s", l.body)
	}
	if d := s.call(key, "POST", base+"/snapshots", `{"name":"v1.0 release"}`); d.status != 409 {
		t.Fatalf("duplicate name: %d %s", d.status, d.body)
	}
	if d := s.call(key, "DELETE", base+"/snapshots/"+ids.New("snp", time.Now()), ""); d.status != 404 {
		t.Fatalf("unknown snapshot: %d %s", d.status, d.body)
	}
	rv := s.call(key, "POST", base+"/snapshots/"+snapID+"/revert", "")
	s.finish(actionID(t, rv), true)
	del := s.call(key, "DELETE", base+"/snapshots/"+snapID, "")
	s.finish(actionID(t, del), true)
	if l := s.call(key, "GET", base+"/snapshots", ""); strings.Contains(string(l.body), snapID) {
		t.Fatalf("deleted snapshot still listed: %s", l.body)
	}

	// Terminate (idempotent): then everything is a 409 and stats too.
	t1 := s.call(key, "DELETE", base, "", "Idempotency-Key", "term-1")
	term := actionID(t, t1)
	if t2 := s.call(key, "DELETE", base, "", "Idempotency-Key", "term-1"); t2.status != 202 || t2.header.Get("Idempotent-Replayed") != "true" || !strings.Contains(string(t2.body), term) {
		t.Fatalf("terminate replay: %d %s", t2.status, t2.body)
	}
	s.finish(term, true)
	if d := s.call(key, "GET", base, ""); d.m["status"] != api.ServerTerminated || d.m["terminated_at"] == nil {
		t.Fatalf("terminated: %s", d.body)
	}
	if l := s.call(key, "GET", "/v1/servers", ""); l.m["total"] != float64(1) {
		t.Fatalf("terminated server not listed: %s", l.body)
	}
	for _, c := range [][3]string{{"POST", base + "/power/start", ""}, {"PATCH", base + "/label", `{"label":"x"}`}, {"GET", base + "/stats", ""}} {
		if r := s.call(key, c[0], c[1], c[2]); r.status != 409 {
			t.Errorf("%s %s on a terminated server: %d %s", c[0], c[1], r.status, r.body)
		}
	}
	if ips := s.call(key, "GET", base+"/ips", ""); string(bytes.TrimSpace(ips.body)) != `{"data":[]}` {
		t.Fatalf("terminated ips: %s", ips.body)
	}
}

func TestServerBadBodies(t *testing.T) {
	s, _, key, id := newServerOwner(t)
	base := "/v1/servers/" + id
	cases := []struct{ method, path, body, says string }{
		{"POST", base + "/power/explode", "", "start, stop, reboot"},
		{"POST", base + "/power/stop", `{"grace_seconds":0}`, "grace_seconds"},
		{"POST", base + "/power/stop", `{"grace_seconds":601}`, "grace_seconds"},
		{"POST", base + "/power/stop", `{"force":"yes"}`, "force"},
		{"POST", base + "/power/start", `{"force":true}`, "force"},
		{"POST", base + "/power/reboot", `{"hard":true}`, "hard"},
		{"POST", base + "/snapshots", `{}`, "name"},
		{"POST", base + "/snapshots", `{"name":"a/b"}`, "name"},
		{"POST", base + "/snapshots", `{"name":"` + strings.Repeat("a", 65) + `"}`, "name"},
		{"POST", base + "/snapshots", `{"name":"ok","description":"` + strings.Repeat("d", 501) + `"}`, "description"},
		{"POST", base + "/snapshots", ``, "body"},
		{"POST", base + "/reinstall", `{}`, "osTemplate"},
		{"POST", base + "/reinstall", `{"osTemplate":"Debian 12"}`, "osTemplate"},
		{"POST", base + "/reinstall", `{"osTemplate":"centos-7"}`, "osTemplate"},
		{"POST", base + "/reinstall", `{"osTemplate":"..hidden"}`, "osTemplate"},
		{"POST", base + "/reinstall", `{"osTemplate":"-rf"}`, "osTemplate"},
		{"POST", base + "/reinstall", `{"osTemplate":"debian-12","ssh_keys":["hello"]}`, "ssh_keys[0]"},
		{"POST", base + "/reinstall", `{"osTemplate":"debian-12","ssh_keys":["ssh-ed25519 AAAA\nssh-rsa B"]}`, "ssh_keys[0]"},
		{"POST", base + "/reinstall", `{"osTemplate":"debian-12","os":"x\u0000"}`, "os"},
		{"POST", base + "/reinstall", `{"osTemplate":"debian-12","root_password":"mine"}`, "root_password"},
		{"POST", base + "/password-reset", `{"password":"mine"}`, "password"},
		{"PATCH", base + "/label", `{"label":""}`, "label"},
		{"PATCH", base + "/label", `{"label":"a\tb"}`, "label"},
		{"PATCH", base + "/label", `{"label":"` + strings.Repeat("é", 65) + `"}`, "label"},
		{"GET", base + "/stats?interval=0&stream=1", "", "interval"},
		{"GET", base + "/stats?stream=yes", "", `"stream" must be 1, 0, true or false`},
	}
	before := s.actionCount()
	for _, c := range cases {
		r := s.call(key, c.method, c.path, c.body)
		if r.status != 400 || !strings.Contains(r.msg(), c.says) {
			t.Errorf("%s %s %.60s: %d %s (want 400 naming %q)", c.method, c.path, c.body, r.status, r.body, c.says)
		}
	}
	if s.actionCount() != before {
		t.Fatal("a bad request committed an action")
	}
	if d := s.call(key, "GET", base, ""); d.m["label"] != "web" || d.m["action_id"] != nil {
		t.Fatalf("server changed: %s", d.body)
	}
	if n := s.secretCount(); n != 0 {
		t.Fatalf("secrets handed out for refused requests: %d", n)
	}
}

// TestServerPasswordsNeverStored: reinstall and password-reset return the new
// password once; it goes to the dispatcher as a secret and is in no Raft or
// FSM file; an idempotent replay returns the same action without it.
func TestServerPasswordsNeverStored(t *testing.T) {
	s, _, key, id := newServerOwner(t)
	base := "/v1/servers/" + id

	body := `{"osTemplate":"ubuntu-24.04","ssh_keys":["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEL6P6xcEx8Rin3snII2BE9kXbu6DHiO2alXqoX86AQD user@host"]}`
	r1 := s.call(key, "POST", base+"/reinstall", body, "Idempotency-Key", "re-1")
	act := actionID(t, r1)
	pw1, _ := r1.m["root_password"].(string)
	if len(pw1) != 20 || s.secret(act)["root_password"] != pw1 {
		t.Fatalf("reinstall: %s / secret %v", r1.body, s.secret(act))
	}
	r2 := s.call(key, "POST", base+"/reinstall", body, "Idempotency-Key", "re-1")
	if r2.status != 202 || r2.header.Get("Idempotent-Replayed") != "true" || r2.m["action"].(map[string]any)["id"] != act || r2.m["root_password"] != nil {
		t.Fatalf("replay: %d %s", r2.status, r2.body)
	}
	var stored store.Action
	_ = s.node.FSM.Read(func(r store.ReadTx) (err error) { stored, err = r.Action(act); return })
	if !stored.NeedsSecret || stored.Meta["os_template"] != "ubuntu-24.04" || stored.Meta["os"] != "ubuntu" ||
		string(stored.Params) != `{"ssh_keys":["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEL6P6xcEx8Rin3snII2BE9kXbu6DHiO2alXqoX86AQD user@host"],"template":"ubuntu-24.04"}` {
		t.Fatalf("stored reinstall: %+v %s", stored, stored.Params)
	}
	s.finish(act, true)
	if d := s.call(key, "GET", base, ""); d.m["os_template"] != "ubuntu-24.04" || d.m["os"] != "ubuntu" {
		t.Fatalf("after reinstall: %s", d.body)
	}

	r3 := s.call(key, "POST", base+"/password-reset", "")
	act3 := actionID(t, r3)
	pw3, _ := r3.m["root_password"].(string)
	if len(pw3) != 20 || pw3 == pw1 || s.secret(act3)["password"] != pw3 {
		t.Fatalf("password reset: %s / %v", r3.body, s.secret(act3))
	}
	s.finish(act3, true)
	// An empty object is a fine body too; this one waits (pending) for the scan.
	r4 := s.call(key, "POST", base+"/password-reset", "{}")
	pw4, _ := r4.m["root_password"].(string)
	actionID(t, r4)

	noPlaintextOnDisk(t, s.whAPI, "a password is stored in %s", pw1, pw3, pw4)
}

func TestServerPasswordShape(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		pw, err := newPassword()
		if err != nil {
			t.Fatal(err)
		}
		if len(pw) != passwordLength || seen[pw] || !strings.ContainsAny(pw, "0123456789") ||
			strings.ToLower(pw) == pw || strings.ToUpper(pw) == pw {
			t.Fatalf("weak or repeated password %q", pw)
		}
		for _, c := range pw {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				t.Fatalf("password %q has %q", pw, c)
			}
		}
		seen[pw] = true
	}
}

func TestServerStats(t *testing.T) {
	s, _, key, id := newServerOwner(t)
	path := "/v1/servers/" + id + "/stats"

	// Offline node: 503 node_offline with Retry-After.
	s.setStats(func(context.Context, string, string, bool, time.Duration, func(api.ServerStats) error) error {
		return fmt.Errorf("stats hv-secret-node: %w", ErrNodeOffline)
	})
	r := s.call(key, "GET", path, "")
	if r.status != 503 || r.code() != "node_offline" || r.header.Get("Retry-After") == "" || !strings.Contains(r.msg(), "not reachable") || bytes.Contains(r.body, []byte("hv-secret")) {
		t.Fatalf("offline: %d %v %s", r.status, r.header, r.body)
	}
	// An agent error does not leak its detail.
	s.setStats(func(context.Context, string, string, bool, time.Duration, func(api.ServerStats) error) error {
		return errors.New("libvirt: domain hp-vm-x not found on hv-secret-node")
	})
	if r := s.call(key, "GET", path, ""); r.status != 503 || bytes.Contains(r.body, []byte("hp-vm")) || bytes.Contains(r.body, []byte("hv-secret")) {
		t.Fatalf("agent error: %d %s", r.status, r.body)
	}
	// A sample.
	var gotNode, gotVM string
	s.setStats(func(_ context.Context, node, vm string, stream bool, _ time.Duration, fn func(api.ServerStats) error) error {
		gotNode, gotVM = node, vm
		if stream {
			return errors.New("want one sample")
		}
		return fn(api.ServerStats{Time: time.Now().UTC(), State: "running", CPUPercent: 12.5, MemoryBytes: 1 << 30, NetRxBps: 100})
	})
	r = s.call(key, "GET", path, "")
	if r.status != 200 || r.m["server_id"] != id || r.m["cpu_percent"] != 12.5 || gotNode != "hv-secret-node" || !strings.HasPrefix(gotVM, "hp-vm-") {
		t.Fatalf("stats: %d %s (%s %s)", r.status, r.body, gotNode, gotVM)
	}
	if testing.Short() {
		return
	}
	// A node that never answers: 503 after the 3 s deadline.
	s.setStats(func(ctx context.Context, _, _ string, _ bool, _ time.Duration, _ func(api.ServerStats) error) error {
		<-ctx.Done()
		return ctx.Err()
	})
	start := time.Now()
	if r := s.call(key, "GET", path, ""); r.status != 503 || r.code() != "node_offline" || time.Since(start) > 6*time.Second {
		t.Fatalf("slow node: %d %s after %v", r.status, r.body, time.Since(start))
	}
}

type sseEvent struct{ name, data string }

// readEvents reads SSE frames until n events arrived or the stream ended.
func readEvents(t *testing.T, body io.Reader, n int) []sseEvent {
	t.Helper()
	sc := bufio.NewScanner(body)
	var out []sseEvent
	var cur sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.name != "" || cur.data != "" {
				out = append(out, cur)
				cur = sseEvent{}
				if len(out) == n {
					return out
				}
			}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		default:
			t.Fatalf("unexpected SSE line %q", line)
		}
	}
	return out
}

func TestServerStatsStream(t *testing.T) {
	s, _, key, id := newServerOwner(t)
	path := "/v1/servers/" + id + "/stats?stream=1&interval=1"
	get := func() (*http.Request, *http.Response) {
		req, _ := http.NewRequest("GET", s.srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return req, resp
	}

	// Three samples, then the node drops: three stats events and one error.
	var gotInterval time.Duration
	s.setStats(func(ctx context.Context, _, _ string, stream bool, iv time.Duration, fn func(api.ServerStats) error) error {
		gotInterval = iv
		if !stream {
			return errors.New("want a stream")
		}
		for i := 0; i < 3; i++ {
			if err := fn(api.ServerStats{Time: time.Now().UTC(), State: "running", CPUPercent: float64(i)}); err != nil {
				return err
			}
		}
		return ErrNodeOffline
	})
	req, resp := get()
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || gotInterval != time.Second {
		t.Fatalf("stream: %d %v %s", resp.StatusCode, resp.Header, raw)
	}
	s.validate(req, nil, reply{status: resp.StatusCode, header: resp.Header, body: raw}, true)
	evs := readEvents(t, bytes.NewReader(raw), 10)
	if len(evs) != 4 || evs[3].name != "error" || !strings.Contains(evs[3].data, "node_offline") {
		t.Fatalf("events: %+v\n%s", evs, raw)
	}
	for i, e := range evs[:3] {
		if e.name != "stats" || !strings.Contains(e.data, `"server_id":"`+id+`"`) || !strings.Contains(e.data, fmt.Sprintf(`"cpu_percent":%d`, i)) {
			t.Fatalf("event %d: %+v", i, e)
		}
		if err := s.schema("ServerStats", []byte(e.data)); err != nil {
			t.Fatalf("event %d does not match ServerStats: %v", i, err)
		}
	}
	if err := s.schema("Error", []byte(evs[3].data)); err != nil {
		t.Fatalf("error event: %v", err)
	}
	if bytes.Contains(raw, []byte("}\n{")) || !bytes.HasSuffix(raw, []byte("\n\n")) {
		t.Fatalf("stray bytes after the stream: %q", raw)
	}

	// Offline before the first sample: a plain 503.
	s.setStats(func(context.Context, string, string, bool, time.Duration, func(api.ServerStats) error) error {
		return ErrNodeOffline
	})
	r := s.call(key, "GET", path, "")
	if r.status != 503 || r.code() != "node_offline" {
		t.Fatalf("offline stream: %d %s", r.status, r.body)
	}

	// The client goes away: the node's stream is cancelled.
	gone := make(chan struct{})
	s.setStats(func(ctx context.Context, _, _ string, _ bool, _ time.Duration, fn func(api.ServerStats) error) error {
		defer close(gone)
		for {
			if err := fn(api.ServerStats{Time: time.Now().UTC()}); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	_, resp = get()
	if evs := readEvents(t, resp.Body, 2); len(evs) != 2 || evs[0].name != "stats" {
		t.Fatalf("live stream: %+v", evs)
	}
	resp.Body.Close()
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end when the client went away")
	}
}

// TestForwarderStreamsEvents: a follower's forwarder passes each event on as
// it comes (it does not buffer an event stream).
func TestForwarderStreamsEvents(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, "event: stats\ndata: {}\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer up.Close()
	defer close(release)
	a := &API{cfg: Config{NodeID: "n2"}, log: slog.New(slog.DiscardHandler)}
	f := newForwarder(a)
	u, _ := url.Parse(up.URL)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.proxy.ServeHTTP(w, r.WithContext(contextWith(r.Context(), u)))
	}))
	defer front.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", front.URL+"/v1/servers/x/stats?stream=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if evs := readEvents(t, resp.Body, 1); len(evs) != 1 || evs[0].name != "stats" {
		t.Fatalf("the forwarder held the event back: %+v", evs)
	}
}

// TestAccountIPsPaged: GET /v1/servers/ips pages the account's servers that
// are not terminated like GET /v1/servers (page, limit, total, next_page),
// newest first; a terminated server is neither listed nor counted; a bad
// limit is a 400 naming it.
func TestAccountIPsPaged(t *testing.T) {
	s := newSrvAPI(t)
	acc, key := s.account(allServerScopes...)
	made := s.servers(acc, 4)
	term := actionID(t, s.call(key, "DELETE", "/v1/servers/"+made[1], "", "Idempotency-Key", "term-ips"))
	s.finish(term, true)
	ids := func(r reply) []string {
		var out []string
		for _, g := range r.m["data"].([]any) {
			out = append(out, g.(map[string]any)["serverId"].(string))
		}
		return out
	}
	r1 := s.call(key, "GET", "/v1/servers/ips?limit=2", "")
	if r1.status != 200 || r1.m["total"] != float64(3) || r1.m["page"] != float64(1) || r1.m["limit"] != float64(2) || r1.m["next_page"] != float64(2) {
		t.Fatalf("page 1: %d %s", r1.status, r1.body)
	}
	if got := ids(r1); len(got) != 2 || got[0] != made[3] || got[1] != made[2] {
		t.Fatalf("page 1 holds %v, want %v then %v", got, made[3], made[2])
	}
	if ips := r1.m["data"].([]any)[0].(map[string]any)["ips"].([]any); len(ips) != 1 || ips[0].(map[string]any)["ip"] != "203.0.113.7" {
		t.Fatalf("page 1 addresses: %s", r1.body)
	}
	r2 := s.call(key, "GET", "/v1/servers/ips?limit=2&page=2", "")
	if got := ids(r2); r2.status != 200 || len(got) != 1 || got[0] != made[0] || r2.m["next_page"] != nil {
		t.Fatalf("page 2 (the terminated %s left out): %d %s", made[1], r2.status, r2.body)
	}
	if r := s.call(key, "GET", "/v1/servers/ips", ""); r.m["total"] != float64(3) || len(ids(r)) != 3 || r.m["limit"] != float64(50) {
		t.Fatalf("default page: %s", r.body)
	}
	for _, q := range []string{"limit=201", "limit=0", "page=0", "page=x"} {
		r := s.call(key, "GET", "/v1/servers/ips?"+q, "")
		if name, _, _ := strings.Cut(q, "="); r.status != 400 || !strings.Contains(r.msg(), name) {
			t.Errorf("%s: %d %s", q, r.status, r.body)
		}
	}
	// The client walks every page.
	all, err := s.api.Client(key).AccountIPs(context.Background())
	if err != nil || len(all.Data) != 3 || all.Data[0].ServerID != made[3] || all.Data[2].ServerID != made[0] || all.Total != 3 {
		t.Fatalf("client AccountIPs: %+v %v", all, err)
	}
}

// TestSuspendedServerRefusesPowerOn: a server the renewal sweep suspended
// for non-payment answers start, reboot and reinstall with 409 suspended
// naming the unpaid invoice, and nothing is committed; stop still works.
func TestSuspendedServerRefusesPowerOn(t *testing.T) {
	s := newSrvAPI(t)
	acc, key := s.account(allServerScopes...)
	now := time.Now()
	id := ids.New("srv", now)
	vm := "hp-vm-" + id[4:]
	paid := now.Add(-time.Hour)
	srv := store.Server{Server: api.Server{ID: id, Label: "web", Hostname: "web.example.com", OSTemplate: "debian-12", OS: "debian",
		Plan: api.DefaultPlans[1], PaidUntil: &paid}, AccountID: acc, NodeID: "hv-secret-node", VMName: vm, MonthlyUsdCents: 500}
	prov := store.Action{Action: api.Action{ID: ids.New("act", now), Command: api.ActionServerProvision, ResourceID: id},
		NodeID: "hv-secret-node", Target: vm, Deadline: now.Add(time.Hour)}
	s.apply(fsm.CmdServerCreate, fsm.ServerCreate{Server: srv, Action: prov})
	s.finish(prov.ID, true)
	s.apply(fsm.CmdRenewalSweep, fsm.RenewalSweep{Policy: fsm.RenewalPolicy{InvoiceDays: 7}, Servers: []fsm.ServiceRef{{AccountID: acc, ServerID: id}}})
	var stored store.Server
	_ = s.node.FSM.Read(func(r store.ReadTx) (err error) { stored, err = r.OwnedServer(acc, id); return })
	if stored.Suspension == nil {
		t.Fatalf("not suspended: %+v", stored)
	}
	s.finish(stored.ActionID, true) // the sweep's stop
	before := s.actionCount()
	base := "/v1/servers/" + id
	for _, c := range [][2]string{{base + "/power/start", ""}, {base + "/power/reboot", ""}, {base + "/reinstall", `{"osTemplate":"debian-12"}`}} {
		r := s.call(key, "POST", c[0], c[1])
		if r.status != 409 || r.code() != "suspended" || !strings.Contains(r.msg(), "unpaid") {
			t.Fatalf("POST %s of a suspended server: %d %s", c[0], r.status, r.body)
		}
	}
	if s.actionCount() != before {
		t.Fatal("a refused power-on committed an action")
	}
	if r := s.call(key, "POST", base+"/power/stop", ""); r.status != 202 {
		t.Fatalf("stop of a suspended server: %d %s", r.status, r.body)
	}
}

// TestPowerAndSnapshotDeleteIdempotent: a power action or a snapshot
// deletion sent again with the same Idempotency-Key answers the first action
// (Idempotent-Replayed), while it runs and after it finished, and starts
// nothing; the same key with another body is a 422. Before, the key was
// ignored on these routes: the retry of a reboot was a 409 while the first
// ran and a second reboot after it.
func TestPowerAndSnapshotDeleteIdempotent(t *testing.T) {
	s, _, key, id := newServerOwner(t)
	base := "/v1/servers/" + id

	r1 := s.call(key, "POST", base+"/power/reboot", `{"force":true}`, "Idempotency-Key", "reboot-1")
	first := actionID(t, r1)
	before := s.actionCount()
	for _, finished := range []bool{false, true} {
		if finished {
			s.finish(first, true)
		}
		r := s.call(key, "POST", base+"/power/reboot", `{"force":true}`, "Idempotency-Key", "reboot-1")
		if r.status != 202 || r.header.Get("Idempotent-Replayed") != "true" || actionID(t, r) != first {
			t.Fatalf("reboot retried (first finished: %v): %d %s", finished, r.status, r.body)
		}
	}
	if r := s.call(key, "POST", base+"/power/reboot", `{"force":false}`, "Idempotency-Key", "reboot-1"); r.status != 422 {
		t.Fatalf("the key with another body: %d %s", r.status, r.body)
	}
	if n := s.actionCount(); n != before {
		t.Fatalf("retries stored %d actions", n-before)
	}

	snap := s.call(key, "POST", base+"/snapshots", `{"name":"keep"}`)
	s.finish(actionID(t, snap), true)
	snapID := snap.m["snapshot"].(map[string]any)["id"].(string)
	d1 := s.call(key, "DELETE", base+"/snapshots/"+snapID, "", "Idempotency-Key", "del-1")
	del := actionID(t, d1)
	s.finish(del, true)
	if d := s.call(key, "DELETE", base+"/snapshots/"+snapID, "", "Idempotency-Key", "del-1"); d.status != 202 || d.header.Get("Idempotent-Replayed") != "true" || actionID(t, d) != del {
		t.Fatalf("snapshot deletion retried after it ran: %d %s", d.status, d.body)
	}
}
