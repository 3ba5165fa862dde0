package fsm

import (
	"errors"
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
