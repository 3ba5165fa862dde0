package hostinge2e

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/actions"
	"github.com/hostplane/hostplane/agent/internal/hosting"
	"github.com/hostplane/hostplane/agent/internal/hosting/hostingtest"
	"github.com/hostplane/hostplane/agent/internal/sitetls"
	"github.com/hostplane/hostplane/pkg/action"
	"github.com/hostplane/hostplane/pkg/api"
	pb "github.com/hostplane/hostplane/proto"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/freeport"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

func certAssign(t *testing.T, id, user, domain string, chain, key []byte, detach bool) *pb.ActionAssign {
	t.Helper()
	var p action.Params = &action.HostingCert{Domain: domain, ChainPEM: string(chain)}
	cmd := api.ActionHostingCert
	if detach {
		p, cmd = &action.HostingUncert{Domain: domain}, api.ActionHostingUncert
	}
	params, err := action.Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	a := &pb.ActionAssign{ActionId: id, Command: cmd, Target: user, Params: params}
	if key != nil {
		if a.SecretParams, err = action.EncodeSecret(api.ActionHostingCert, string(key)); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// nginxProcs is nginx's master pid and the pids of its workers.
type nginxProcs struct {
	master  string
	workers []string
}

func masterChildren(t *testing.T, pidFile string) nginxProcs {
	t.Helper()
	b, _ := os.ReadFile(pidFile)
	pid := strings.TrimSpace(string(b))
	c, err := os.ReadFile(fmt.Sprintf("/proc/%s/task/%s/children", pid, pid))
	if err != nil {
		t.Fatal(err)
	}
	return nginxProcs{master: pid, workers: strings.Fields(string(c))}
}

// reloadedSince says how nginx changed since before, or "" when it did
// not reload: a reload (or restart) starts new workers, so any worker not
// among before's is one. A worker of an earlier configuration (the
// account's create reloads nginx) may still be exiting when before is
// taken and gone after, which is no reload.
func (before nginxProcs) reloadedSince(after nginxProcs) string {
	if after.master != before.master {
		return fmt.Sprintf("master %s → %s", before.master, after.master)
	}
	for _, w := range after.workers {
		if !slices.Contains(before.workers, w) {
			return fmt.Sprintf("new worker %s (before: %v, after: %v)", w, before.workers, after.workers)
		}
	}
	if len(after.workers) == 0 {
		return "no worker left"
	}
	return ""
}

// tlsNode starts a hosting node of hostingtest.Config with a site TLS
// listener on a free loopback port (tlsAddr), both stopped when the test
// ends.
func tlsNode(t *testing.T) (e *hostingtest.Env, n *hosting.Node, tn *sitetls.Node, tlsAddr string) {
	t.Helper()
	e = hostingtest.Config(t)
	n, err := hosting.New(e.Cfg)
	if err != nil {
		t.Fatal(err)
	}
	tlsAddr = freeport.Addr(t, "tcp")
	if tn, err = sitetls.Setup(n.L, sitetls.Options{Listen: tlsAddr, WebUser: "www-data"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tn.Close() })
	if err := n.Start(hostenv.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	return e, n, tn, tlsAddr
}

// TestHostingCertThroughTheExecutor: a custom domain's certificate sent as
// hosting.cert (key in secret_params only) routes the domain to the account
// and serves its site over HTTPS with that certificate, with no nginx
// reload; the key never reaches the journal; a certificate of another name
// is refused with nothing changed; detach removes the route and the
// certificate.
func TestHostingCertThroughTheExecutor(t *testing.T) {
	e, n, tn, tlsAddr := tlsNode(t)
	dir := filepath.Join(e.Cfg.Root, "agent")
	m, j := newManager(t, dir, n)
	defer j.Close()
	m.SetSiteTLS(tn)
	ex := actions.New(actions.Config{Manager: m, PollInterval: 20 * time.Millisecond})
	uname, own := e.Prefix+"c", "c-"+e.Prefix+".test"
	hostingResult(t, call(t, ex, createAssign(t, "act-c-create", uname, own, "SftpSecretPw1234567", "DbSecretPw123456789")))
	// A page in the docroot, owned by the account as an SFTP upload would be.
	u, err := user.Lookup(uname)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	page := filepath.Join(n.L.Docroot(uname), "index.html")
	if err := os.WriteFile(page, []byte("custom site of "+uname+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(page, uid, -1); err != nil {
		t.Fatal(err)
	}
	before := masterChildren(t, n.L.NginxPID())

	custom := "shop-" + e.Prefix + ".test"
	chain, key, err := sitetls.SelfSigned(custom, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// A certificate of another name: refused, nothing routed or written.
	other, otherKey, _ := sitetls.SelfSigned("other-"+e.Prefix+".test", time.Now(), 24*time.Hour)
	if r := call(t, ex, certAssign(t, "act-c-bad", uname, custom, other, otherKey, false)); r.Success || r.ErrorCode != api.NodeErrInvalid {
		t.Fatalf("certificate of another name: %v %s %s", r.Success, r.ErrorCode, r.ErrorMessage)
	}
	if n.L.HostUser(custom) != "" || tn.Store.Has(custom) {
		t.Fatal("a refused hosting.cert changed the node")
	}

	if r := call(t, ex, certAssign(t, "act-c-attach", uname, custom, chain, key, false)); !r.Success {
		t.Fatalf("hosting.cert: %s %s", r.ErrorCode, r.ErrorMessage)
	}
	resp, body := framework.GetHTTPS(t, tlsAddr, custom, nil)
	leaf, _ := pem.Decode(chain)
	if resp.StatusCode != 200 || string(body) != "custom site of "+uname+"\n" || !bytes.Equal(resp.TLS.PeerCertificates[0].Raw, leaf.Bytes) {
		t.Fatalf("HTTPS %s: %d %q", custom, resp.StatusCode, body)
	}
	if r := before.reloadedSince(masterChildren(t, n.L.NginxPID())); r != "" {
		t.Fatalf("nginx reloaded: %s", r)
	}
	// A re-send without the secret is answered from the journal.
	again := certAssign(t, "act-c-attach", uname, custom, chain, nil, false)
	again.Resend = true
	if r := call(t, ex, again); !r.Success {
		t.Fatalf("re-send: %s %s", r.ErrorCode, r.ErrorMessage)
	}
	jb, _ := os.ReadFile(filepath.Join(dir, "journal.db"))
	for _, line := range strings.Split(string(key), "\n") {
		if len(line) > 20 && bytes.Contains(jb, []byte(line)) {
			t.Fatal("the private key is in the journal")
		}
	}

	// hosting.challenge: the key authorization is served through nginx's
	// /.well-known/acme-challenge/ for the account's custom domain, and
	// forgotten with remove; a bad token is refused.
	token := "tok_" + strings.Repeat("A", 30)
	challenge := func(id, tok string, remove bool) *pb.ActionAssign {
		params, err := action.Encode(&action.HostingChallenge{Token: tok, KeyAuthorization: tok + ".thumbprint_0123456789abcdefghij", Remove: remove})
		if err != nil {
			t.Fatal(err)
		}
		return &pb.ActionAssign{ActionId: id, Command: api.ActionHostingChallenge, Target: uname, Params: params}
	}
	getToken := func() (int, string) {
		return hostenv.Get(t, e.HTTPAddr, custom, "/.well-known/acme-challenge/"+token)
	}
	if r := call(t, ex, challenge("act-c-chal", token, false)); !r.Success {
		t.Fatalf("hosting.challenge: %s %s", r.ErrorCode, r.ErrorMessage)
	}
	if code, body := getToken(); code != 200 || body != token+".thumbprint_0123456789abcdefghij" {
		t.Fatalf("challenge through nginx: %d %q", code, body)
	}
	if r := call(t, ex, challenge("act-c-chal-bad", "../x", false)); r.Success || r.ErrorCode != api.NodeErrInvalid {
		t.Fatalf("bad token: %v %s", r.Success, r.ErrorCode)
	}
	if r := call(t, ex, challenge("act-c-unchal", token, true)); !r.Success {
		t.Fatalf("hosting.challenge remove: %s %s", r.ErrorCode, r.ErrorMessage)
	}
	if code, _ := getToken(); code != 404 {
		t.Fatalf("removed challenge still served: %d", code)
	}

	if r := call(t, ex, certAssign(t, "act-c-detach", uname, custom, nil, nil, true)); !r.Success {
		t.Fatalf("detach: %s %s", r.ErrorCode, r.ErrorMessage)
	}
	if n.L.HostUser(custom) != "" || tn.Store.Has(custom) {
		t.Fatal("detach left the route or the certificate")
	}
	if _, err := sitetls.ServedLeaf(hostenv.Ctx(t), tlsAddr, custom, 2*time.Second); err == nil {
		t.Fatal("a detached domain still gets a certificate")
	}
}

// TestUncertOfATakenOverName: the hosting.uncert the coordinator opens when
// another account's verified custom domain takes over an account's primary
// domain. On a node without a TLS listener it removes the account's route
// (HTTP with that Host is no site any more); once the name is routed to the
// other account with its certificate, a late uncert of the first account
// succeeds and leaves the other's route and certificate alone; deleting the
// first account then leaves them too.
func TestUncertOfATakenOverName(t *testing.T) {
	e, n, tn, tlsAddr := tlsNode(t)
	m, j := newManager(t, filepath.Join(e.Cfg.Root, "agent"), n)
	defer j.Close()
	ex := actions.New(actions.Config{Manager: m, PollInterval: 20 * time.Millisecond})
	squatter, owner := e.Prefix+"s", e.Prefix+"o"
	name := "shop-" + e.Prefix + ".test"
	hostingResult(t, call(t, ex, createAssign(t, "act-s-create", squatter, name, "SftpSecretPw1234567", "DbSecretPw123456789")))
	hostingResult(t, call(t, ex, createAssign(t, "act-o-create", owner, "own-"+e.Prefix+".test", "SftpSecretPw1234568", "DbSecretPw123456780")))
	for _, u := range []string{squatter, owner} {
		if err := os.WriteFile(filepath.Join(n.L.Docroot(u), "index.html"), []byte("site of "+u+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if code, body := hostenv.Get(t, e.HTTPAddr, name, "/"); code != 200 || body != "site of "+squatter+"\n" {
		t.Fatalf("the squatter's name before: %d %q", code, body)
	}

	// No TLS part on the manager: the route goes all the same.
	if r := call(t, ex, certAssign(t, "act-s-uncert", squatter, name, nil, nil, true)); !r.Success {
		t.Fatalf("uncert without a TLS listener: %s %s", r.ErrorCode, r.ErrorMessage)
	}
	if code, body := hostenv.Get(t, e.HTTPAddr, name, "/"); n.L.HostUser(name) != "" || code == 200 {
		t.Fatalf("after the uncert %s routes to %q: %d %q", name, n.L.HostUser(name), code, body)
	}

	// The owner's certificate routes the name to the owner.
	m.SetSiteTLS(tn)
	chain, key, err := sitetls.SelfSigned(name, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if r := call(t, ex, certAssign(t, "act-o-cert", owner, name, chain, key, false)); !r.Success {
		t.Fatalf("the owner's hosting.cert: %s %s", r.ErrorCode, r.ErrorMessage)
	}
	ownerServed := func(what string) {
		t.Helper()
		resp, body := framework.GetHTTPS(t, tlsAddr, name, nil)
		leaf, _ := pem.Decode(chain)
		if n.L.HostUser(name) != owner || resp.StatusCode != 200 || string(body) != "site of "+owner+"\n" || !bytes.Equal(resp.TLS.PeerCertificates[0].Raw, leaf.Bytes) {
			t.Fatalf("%s: %s routes to %q, HTTPS %d %q", what, name, n.L.HostUser(name), resp.StatusCode, body)
		}
	}
	ownerServed("the owner's certificate installed")
	// A late uncert of the squatter: done, nothing of the owner's touched.
	if r := call(t, ex, certAssign(t, "act-s-uncert2", squatter, name, nil, nil, true)); !r.Success {
		t.Fatalf("a late uncert of the squatter: %s %s", r.ErrorCode, r.ErrorMessage)
	}
	ownerServed("after a late uncert of the squatter")
	params, _ := action.Encode(nil)
	if r := call(t, ex, &pb.ActionAssign{ActionId: "act-s-delete", Command: api.ActionHostingDelete, Target: squatter, Params: params}); !r.Success {
		t.Fatalf("delete the squatter: %s %s", r.ErrorCode, r.ErrorMessage)
	}
	ownerServed("after the squatter's account was deleted")
}
