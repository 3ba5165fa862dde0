package fsm

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// A custom domain in the FSM: one account per name cluster-wide (its own
// domains included), the same PUT twice keeps the token, a replacement frees
// the old name, verified only if still the account's, and both a detach and
// the account's deletion free the name.
func TestCustomDomains(t *testing.T) {
	h := newServerHarness(t)
	h.must(CmdNodeHello, NodeHello{NodeID: "hv-1", CertSerial: "s1", Roles: []string{"hosting"}, ProtocolVersion: 103})
	deadline := h.at.Add(time.Hour)
	mk := func(id, acc, user, domain string) {
		a := store.HostingAccount{HostingAccount: api.HostingAccount{ID: id, Username: user, Domain: domain, Plan: "p", PHPVersion: "8.2"},
			AccountID: acc, NodeID: "hv-1"}
		h.must(CmdHostingCreate, HostingCreate{Hosting: a, Action: store.Action{Action: api.Action{ID: "act_" + id,
			Command: api.ActionHostingCreate, ResourceID: id}, NodeID: "hv-1", Target: user, Deadline: deadline, NeedsSecret: true}})
		h.must(CmdActionFinish, ActionFinish{ID: "act_" + id, Success: true})
	}
	mk("hst_a", "acc_1", "ada", "ada.example")
	mk("hst_b", "acc_2", "bob", "bob.example")
	set := func(id, acc, d, tok string) (any, error) {
		return h.apply(CmdCustomDomainSet, CustomDomainSet{HostingID: id, AccountID: acc, Domain: d, Token: tok})
	}
	conflict := func(err error) bool {
		var fc *FieldConflictError
		return errors.As(err, &fc) && fc.Field == "domain" && errors.Is(err, ErrConflict)
	}
	if _, err := set("hst_a", "acc_2", "shop.example", "t1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another account's hosting: %v", err)
	}
	if out, err := set("hst_a", "acc_1", "shop.example", "t1"); err != nil || out.(api.CustomDomain).Status != api.CustomDomainPendingDNS {
		t.Fatalf("set: %v %v", out, err)
	}
	if out, _ := set("hst_a", "acc_1", "shop.example", "t-other"); out.(api.CustomDomain).Domain != "shop.example" {
		t.Fatal("same domain again changed it")
	}
	for _, d := range []string{"shop.example", "ada.example", "bob.example"} {
		if _, err := set("hst_b", "acc_2", d, "t2"); !conflict(err) {
			t.Fatalf("%s for another account: %v", d, err)
		}
	}
	if _, err := h.apply(CmdCustomDomainVerified, CustomDomainVerified{HostingID: "hst_a", AccountID: "acc_1", Domain: "old.example"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("verified for a name no longer the account's: %v", err)
	}
	v := h.must(CmdCustomDomainVerified, CustomDomainVerified{HostingID: "hst_a", AccountID: "acc_1", Domain: "shop.example"}).(api.CustomDomain)
	if v.Status != api.CustomDomainVerified || v.VerifiedAt == nil {
		t.Fatalf("verified: %+v", v)
	}
	// A replacement frees the old name.
	if _, err := set("hst_a", "acc_1", "shop2.example", "t3"); err != nil {
		t.Fatal(err)
	}
	if _, err := set("hst_b", "acc_2", "shop.example", "t2"); err != nil {
		t.Fatalf("replaced name not free: %v", err)
	}
	h.must(CmdCustomDomainDelete, CustomDomainDelete{HostingID: "hst_b", AccountID: "acc_2"})
	if _, err := h.apply(CmdCustomDomainDelete, CustomDomainDelete{HostingID: "hst_b", AccountID: "acc_2"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	// Deleting the hosting account frees its custom domain.
	h.must(CmdHostingAction, HostingAction{Action: store.Action{Action: api.Action{ID: "act_del", Command: api.ActionHostingDelete,
		ResourceID: "hst_a"}, AccountID: "acc_1", NodeID: "hv-1", Target: "ada", Deadline: deadline}})
	h.must(CmdActionFinish, ActionFinish{ID: "act_del", Success: true})
	if _, err := set("hst_b", "acc_2", "shop2.example", "t4"); err != nil {
		t.Fatalf("deleted account's custom domain not free: %v", err)
	}
	if a, b := bucketDump(h.fsms[0], store.BucketCustomDomains, store.BucketHostingDomains), bucketDump(h.fsms[1], store.BucketCustomDomains, store.BucketHostingDomains); string(a) != string(b) {
		t.Fatal("replicas differ")
	}
}

// A custom domain's certificate in the FSM: the order intent is recorded
// before any ACME call and a second order of the name is refused while it is
// in flight (a new leader takes it over only after its end); only the order
// in flight records its result; a key in plain text is refused; a failure
// counts with its back-off and reason, an issue clears them; a retry makes
// the certificate due now; the replicas agree.
// shopHarness is a hosting account hst_a on node hv-1 with the custom
// domain shop.example set (not verified).
func shopHarness(t *testing.T) *whHarness { return shopHarnessOn(t, 0, 103) }

// shopHarnessOn is shopHarness with the cluster's semantics level set to
// level first (0: left as the harness has it) and the node's hello at
// protocol version proto.
func shopHarnessOn(t *testing.T, level uint16, proto uint32) *whHarness {
	h := newServerHarness(t)
	if level > 0 {
		h.must(CmdClusterLevel, ClusterLevel{Level: level})
	}
	h.must(CmdNodeHello, NodeHello{NodeID: "hv-1", CertSerial: "s1", Roles: []string{"hosting"}, ProtocolVersion: proto})
	a := store.HostingAccount{HostingAccount: api.HostingAccount{ID: "hst_a", Username: "ada", Domain: "ada.example", Plan: "p", PHPVersion: "8.2"},
		AccountID: "acc_1", NodeID: "hv-1"}
	h.must(CmdHostingCreate, HostingCreate{Hosting: a, Action: store.Action{Action: api.Action{ID: "act_a",
		Command: api.ActionHostingCreate, ResourceID: "hst_a"}, NodeID: "hv-1", Target: "ada", Deadline: h.at.Add(time.Hour), NeedsSecret: true}})
	h.must(CmdActionFinish, ActionFinish{ID: "act_a", Success: true})
	h.must(CmdCustomDomainSet, CustomDomainSet{HostingID: "hst_a", AccountID: "acc_1", Domain: "shop.example", Token: "t1"})
	return h
}

func TestCustomDomainCertificate(t *testing.T) {
	h := shopHarness(t)

	start := func(id string) (any, error) {
		return h.apply(CmdCertOrderStart, CertOrderStart{HostingID: "hst_a", Domain: "shop.example", OrderID: id, Until: h.at.Add(5 * time.Minute)})
	}
	if _, err := start("o1"); !errors.Is(err, ErrConflict) {
		t.Fatalf("order of an unverified domain: %v", err)
	}
	h.must(CmdCustomDomainVerified, CustomDomainVerified{HostingID: "hst_a", AccountID: "acc_1", Domain: "shop.example"})
	if _, err := h.apply(CmdCertOrderStart, CertOrderStart{HostingID: "hst_a", Domain: "other.example", OrderID: "o1", Until: h.at.Add(time.Minute)}); !errors.Is(err, ErrConflict) {
		t.Fatalf("order of a name not the account's: %v", err)
	}
	out, err := start("o1")
	if err != nil || out.(api.CustomDomain).Certificate.Status != api.CertificatePending {
		t.Fatalf("start: %+v %v", out, err)
	}
	if _, err := start("o2"); !errors.Is(err, ErrConflict) {
		t.Fatalf("second order while one is in flight: %v", err)
	}
	if _, err := start("o1"); err != nil {
		t.Fatalf("the same order again: %v", err)
	}

	retryAt := h.at.Add(time.Hour)
	fail := func(id string) (any, error) {
		return h.apply(CmdCertFailed, CertFailed{HostingID: "hst_a", Domain: "shop.example", OrderID: id,
			Reason: "urn:ietf:params:acme:error:connection: " + strings.Repeat("x", 2000), RetryAt: retryAt})
	}
	if _, err := fail("o2"); !errors.Is(err, ErrConflict) {
		t.Fatalf("failure of an order not in flight: %v", err)
	}
	out, err = fail("o1")
	c := out.(api.CustomDomain).Certificate
	if err != nil || c.Status != api.CertificateFailed || c.RetryAt == nil || !c.RetryAt.Equal(retryAt) ||
		!strings.HasPrefix(c.Reason, "urn:ietf:params:acme:error:connection") || len(c.Reason) > maxCertReason+len("…") {
		t.Fatalf("failed: %+v %v", c, err)
	}
	if _, err := fail("o1"); !errors.Is(err, ErrConflict) {
		t.Fatalf("the failure recorded twice: %v", err)
	}
	h.must(CmdCertRetry, CertRetry{HostingID: "hst_a", AccountID: "acc_1"})
	d := customDomainOf(t, h, "hst_a")
	if d.Cert.Failures != 1 || len(d.Cert.FailedAt) != 1 || !d.Cert.RetryAt.Equal(h.at) {
		t.Fatalf("retry: %+v", d.Cert)
	}
	if _, err := h.apply(CmdCertRetry, CertRetry{HostingID: "hst_a", AccountID: "acc_2"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("retry by another account: %v", err)
	}

	// A leader dies with order o2 in flight: the next leader waits for its end.
	h.must(CmdCertOrderStart, CertOrderStart{HostingID: "hst_a", Domain: "shop.example", OrderID: "o2", Until: h.at.Add(time.Minute)})
	if _, err := start("o3"); !errors.Is(err, ErrConflict) {
		t.Fatalf("takeover before the order's end: %v", err)
	}
	h.at = h.at.Add(2 * time.Minute)
	if _, err := start("o3"); err != nil {
		t.Fatalf("takeover after the order's end: %v", err)
	}
	issued := CertIssued{HostingID: "hst_a", Domain: "shop.example", OrderID: "o3", Chain: "-----BEGIN CERTIFICATE-----\n…",
		SealedKey: "-----BEGIN EC PRIVATE KEY-----\n…", NotAfter: h.at.Add(90 * 24 * time.Hour), RenewAt: h.at.Add(60 * 24 * time.Hour)}
	if _, err := h.apply(CmdCertIssued, issued); !errors.Is(err, ErrInvalid) {
		t.Fatalf("plain-text key recorded: %v", err)
	}
	issued.SealedKey = "v1:sealed"
	issued.OrderID = "o2"
	if _, err := h.apply(CmdCertIssued, issued); !errors.Is(err, ErrConflict) {
		t.Fatalf("the dead leader's order recorded its result: %v", err)
	}
	issued.OrderID = "o3"
	c = h.must(CmdCertIssued, issued).(api.CustomDomain).Certificate
	if c.Status != api.CertificatePending || c.NotAfter == nil || !c.NotAfter.Equal(issued.NotAfter) || c.Reason != "" || c.RetryAt != nil {
		t.Fatalf("issued, not installed yet: %+v", c)
	}
	// The node's answer: for another chain nothing; an error is shown with
	// its retry time; success makes it issued.
	if _, err := h.apply(CmdCertInstalled, CertInstalled{HostingID: "hst_a", Domain: "shop.example", Chain: "other"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("installed for another chain: %v", err)
	}
	c = h.must(CmdCertInstalled, CertInstalled{HostingID: "hst_a", Domain: "shop.example", Chain: issued.Chain,
		Error: "handshake check failed", RetryAt: h.at.Add(time.Minute)}).(api.CustomDomain).Certificate
	if c.Status != api.CertificateFailed || !strings.Contains(c.Reason, "installing on the hosting node: handshake check failed") || c.RetryAt == nil {
		t.Fatalf("install failed: %+v", c)
	}
	c = h.must(CmdCertInstalled, CertInstalled{HostingID: "hst_a", Domain: "shop.example", Chain: issued.Chain}).(api.CustomDomain).Certificate
	if c.Status != api.CertificateIssued || c.Reason != "" || c.RetryAt != nil {
		t.Fatalf("installed: %+v", c)
	}
	d = customDomainOf(t, h, "hst_a")
	if d.Cert.Failures != 0 || d.Cert.FailedAt != nil || d.Cert.SealedKey != "v1:sealed" {
		t.Fatalf("issued state: %+v", d.Cert)
	}
	if a, b := bucketDump(h.fsms[0], store.BucketCustomDomains), bucketDump(h.fsms[1], store.BucketCustomDomains); string(a) != string(b) {
		t.Fatal("replicas differ")
	}
}

// TestCertFailedKeepsTheOrder: a failure after the order was finalized
// (KeepOrder) keeps the order, its URL and sealed key, in flight until the
// retry time, failures counted, the status pending with why; only the order
// in flight, and only one with a recorded URL, can be kept; the certificate
// of the resumed order then clears it. Replicas stay identical.
func TestCertFailedKeepsTheOrder(t *testing.T) {
	h := shopHarness(t)
	h.must(CmdCustomDomainVerified, CustomDomainVerified{HostingID: "hst_a", AccountID: "acc_1", Domain: "shop.example"})
	h.must(CmdCertOrderStart, CertOrderStart{HostingID: "hst_a", Domain: "shop.example", OrderID: "o1", Until: h.at.Add(10 * time.Minute),
		Owner: "lead_a", SealedKey: "v1:sealed"})
	retryAt := h.at.Add(time.Minute)
	keep := func(id string) (any, error) {
		return h.apply(CmdCertFailed, CertFailed{HostingID: "hst_a", Domain: "shop.example", OrderID: id,
			Reason: "acme: certificate of shop.example: connection reset", RetryAt: retryAt, KeepOrder: true})
	}
	if _, err := keep("o1"); !errors.Is(err, ErrConflict) {
		t.Fatalf("an order without a URL kept: %v", err)
	}
	h.must(CmdCertOrderStart, CertOrderStart{HostingID: "hst_a", Domain: "shop.example", OrderID: "o1", Until: h.at.Add(10 * time.Minute),
		Owner: "lead_a", OrderURL: "https://ca.test/order/1"})
	if _, err := keep("o2"); !errors.Is(err, ErrConflict) {
		t.Fatalf("an order not in flight kept: %v", err)
	}
	out, err := keep("o1")
	if err != nil {
		t.Fatal(err)
	}
	c := out.(api.CustomDomain).Certificate
	if c.Status != api.CertificatePending || !strings.Contains(c.Reason, "resumed at") || !strings.Contains(c.Reason, "connection reset") {
		t.Fatalf("status of the kept order: %+v", c)
	}
	d := customDomainOf(t, h, "hst_a")
	if s := d.Cert; s.OrderID != "o1" || s.OrderURL != "https://ca.test/order/1" || s.OrderKey != "v1:sealed" || s.OrderOwner != "lead_a" ||
		!s.OrderUntil.Equal(retryAt) || s.Failures != 1 || !s.RetryAt.Equal(retryAt) {
		t.Fatalf("kept order: %+v", s)
	}
	h.must(CmdCertIssued, CertIssued{HostingID: "hst_a", Domain: "shop.example", OrderID: "o1", Chain: "-----BEGIN CERTIFICATE-----\n…",
		SealedKey: "v1:sealed", NotAfter: h.at.Add(90 * 24 * time.Hour), RenewAt: h.at.Add(60 * 24 * time.Hour)})
	if s := customDomainOf(t, h, "hst_a").Cert; s.OrderID != "" || s.OrderURL != "" || s.Failures != 0 {
		t.Fatalf("after the resumed order's certificate: %+v", s)
	}
	if a, b := bucketDump(h.fsms[0], store.BucketCustomDomains), bucketDump(h.fsms[1], store.BucketCustomDomains); string(a) != string(b) {
		t.Fatal("replicas differ")
	}
}

func customDomainOf(t *testing.T, h *whHarness, id string) store.CustomDomain {
	t.Helper()
	var d store.CustomDomain
	if err := h.fsms[0].Read(func(r store.ReadTx) error {
		var err error
		d, err = r.CustomDomain("acc_1", id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return d
}

// Dropping a verified custom domain (a delete or a replacement) opens the
// hosting.uncert action that takes it off the node, in the same command; a
// domain never verified (so never routed) opens none, and while the account
// has an action under way the drop is refused with nothing changed.
func TestCustomDomainDetachOnNode(t *testing.T) {
	h := newServerHarness(t)
	h.must(CmdNodeHello, NodeHello{NodeID: "hv-1", CertSerial: "s1", Roles: []string{"hosting"}, ProtocolVersion: 103})
	deadline := h.at.Add(time.Hour)
	a := store.HostingAccount{HostingAccount: api.HostingAccount{ID: "hst_a", Username: "ada", Domain: "ada.example", Plan: "p", PHPVersion: "8.2"},
		AccountID: "acc_1", NodeID: "hv-1"}
	h.must(CmdHostingCreate, HostingCreate{Hosting: a, Action: store.Action{Action: api.Action{ID: "act_create",
		Command: api.ActionHostingCreate, ResourceID: "hst_a"}, NodeID: "hv-1", Target: "ada", Deadline: deadline, NeedsSecret: true}})
	h.must(CmdActionFinish, ActionFinish{ID: "act_create", Success: true})
	action := func(id string) (store.Action, error) {
		var out store.Action
		err := h.fsms[1].Read(func(r store.ReadTx) (err error) { out, err = r.Action(id); return })
		return out, err
	}
	verify := func(d string) {
		h.must(CmdCustomDomainSet, CustomDomainSet{HostingID: "hst_a", AccountID: "acc_1", Domain: d, Token: "t"})
		h.must(CmdCustomDomainVerified, CustomDomainVerified{HostingID: "hst_a", AccountID: "acc_1", Domain: d})
	}
	wantUncert := func(id, domain string) {
		t.Helper()
		act, err := action(id)
		if err != nil || act.Command != api.ActionHostingUncert || act.NodeID != "hv-1" || act.Target != "ada" ||
			act.ResourceID != "hst_a" || act.Status != api.ActionPending || !strings.Contains(string(act.Params), `"domain":"`+domain+`"`) {
			t.Fatalf("detach action %s: %+v %s %v", id, act, act.Params, err)
		}
		h.must(CmdActionFinish, ActionFinish{ID: id, Success: true})
	}

	// Never verified: nothing to take off the node.
	h.must(CmdCustomDomainSet, CustomDomainSet{HostingID: "hst_a", AccountID: "acc_1", Domain: "pending.example", Token: "t"})
	h.must(CmdCustomDomainDelete, CustomDomainDelete{HostingID: "hst_a", AccountID: "acc_1", Detach: &DetachAction{ID: "act_d0", Deadline: deadline}})
	if _, err := action("act_d0"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a pending domain's delete opened an action: %v", err)
	}

	// Verified, with a suspension under way: refused, nothing changed.
	verify("shop.example")
	h.must(CmdHostingAction, HostingAction{Action: store.Action{Action: api.Action{ID: "act_susp", Command: api.ActionHostingSuspend,
		ResourceID: "hst_a"}, AccountID: "acc_1", NodeID: "hv-1", Target: "ada", Deadline: deadline}})
	if _, err := h.apply(CmdCustomDomainDelete, CustomDomainDelete{HostingID: "hst_a", AccountID: "acc_1",
		Detach: &DetachAction{ID: "act_d1", Deadline: deadline}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("delete while suspending: %v", err)
	}
	if _, err := action("act_d1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the refused delete opened an action: %v", err)
	}
	if v := h.must(CmdCustomDomainSet, CustomDomainSet{HostingID: "hst_a", AccountID: "acc_1", Domain: "shop.example", Token: "t"}).(api.CustomDomain); v.Status != api.CustomDomainVerified {
		t.Fatalf("the refused delete changed the domain: %+v", v)
	}
	h.must(CmdActionFinish, ActionFinish{ID: "act_susp", Success: true})

	// A replacement takes the old verified name off the node.
	h.must(CmdCustomDomainSet, CustomDomainSet{HostingID: "hst_a", AccountID: "acc_1", Domain: "shop2.example", Token: "t2",
		Detach: &DetachAction{ID: "act_d2", Deadline: deadline}})
	wantUncert("act_d2", "shop.example")

	// A certificate installs only for the account's verified custom domain.
	cert := func(id, domain string) error {
		_, err := h.apply(CmdHostingAction, HostingAction{Action: store.Action{Action: api.Action{ID: id, Command: api.ActionHostingCert,
			ResourceID: "hst_a"}, AccountID: "acc_1", NodeID: "hv-1", Target: "ada", Deadline: deadline,
			Params: []byte(`{"domain":"` + domain + `","chain_pem":"x"}`), NeedsSecret: true}})
		return err
	}
	if err := cert("act_c0", "shop2.example"); !errors.Is(err, ErrConflict) {
		t.Fatalf("install for a domain not verified yet: %v", err)
	}
	h.must(CmdCustomDomainVerified, CustomDomainVerified{HostingID: "hst_a", AccountID: "acc_1", Domain: "shop2.example"})
	if err := cert("act_c1", "shop.example"); !errors.Is(err, ErrConflict) {
		t.Fatalf("install for the replaced domain: %v", err)
	}
	if err := cert("act_c2", "shop2.example"); err != nil {
		t.Fatalf("install for the verified domain: %v", err)
	}
	h.must(CmdActionFinish, ActionFinish{ID: "act_c2", Success: true})

	// A delete takes it off too, and no install comes after it.
	h.must(CmdCustomDomainDelete, CustomDomainDelete{HostingID: "hst_a", AccountID: "acc_1", Detach: &DetachAction{ID: "act_d3", Deadline: deadline}})
	wantUncert("act_d3", "shop2.example")
	if err := cert("act_c3", "shop2.example"); !errors.Is(err, ErrConflict) {
		t.Fatalf("install after the delete: %v", err)
	}
	if a, b := bucketDump(h.fsms[0], store.BucketActions, store.BucketCustomDomains), bucketDump(h.fsms[1], store.BucketActions, store.BucketCustomDomains); string(a) != string(b) {
		t.Fatal("replicas differ")
	}
}
