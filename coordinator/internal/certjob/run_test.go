package certjob

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/fsm/fsmtest"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/coordinator/internal/webhook"
	"github.com/hostplane/hostplane/internal/acmetest"
	"github.com/hostplane/hostplane/internal/certissue"
	"github.com/hostplane/hostplane/internal/dnstest"
	"github.com/hostplane/hostplane/pkg/api"
)

// fsmState applies proposals to a real FSM (one replica, no Raft between).
type fsmState struct{ *fsmtest.Replica }

func (s *fsmState) must(t *testing.T, typ fsm.CommandType, p any) {
	t.Helper()
	if err := s.Propose(context.Background(), typ, p); err != nil {
		t.Fatalf("command %d: %v", typ, err)
	}
}

func (s *fsmState) domains(t *testing.T) []store.CustomDomain {
	t.Helper()
	var ds []store.CustomDomain
	if err := s.FSM.Read(func(r store.ReadTx) (err error) { ds, err = r.CustomDomains(); return }); err != nil {
		t.Fatal(err)
	}
	return ds
}

// node answers HTTP-01 on its port (as the agent's responder behind nginx)
// and keeps what was installed.
type node struct {
	mu        sync.Mutex
	tokens    map[string]string
	presented int
	installed map[string][]byte // domain → chain
	keys      map[string][]byte
	failOnce  bool // the next Install fails
	onPresent func() error
}

func (n *node) Present(_ context.Context, _, _, token, keyAuth string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.tokens[token] = keyAuth
	n.presented++
	if f := n.onPresent; f != nil {
		n.onPresent = nil
		n.mu.Unlock()
		defer n.mu.Lock()
		return f()
	}
	return nil
}

func (n *node) CleanUp(_ context.Context, _, _, token string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.tokens, token)
	return nil
}

func (n *node) Install(_ context.Context, _, domain string, chain, key []byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.failOnce {
		n.failOnce = false
		return fmt.Errorf("hosting.cert on hv-1: node not connected")
	}
	n.installed[domain], n.keys[domain] = chain, key
	return nil
}

