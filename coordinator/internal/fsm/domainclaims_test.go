package fsm

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// A name held by an unverified claim (a hosting account's primary domain,
// never verified, or a custom domain whose DNS was not verified) does not
// block another account's custom domain from level 2: the other account's
// claim is recorded pending without holding the name, and its verification
// takes the name over — the squatter's primary domain stops being served
// (a hosting.uncert on its node in the same command, domain_released_at,
// hosting.domain.released), a squatter's pending custom domain is dropped.
// A verified custom domain holds its name against everyone. Level 1 keeps
// the old rule (the first claim holds). Replicas byte-identical.
func TestDomainClaims(t *testing.T) {
	h := newServerHarness(t)
	h.must(CmdNodeHello, NodeHello{NodeID: "hv-1", CertSerial: "s1", Roles: []string{"hosting"}, ProtocolVersion: 103})
	deadline := h.at.Add(time.Hour)
	mk := func(id, acc, user, domain string) error {
		a := store.HostingAccount{HostingAccount: api.HostingAccount{ID: id, Username: user, Domain: domain, Plan: "p", PHPVersion: "8.2"},
			AccountID: acc, NodeID: "hv-1"}
		if _, err := h.apply(CmdHostingCreate, HostingCreate{Hosting: a, Action: store.Action{Action: api.Action{ID: "act_" + id,
			Command: api.ActionHostingCreate, ResourceID: id}, NodeID: "hv-1", Target: user, Deadline: deadline, NeedsSecret: true}}); err != nil {
			return err
		}
		h.must(CmdActionFinish, ActionFinish{ID: "act_" + id, Success: true})
		return nil
	}
	for _, a := range [][4]string{{"hst_a", "acc_1", "ada", "ada.example"}, {"hst_a2", "acc_1", "ada2", "ada2.example"},
		{"hst_b", "acc_2", "bob", "shop.example"}} { // bob squats shop.example as his primary domain
		if err := mk(a[0], a[1], a[2], a[3]); err != nil {
			t.Fatal(err)
		}
	}
	set := func(id, acc, d string) (any, error) {
		return h.apply(CmdCustomDomainSet, CustomDomainSet{HostingID: id, AccountID: acc, Domain: d, Token: "t-" + id})
	}
	verify := func(id, acc, d, take string) (any, error) {
		p := CustomDomainVerified{HostingID: id, AccountID: acc, Domain: d}
		if take != "" {
			p.Takeover = &DetachAction{ID: take, Deadline: deadline}
		}
		return h.apply(CmdCustomDomainVerified, p)
	}
	fieldConflict := func(err error) bool {
		var fc *FieldConflictError
		return errors.As(err, &fc) && fc.Field == "domain" && errors.Is(err, ErrConflict)
	}
	holder := func(d string) (id string) {
		_ = h.fsms[1].Read(func(r store.ReadTx) error { id = r.HostingDomainTaken(d); return nil })
		return
	}
	hosting := func(id string) (out store.HostingAccount) {
		_ = h.fsms[1].Read(func(r store.ReadTx) (err error) { out, err = r.HostingAccountByID(id); return })
		return
	}
	action := func(id string) (out store.Action, err error) {
		err = h.fsms[1].Read(func(r store.ReadTx) (err error) { out, err = r.Action(id); return })
		return
	}
	released := func(acc, hostingID, domain, kind string) int {
		n := 0
		for _, e := range outboxEvents(t, h.fsms[0]) {
			var d map[string]any
			_ = json.Unmarshal(e.Data, &d)
			if e.Type == string(api.EventHostingDomainReleased) && e.AccountID == acc && d["hostingId"] == hostingID && d["domain"] == domain && d["kind"] == kind {
				n++
			}
		}
		return n
	}

	// Level 1: the squatter's primary domain holds the name (the old rule).
	if _, err := set("hst_a", "acc_1", "shop.example"); !fieldConflict(err) {
		t.Fatalf("level 1: A's custom domain on B's primary domain: %v", err)
	}
	h.must(CmdClusterLevel, ClusterLevel{Level: levelDomainClaims})

	// Level 2: recorded pending, the name still B's until A's DNS proves it.
	if out, err := set("hst_a", "acc_1", "shop.example"); err != nil || out.(api.CustomDomain).Status != api.CustomDomainPendingDNS {
		t.Fatalf("level 2: A's custom domain on B's primary domain: %v %v", out, err)
	}
	if holder("shop.example") != "hst_b" {
		t.Fatal("a pending claim took the name")
	}
	// Another hosting account of the same customer keeps its name.
	if _, err := set("hst_a2", "acc_1", "ada.example"); !fieldConflict(err) {
		t.Fatalf("the primary domain of the customer's other hosting account: %v", err)
	}
	// B busy (a suspension under way): refused, nothing changed.
	h.must(CmdHostingAction, HostingAction{Action: store.Action{Action: api.Action{ID: "act_susp", Command: api.ActionHostingSuspend,
		ResourceID: "hst_b"}, AccountID: "acc_2", NodeID: "hv-1", Target: "bob", Deadline: deadline}})
	if _, err := verify("hst_a", "acc_1", "shop.example", "act_take0"); !errors.Is(err, ErrConflict) {
		t.Fatalf("verify while the squatter's account is busy: %v", err)
	}
	if _, err := action("act_take0"); !errors.Is(err, ErrNotFound) || holder("shop.example") != "hst_b" {
		t.Fatalf("the refused verify changed something: %v, holder %s", err, holder("shop.example"))
	}
	h.must(CmdActionFinish, ActionFinish{ID: "act_susp", Success: true})
	if _, err := verify("hst_a", "acc_1", "shop.example", ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a takeover of a primary domain without its hosting.uncert: %v", err)
	}
	v, err := verify("hst_a", "acc_1", "shop.example", "act_take")
	if err != nil || v.(api.CustomDomain).Status != api.CustomDomainVerified {
		t.Fatalf("A verifies: %v %v", v, err)
	}
	if holder("shop.example") != "hst_a" {
		t.Fatalf("the name is %s's after A's verification", holder("shop.example"))
	}
	act, err := action("act_take")
	if err != nil || act.Command != api.ActionHostingUncert || act.ResourceID != "hst_b" || act.Target != "bob" || act.NodeID != "hv-1" ||
		act.AccountID != "acc_2" || act.Status != api.ActionPending || !strings.Contains(string(act.Params), `"domain":"shop.example"`) {
		t.Fatalf("the squatter's hosting.uncert: %+v %s %v", act, act.Params, err)
	}
	if b := hosting("hst_b"); b.DomainReleasedAt == nil || b.Status != api.HostingSuspended || b.Domain != "shop.example" || b.ActionID != "act_take" {
		t.Fatalf("the squatter's account: %+v", b)
	}
	if released("acc_2", "hst_b", "shop.example", "primary") != 1 {
		t.Fatalf("hosting.domain.released for B: %v", outboxTypes(t, h.fsms[0]))
	}
	h.must(CmdActionFinish, ActionFinish{ID: "act_take", Success: true})
	if b := hosting("hst_b"); b.Status != api.HostingSuspended || b.ActionID != "" {
		t.Fatalf("the squatter's account after its uncert: %+v", b)
	}

	// B cannot take a name A verified: neither as a custom domain nor as a
	// new account's primary domain, nor by verifying an older pending claim.
	if _, err := set("hst_b", "acc_2", "shop.example"); !fieldConflict(err) {
		t.Fatalf("B attaches A's verified domain: %v", err)
	}
	if err := mk("hst_b2", "acc_2", "bob2", "shop.example"); !fieldConflict(err) {
		t.Fatalf("B orders hosting on A's verified domain: %v", err)
	}

	// A squatter's pending custom domain: dropped when A verifies the name.
	if _, err := set("hst_b", "acc_2", "blog.example"); err != nil || holder("blog.example") != "hst_b" {
		t.Fatalf("B's custom domain: %v", err)
	}
	if err := mk("hst_a3", "acc_1", "ada3", "blog.example"); !fieldConflict(err) {
		t.Fatalf("a primary domain over a pending custom domain: %v", err)
	}
	if _, err := set("hst_a2", "acc_1", "blog.example"); err != nil {
		t.Fatalf("A's custom domain on B's pending one: %v", err)
	}
	if _, err := verify("hst_a2", "acc_1", "blog.example", "act_take2"); err != nil {
		t.Fatal(err)
	}
	if holder("blog.example") != "hst_a2" || released("acc_2", "hst_b", "blog.example", "custom_domain") != 1 {
		t.Fatalf("blog.example: holder %s, events %v", holder("blog.example"), outboxTypes(t, h.fsms[0]))
	}
	if err := h.fsms[1].Read(func(r store.ReadTx) error { _, err := r.CustomDomain("acc_2", "hst_b"); return err }); !errors.Is(err, ErrNotFound) && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("B's pending custom domain is still there: %v", err)
	}
	if _, err := action("act_take2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a pending custom domain (never on the node) opened an action: %v", err)
	}
	if b := hosting("hst_b"); b.ActionID != "" {
		t.Fatalf("B busy after losing a pending custom domain: %+v", b)
	}

	// A claim of the customer's, recorded pending while another customer
	// held the name, does not take it from the customer's own other hosting
	// account that holds it since: a 409 as at PUT, nothing changed.
	for _, a := range [][4]string{{"hst_a4", "acc_1", "ada4", "ada4.example"}, {"hst_a5", "acc_1", "ada5", "ada5.example"}} {
		if err := mk(a[0], a[1], a[2], a[3]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := set("hst_b", "acc_2", "mine.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := set("hst_a4", "acc_1", "mine.example"); err != nil { // pending: B's claim is unverified
		t.Fatal(err)
	}
	h.must(CmdCustomDomainDelete, CustomDomainDelete{HostingID: "hst_b", AccountID: "acc_2"})
	if _, err := set("hst_a5", "acc_1", "mine.example"); err != nil || holder("mine.example") != "hst_a5" {
		t.Fatalf("A's other hosting account takes the freed name: %v, holder %s", err, holder("mine.example"))
	}
	if _, err := verify("hst_a4", "acc_1", "mine.example", "act_mine"); !fieldConflict(err) || !strings.Contains(err.Error(), "hst_a5") {
		t.Fatalf("A's verify over its own other hosting account's claim: %v", err)
	}
	if holder("mine.example") != "hst_a5" || released("acc_1", "hst_a5", "mine.example", "custom_domain") != 0 {
		t.Fatalf("the refused verify moved the name: holder %s", holder("mine.example"))
	}
	for id, want := range map[string]string{"hst_a4": "mine.example", "hst_a5": "mine.example"} {
		if err := h.fsms[1].Read(func(r store.ReadTx) error {
			d, err := r.CustomDomain("acc_1", id)
			if err == nil && (d.Domain != want || d.Status != api.CustomDomainPendingDNS) {
				err = errors.New(d.Domain + " " + string(d.Status))
			}
			return err
		}); err != nil {
			t.Fatalf("%s's claim after the refused verify: %v", id, err)
		}
	}

	// Two pending claims: the first verified wins; the other's verify is a
	// conflict naming the domain.
	if _, err := set("hst_b", "acc_2", "race.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := set("hst_a2", "acc_1", "race.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := verify("hst_b", "acc_2", "race.example", "act_r1"); err != nil {
		t.Fatal(err)
	}
	if _, err := verify("hst_a2", "acc_1", "race.example", "act_r2"); !fieldConflict(err) {
		t.Fatalf("verified second: %v", err)
	}
	if holder("race.example") != "hst_b" {
		t.Fatal("the second verification took the name")
	}

	// The squatter's deletion leaves A's name alone.
	h.must(CmdHostingAction, HostingAction{Action: store.Action{Action: api.Action{ID: "act_delb", Command: api.ActionHostingDelete,
		ResourceID: "hst_b"}, AccountID: "acc_2", NodeID: "hv-1", Target: "bob", Deadline: deadline}})
	h.must(CmdActionFinish, ActionFinish{ID: "act_delb", Success: true})
	if holder("shop.example") != "hst_a" || holder("race.example") != "" {
		t.Fatalf("after B's deletion: shop.example %q, race.example %q", holder("shop.example"), holder("race.example"))
	}

	buckets := append(append([][]byte{}, store.HostingBuckets...), store.BucketActions, store.BucketOutbox)
	if a, b := bucketDump(h.fsms[0], buckets...), bucketDump(h.fsms[1], buckets...); string(a) != string(b) {
		t.Fatal("replicas differ")
	}
}

// TestUncertRetried: from level 2 the hosting.uncert that takes a name off
// its former holder's node (a takeover's, a removed custom domain's) is
// retried as a failed cleanup is: a failure the proposer gives a retry wait
// opens the next attempt in the same command (same domain, held back, the
// account busy with it), the node's not_found counts as done, and once it
// succeeds the new holder's certificate, which that node refused while the
// name was routed to the old holder, is due at once. At level 1 a failed
// uncert stays failed. Replicas byte-identical.
func TestUncertRetried(t *testing.T) {
	start := func(level uint16) (*whHarness, time.Time) {
		h := newServerHarness(t)
		h.must(CmdNodeHello, NodeHello{NodeID: "hv-1", CertSerial: "s1", Roles: []string{"hosting"}, ProtocolVersion: 103})
		deadline := h.at.Add(time.Hour)
		for _, a := range [][4]string{{"hst_a", "acc_1", "ada", "ada.example"}, {"hst_b", "acc_2", "bob", "shop.example"}} {
			acc := store.HostingAccount{HostingAccount: api.HostingAccount{ID: a[0], Username: a[2], Domain: a[3], Plan: "p", PHPVersion: "8.2"},
				AccountID: a[1], NodeID: "hv-1"}
			h.must(CmdHostingCreate, HostingCreate{Hosting: acc, Action: store.Action{Action: api.Action{ID: "act_" + a[0],
				Command: api.ActionHostingCreate, ResourceID: a[0]}, NodeID: "hv-1", Target: a[2], Deadline: deadline, NeedsSecret: true}})
			h.must(CmdActionFinish, ActionFinish{ID: "act_" + a[0], Success: true})
		}
		if level > 1 {
			h.must(CmdClusterLevel, ClusterLevel{Level: level})
		}
		return h, deadline
	}
	action := func(h *whHarness, id string) (out store.Action) {
		_ = h.fsms[1].Read(func(r store.ReadTx) (err error) { out, err = r.Action(id); return })
		return
	}
	hosting := func(h *whHarness, id string) (out store.HostingAccount) {
		_ = h.fsms[1].Read(func(r store.ReadTx) (err error) { out, err = r.HostingAccountByID(id); return })
		return
	}
	failed := ActionFinish{ErrorCode: "failed", ErrorMessage: "remove: operation not permitted", CleanupDeadlineSeconds: 300, CleanupRetrySeconds: 60}

	// Level 1: A's own custom domain removed; its failed uncert stays failed.
	h, deadline := start(1)
	h.must(CmdCustomDomainSet, CustomDomainSet{HostingID: "hst_a", AccountID: "acc_1", Domain: "x.example", Token: "t"})
	h.must(CmdCustomDomainVerified, CustomDomainVerified{HostingID: "hst_a", AccountID: "acc_1", Domain: "x.example"})
	h.must(CmdCustomDomainDelete, CustomDomainDelete{HostingID: "hst_a", AccountID: "acc_1", Detach: &DetachAction{ID: "act_un0", Deadline: deadline}})
	f := failed
	f.ID = "act_un0"
	h.must(CmdActionFinish, f)
	if a := hosting(h, "hst_a"); a.ActionID != "" {
		t.Fatalf("level 1: a failed uncert opened another action: %+v", a)
	}

	// Level 2: B squats shop.example as its primary domain; A proves it and
	// takes it over, and A's certificate is refused by the node while the
	// name is still routed to B.
	h, deadline = start(levelUncertRetry)
	h.must(CmdCustomDomainSet, CustomDomainSet{HostingID: "hst_a", AccountID: "acc_1", Domain: "shop.example", Token: "t"})
	h.must(CmdCustomDomainVerified, CustomDomainVerified{HostingID: "hst_a", AccountID: "acc_1", Domain: "shop.example",
		Takeover: &DetachAction{ID: "act_un1", Deadline: deadline}})
	chain := "-----BEGIN CERTIFICATE-----\n…"
	h.must(CmdCertOrderStart, CertOrderStart{HostingID: "hst_a", Domain: "shop.example", OrderID: "o1", Until: h.at.Add(5 * time.Minute)})
	h.must(CmdCertIssued, CertIssued{HostingID: "hst_a", Domain: "shop.example", OrderID: "o1", Chain: chain, SealedKey: "v1.sealed",
		NotAfter: h.at.Add(90 * 24 * time.Hour), RenewAt: h.at.Add(60 * 24 * time.Hour)})
	h.must(CmdCertInstalled, CertInstalled{HostingID: "hst_a", Domain: "shop.example", Chain: chain,
		Error: "domain shop.example is routed to another account on this node", RetryAt: h.at.Add(time.Minute)})

	// The uncert fails: its next attempt is opened, held back.
	f = failed
	f.ID = "act_un1"
	h.must(CmdActionFinish, f)
	b := hosting(h, "hst_b")
	next := action(h, b.ActionID)
	if b.ActionID == "" || b.ActionID == "act_un1" || next.Command != api.ActionHostingUncert || next.Status != api.ActionPending ||
		string(next.Params) != string(action(h, "act_un1").Params) || next.Meta[MetaCleanupAttempt] != "2" || next.Meta[MetaNotBefore] == "" ||
		next.NodeID != "hv-1" || next.Target != "bob" || next.AccountID != "acc_2" {
		t.Fatalf("after the failed uncert: B %+v, next %+v %s", b, next, next.Params)
	}
	if _, err := h.apply(CmdHostingAction, HostingAction{Action: store.Action{Action: api.Action{ID: "act_susp", Command: api.ActionHostingSuspend,
		ResourceID: "hst_b"}, AccountID: "acc_2", NodeID: "hv-1", Target: "bob", Deadline: deadline}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("B's suspension while its uncert waits: %v", err)
	}
	// The next attempt answered not_found (the account is gone from the
	// node): done, and A's install is due now.
	h.must(CmdActionFinish, ActionFinish{ID: next.ID, ErrorCode: api.NodeErrNotFound})
	if a := action(h, next.ID); a.Status != api.ActionSuccess || hosting(h, "hst_b").ActionID != "" {
		t.Fatalf("an uncert answered not_found: %+v, B %+v", a, hosting(h, "hst_b"))
	}
	var d store.CustomDomain
	_ = h.fsms[1].Read(func(r store.ReadTx) (err error) { d, err = r.CustomDomain("acc_1", "hst_a"); return })
	if d.Cert == nil || !d.Cert.RetryAt.Equal(h.at) || d.Cert.InstallError == "" {
		t.Fatalf("A's refused install once the name left B's node: %+v, want due at %s", d.Cert, h.at)
	}
	buckets := append(append([][]byte{}, store.HostingBuckets...), store.BucketActions, store.BucketOutbox, store.BucketCustomDomains)
	if a, b := bucketDump(h.fsms[0], buckets...), bucketDump(h.fsms[1], buckets...); string(a) != string(b) {
		t.Fatal("replicas differ")
	}
}

// TestLapsedClaims: from level 2 a verified custom domain whose ownership
// record the proposer found gone from the name's DNS (LapsedClaim: its
// holder and token) no longer holds the name against another customer: the
// other's PUT is recorded pending (the name still the holder's) and its
// verify takes the name over — the holder's custom domain dropped, its
// hosting.uncert opened in the same command, hosting.domain.released to the
// holder. A claim naming another holder or token, the same customer, or a
// holder busy with an action: refused, nothing changed. Replicas
// byte-identical.
func TestLapsedClaims(t *testing.T) {
	h := newServerHarness(t)
	h.must(CmdNodeHello, NodeHello{NodeID: "hv-1", CertSerial: "s1", Roles: []string{"hosting"}, ProtocolVersion: 103})
	deadline := h.at.Add(time.Hour)
	for _, a := range [][4]string{{"hst_a", "acc_1", "ada", "ada.example"}, {"hst_a2", "acc_1", "ada2", "ada2.example"},
		{"hst_b", "acc_2", "bob", "bob.example"}} {
		acc := store.HostingAccount{HostingAccount: api.HostingAccount{ID: a[0], Username: a[2], Domain: a[3], Plan: "p", PHPVersion: "8.2"},
			AccountID: a[1], NodeID: "hv-1"}
		h.must(CmdHostingCreate, HostingCreate{Hosting: acc, Action: store.Action{Action: api.Action{ID: "act_" + a[0],
			Command: api.ActionHostingCreate, ResourceID: a[0]}, NodeID: "hv-1", Target: a[2], Deadline: deadline, NeedsSecret: true}})
		h.must(CmdActionFinish, ActionFinish{ID: "act_" + a[0], Success: true})
	}
	h.must(CmdClusterLevel, ClusterLevel{Level: levelLapsedClaims})
	h.must(CmdCustomDomainSet, CustomDomainSet{HostingID: "hst_a", AccountID: "acc_1", Domain: "shop.example", Token: "t-a"})
	h.must(CmdCustomDomainVerified, CustomDomainVerified{HostingID: "hst_a", AccountID: "acc_1", Domain: "shop.example"})
	fieldConflict := func(err error) bool {
		var fc *FieldConflictError
		return errors.As(err, &fc) && fc.Field == "domain" && errors.Is(err, ErrConflict)
	}
	holder := func() (id string) {
		_ = h.fsms[1].Read(func(r store.ReadTx) error { id = r.HostingDomainTaken("shop.example"); return nil })
		return
	}
	customOf := func(acc, id string) (d store.CustomDomain, err error) {
		err = h.fsms[1].Read(func(r store.ReadTx) (err error) { d, err = r.CustomDomain(acc, id); return })
		return
	}
	unchanged := func(what string) {
		t.Helper()
		if d, err := customOf("acc_1", "hst_a"); err != nil || holder() != "hst_a" || d.Status != api.CustomDomainVerified {
			t.Fatalf("%s changed A's name: holder %s, %+v %v", what, holder(), d, err)
		}
	}
	set := func(id, acc string, l *LapsedClaim) (any, error) {
		return h.apply(CmdCustomDomainSet, CustomDomainSet{HostingID: id, AccountID: acc, Domain: "shop.example", Token: "t-" + id, Lapsed: l})
	}
	good := &LapsedClaim{HostingID: "hst_a", Token: "t-a"}
	for _, l := range []*LapsedClaim{nil, {HostingID: "hst_a", Token: "t-other"}, {HostingID: "hst_a2", Token: "t-a"}} {
		if _, err := set("hst_b", "acc_2", l); !fieldConflict(err) || !strings.Contains(err.Error(), "_hostplane-verify.shop.example") {
			t.Fatalf("B attaches A's verified name with %+v: %v", l, err)
		}
	}
	if _, err := set("hst_a2", "acc_1", good); !fieldConflict(err) {
		t.Fatalf("A's other hosting account with a lapsed claim: %v", err)
	}
	unchanged("refused attaches")
	if out, err := set("hst_b", "acc_2", good); err != nil || out.(api.CustomDomain).Status != api.CustomDomainPendingDNS {
		t.Fatalf("B attaches A's lapsed name: %v %v", out, err)
	}
	unchanged("B's pending claim")

	verify := func(l *LapsedClaim, take string) error {
		p := CustomDomainVerified{HostingID: "hst_b", AccountID: "acc_2", Domain: "shop.example", Lapsed: l}
		if take != "" {
			p.Takeover = &DetachAction{ID: take, Deadline: deadline}
		}
		_, err := h.apply(CmdCustomDomainVerified, p)
		return err
	}
	if err := verify(nil, "act_t0"); !fieldConflict(err) {
		t.Fatalf("B verifies without a lapsed claim: %v", err)
	}
	if err := verify(&LapsedClaim{HostingID: "hst_a", Token: "t-other"}, "act_t0"); !fieldConflict(err) {
		t.Fatalf("B verifies with another token: %v", err)
	}
	h.must(CmdHostingAction, HostingAction{Action: store.Action{Action: api.Action{ID: "act_susp", Command: api.ActionHostingSuspend,
		ResourceID: "hst_a"}, AccountID: "acc_1", NodeID: "hv-1", Target: "ada", Deadline: deadline}})
	if err := verify(good, "act_t1"); !errors.Is(err, ErrConflict) {
		t.Fatalf("B verifies while A's account is busy: %v", err)
	}
	h.must(CmdActionFinish, ActionFinish{ID: "act_susp", Success: true})
	if err := verify(good, ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("B verifies without the holder's uncert: %v", err)
	}
	var b store.CustomDomain
	if b, _ = customOf("acc_2", "hst_b"); b.Status != api.CustomDomainPendingDNS {
		t.Fatalf("B's claim after refused verifies: %+v", b)
	}
	for _, id := range []string{"act_t0", "act_t1"} {
		if err := h.fsms[1].Read(func(r store.ReadTx) error { _, err := r.Action(id); return err }); !errors.Is(err, ErrNotFound) && !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a refused verify recorded %s: %v", id, err)
		}
	}
	unchanged("refused verifies")

	if err := verify(good, "act_take"); err != nil {
		t.Fatalf("B verifies A's lapsed name: %v", err)
	}
	if holder() != "hst_b" {
		t.Fatalf("the name is %s's", holder())
	}
	if b, _ = customOf("acc_2", "hst_b"); b.Status != api.CustomDomainVerified {
		t.Fatalf("B's custom domain: %+v", b)
	}
	if _, err := customOf("acc_1", "hst_a"); !errors.Is(err, ErrNotFound) && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("A's custom domain after the takeover: %v", err)
	}
	var act store.Action
	_ = h.fsms[1].Read(func(r store.ReadTx) (err error) { act, err = r.Action("act_take"); return })
	if act.Command != api.ActionHostingUncert || act.ResourceID != "hst_a" || act.AccountID != "acc_1" || act.Target != "ada" ||
		!strings.Contains(string(act.Params), `"domain":"shop.example"`) || act.Meta[MetaCleanupAttempt] != "" || CleanupAttempt(act) != 1 {
		t.Fatalf("A's uncert: %+v %s", act, act.Params)
	}
	n := 0
	for _, e := range outboxEvents(t, h.fsms[0]) {
		var d map[string]any
		_ = json.Unmarshal(e.Data, &d)
		if e.Type == string(api.EventHostingDomainReleased) && e.AccountID == "acc_1" && d["hostingId"] == "hst_a" && d["domain"] == "shop.example" && d["kind"] == "custom_domain" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("hosting.domain.released to A: %d, events %v", n, outboxTypes(t, h.fsms[0]))
	}
	// A lapsed name of an account whose create failed (nothing of it on
	// its node): taken over with no action on it.
	acc := store.HostingAccount{HostingAccount: api.HostingAccount{ID: "hst_e", Username: "eve", Domain: "eve.example", Plan: "p", PHPVersion: "8.2"},
		AccountID: "acc_1", NodeID: "hv-1"}
	h.must(CmdHostingCreate, HostingCreate{Hosting: acc, Action: store.Action{Action: api.Action{ID: "act_hst_e",
		Command: api.ActionHostingCreate, ResourceID: "hst_e"}, NodeID: "hv-1", Target: "eve", Deadline: deadline, NeedsSecret: true}})
	h.must(CmdActionFinish, ActionFinish{ID: "act_hst_e", ErrorCode: "failed"})
	h.must(CmdCustomDomainSet, CustomDomainSet{HostingID: "hst_e", AccountID: "acc_1", Domain: "err.example", Token: "t-e"})
	h.must(CmdCustomDomainVerified, CustomDomainVerified{HostingID: "hst_e", AccountID: "acc_1", Domain: "err.example"})
	h.must(CmdCustomDomainSet, CustomDomainSet{HostingID: "hst_b", AccountID: "acc_2", Domain: "err.example", Token: "t-b2",
		Lapsed: &LapsedClaim{HostingID: "hst_e", Token: "t-e"}, Detach: &DetachAction{ID: "act_bdetach", Deadline: deadline}})
	h.must(CmdActionFinish, ActionFinish{ID: "act_bdetach", Success: true}) // B's shop.example off its node
	h.must(CmdCustomDomainVerified, CustomDomainVerified{HostingID: "hst_b", AccountID: "acc_2", Domain: "err.example",
		Lapsed: &LapsedClaim{HostingID: "hst_e", Token: "t-e"}, Takeover: &DetachAction{ID: "act_take_e", Deadline: deadline}})
	if err := h.fsms[1].Read(func(r store.ReadTx) error { _, err := r.Action("act_take_e"); return err }); err == nil {
		t.Fatal("an uncert was opened on an account whose create failed")
	}
	var eh store.HostingAccount
	_ = h.fsms[1].Read(func(r store.ReadTx) (err error) { eh, err = r.HostingAccountByID("hst_e"); return })
	if eh.ActionID != "" || eh.Status != api.HostingError {
		t.Fatalf("the failed account after losing its name: %+v", eh)
	}
	if _, err := customOf("acc_1", "hst_e"); err == nil {
		t.Fatal("the failed account's custom domain is still there")
	}
	h.must(CmdCustomDomainSet, CustomDomainSet{HostingID: "hst_b", AccountID: "acc_2", Domain: "shop.example", Token: "t-b3",
		Detach: &DetachAction{ID: "act_bdetach2", Deadline: deadline}})
	h.must(CmdActionFinish, ActionFinish{ID: "act_bdetach2", Success: true})
	if _, err := h.apply(CmdCustomDomainVerified, CustomDomainVerified{HostingID: "hst_b", AccountID: "acc_2", Domain: "shop.example"}); err != nil {
		t.Fatal(err)
	}

	// Verified now, B's name holds against A's stale claim.
	if _, err := h.apply(CmdCustomDomainSet, CustomDomainSet{HostingID: "hst_a", AccountID: "acc_1", Domain: "shop.example", Token: "t-a"}); !fieldConflict(err) {
		t.Fatalf("A attaches B's verified name again: %v", err)
	}
	buckets := append(append([][]byte{}, store.HostingBuckets...), store.BucketActions, store.BucketOutbox, store.BucketCustomDomains)
	if a, b := bucketDump(h.fsms[0], buckets...), bucketDump(h.fsms[1], buckets...); string(a) != string(b) {
		t.Fatal("replicas differ")
	}
}