func (n *node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ka, ok := n.tokens[strings.TrimPrefix(r.URL.Path, "/.well-known/acme-challenge/")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	_, _ = io.WriteString(w, ka)
}

// rig is a real pebble validating HTTP-01 against node's responder, the
// test's DNS (records) and a real FSM with one verified custom domain per
// name (<name>.example.test, hosting account hst_<i>, user<i>).
func rig(t *testing.T, records []string, names ...string) (*node, *acmetest.Pebble, *fsmState, string) {
	t.Helper()
	dns := dnstest.Start(t, "example.test")
	for _, r := range records {
		dns.Add(t, r)
	}
	nd := &node{tokens: map[string]string{}, installed: map[string][]byte{}, keys: map[string][]byte{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: nd, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	pb := acmetest.Start(t, dns.Addr, port, time.Hour)

	dbPath := filepath.Join(t.TempDir(), "fsm.db")
	f, err := fsm.Open(dbPath, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	st := &fsmState{&fsmtest.Replica{FSM: f}}
	now := time.Now()
	st.must(t, fsm.CmdAccountCreate, fsm.AccountCreate{ID: "acc_1", Email: "a@example.com"})
	st.must(t, fsm.CmdNodeCAInit, fsm.NodeCAInit{CertDER: []byte{1}, SealedKey: "v1.x", Fingerprint: "fp"})
	st.must(t, fsm.CmdNodeTokenCreate, fsm.NodeTokenCreate{ID: "jt_1", Hash: "h1", ExpiresAt: now.Add(time.Hour)})
	st.must(t, fsm.CmdNodeEnrol, fsm.NodeEnrol{TokenID: "jt_1", TokenHash: "h1", NodeID: "hv-1", CertSerial: "s1", CertNotAfter: now.Add(24 * time.Hour)})
	st.must(t, fsm.CmdNodeHello, fsm.NodeHello{NodeID: "hv-1", CertSerial: "s1", Roles: []string{api.RoleHosting}, ProtocolVersion: 103})
	for i, name := range names {
		id, user := fmt.Sprintf("hst_%d", i), fmt.Sprintf("user%d", i)
		h := store.HostingAccount{HostingAccount: api.HostingAccount{ID: id, Username: user, Domain: user + ".hosting.test", Plan: "p", PHPVersion: "8.2"},
			AccountID: "acc_1", NodeID: "hv-1"}
		st.must(t, fsm.CmdHostingCreate, fsm.HostingCreate{Hosting: h, Action: store.Action{Action: api.Action{ID: "act_" + id,
			Command: api.ActionHostingCreate, ResourceID: id}, NodeID: "hv-1", Target: user, Deadline: now.Add(time.Hour), NeedsSecret: true}})
		st.must(t, fsm.CmdActionFinish, fsm.ActionFinish{ID: "act_" + id, Success: true})
		domain := name + ".example.test"
		st.must(t, fsm.CmdCustomDomainSet, fsm.CustomDomainSet{HostingID: id, AccountID: "acc_1", Domain: domain, Token: "t" + id})
		st.must(t, fsm.CmdCustomDomainVerified, fsm.CustomDomainVerified{HostingID: id, AccountID: "acc_1", Domain: domain})
	}
	return nd, pb, st, dbPath
}

// runners makes the sealer and the Runners (one per leadership owner) of
// a rig.
func runners(t *testing.T, nd *node, pb *acmetest.Pebble, st *fsmState) (*webhook.Sealer, func(owner string) *Runner) {
	t.Helper()
	kek := make([]byte, webhook.KEKSize)
	for i := range kek {
		kek[i] = byte(i * 5)
	}
	sealer, err := webhook.NewSealer(kek)
	if err != nil {
		t.Fatal(err)
	}
	accKey, err := certissue.NewAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	return sealer, func(owner string) *Runner {
		return &Runner{State: st, Node: nd, Sealer: sealer, Now: time.Now, Owner: owner,
			// The 90-day profile, named: pebble picks one of its profiles at
			// random for an order that names none, and with the rig's
			// one-hour "shortlived" one (the ARI window the whole hour) the
			// renewal time fell before the install's back-off now and then,
			// so the re-install was due as a renewal (stop 58's CI).
			Config:  certissue.Config{DirectoryURL: pb.Dir, HTTPClient: pb.Client, Profile: "default"},
			Account: certissue.Account{KeyPEM: accKey}}
	}
}

// TestRunAgainstPebble: a verified custom domain is due; its order is
// recorded before the ACME call, pebble (a real ACME server) validates
// HTTP-01 against the node's responder and issues; the state then holds the
// chain with the key sealed (no PEM key anywhere in the FSM file), the
// status issued with not_after and a renewal time before it, and the node
// got chain and key; nothing is due after it. An order of a domain whose
// DNS does not point at the node fails, recorded with the reason and the
// back-off's next try, and is not due before it. A certificate the node
// did not take shows failed with the reason and is installed again, without
// a new order, after the back-off.
func TestRunAgainstPebble(t *testing.T) {
	nd, pb, st, dbPath := rig(t, []string{"shop.example.test. 60 IN A 127.0.0.1", "broken.example.test. 60 IN A 127.0.0.2"}, "shop", "broken")
	f := st.FSM

	sealer, newRunner := runners(t, nd, pb, st)
	r := newRunner("")

	nd.failOnce = true
	due, _ := Due(st.domains(t), time.Now())
	if len(due) != 2 {
		t.Fatalf("due: %+v", due)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	for _, o := range due {
		err := r.Run(ctx, o)
		switch o.Domain.Domain {
		case "shop.example.test":
			if err == nil || !strings.Contains(err.Error(), "node not connected") {
				t.Fatalf("order of shop.example.test with the node away: %v", err)
			}
		case "broken.example.test":
			if err == nil {
				t.Fatal("order of a domain whose address is not the node's succeeded")
			}
		}
	}

	// The node did not take it: failed with the reason, installed again
	// (no new order) after the back-off.
	var shop store.CustomDomain
	for _, d := range st.domains(t) {
		if d.Domain == "shop.example.test" {
			shop = d
		}
	}
	if c := shop.Certificate; c == nil || c.Status != api.CertificateFailed || !strings.Contains(c.Reason, "node not connected") || c.RetryAt == nil {
		t.Fatalf("install failure: %+v", c)
	}
	later := shop.Certificate.RetryAt.Add(time.Second)
	var reinstall *Order
	due, _ = Due(st.domains(t), later)
	for i, o := range due {
		if o.Domain.Domain == "shop.example.test" && o.Reason == ReasonInstall {
			reinstall = &due[i]
		}
	}
	if reinstall == nil {
		t.Fatalf("due after the install's back-off: %+v", due)
	}
	presented := nd.presented
	if err := r.Run(ctx, *reinstall); err != nil {
		t.Fatal(err)
	}
	if nd.presented != presented {
		t.Fatal("a re-install ordered again")
	}

	byName := map[string]store.CustomDomain{}
	for _, d := range st.domains(t) {
		byName[d.Domain] = d
	}
	ok := byName["shop.example.test"]
	c := ok.Certificate
	if c == nil || c.Status != api.CertificateIssued || c.NotAfter == nil || c.RenewAt == nil || !c.RenewAt.Before(*c.NotAfter) {
		t.Fatalf("issued status: %+v", c)
	}
	key, err := sealer.Open(SealID("shop.example.test"), ok.Cert.SealedKey)
	if err != nil || string(nd.keys["shop.example.test"]) != key || !strings.Contains(key, "PRIVATE KEY") {
		t.Fatalf("sealed key does not open to the installed key: %v", err)
	}
	cert, err := tls.X509KeyPair(nd.installed["shop.example.test"], []byte(key))
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, _ := x509.ParseCertificate(der)
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "shop.example.test", Roots: pb.Root(t), Intermediates: inter}); err != nil {
		t.Fatalf("the installed chain does not verify to pebble's root for shop.example.test: %v", err)
	}

	bad := byName["broken.example.test"].Certificate
	if bad == nil || bad.Status != api.CertificateFailed || bad.Reason == "" || bad.RetryAt == nil || time.Until(*bad.RetryAt) < 30*time.Second {
		t.Fatalf("failed status: %+v", bad)
	}
	if due, _ := Due(st.domains(t), time.Now()); len(due) != 0 {
		t.Fatalf("due right after: %+v", due)
	}
	if due, _ := Due(st.domains(t), bad.RetryAt.Add(time.Second)); len(due) != 1 || due[0].Reason != ReasonRetry {
		t.Fatalf("due after the back-off: %+v", due)
	}
	_ = f.Close()
	raw, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "PRIVATE KEY") {
		t.Fatal("a PEM private key is in the FSM file")
	}
}
