package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

func domainDump(f *FSM) []byte {
	return bucketDump(f, append(store.RegDomainBuckets, store.BucketOutbox, store.BucketAccounts, store.BucketWalletTx,
		store.BucketInvoices, store.BucketInvoiceIDs, store.BucketOwnerIDs, store.BucketCounters)...)
}

func testDomainOrder(id, name string, years int) DomainOrder {
	return DomainOrder{ID: id, AccountID: "acc_1", Name: name, Tld: "test", ProductSlug: "domain-test", Years: years,
		Nameservers: []string{"ns1.example.net", "ns2.example.net"},
		Contact:     api.DomainContact{Name: "Ada", Street: []string{"1 Road"}, City: "Istanbul", CC: "TR", Email: "ada@example.com"},
		ContactID:   "hp" + id, AutoRenew: true, ClTRID: id, InvoiceID: "inv_" + id, PaymentID: "pay_" + id, TxID: "wtx_" + id}
}

func getRegDomain(t *testing.T, f *FSM, id string) store.RegDomain {
	t.Helper()
	return readOne(t, f, func(r store.ReadTx) (store.RegDomain, error) { return r.RegDomainByID(id) })
}

func openOps(t *testing.T, f *FSM) int {
	t.Helper()
	return len(readOne(t, f, store.ReadTx.OpenRegDomainOps))
}

// TestDomainOrderAndEnd: an order debits years × the account's yearly price
// and records the domain as registering with its operation open; its end
// commits (active, domain.registered with the seed's fields) or rolls back
// (failed, refunded once, the name free again). Refusals change nothing, and
// a repeated end changes nothing.
func TestDomainOrderAndEnd(t *testing.T) {
	h := newServerHarness(t)
	h.putDomainTest()
	if _, err := h.apply(CmdProductPut, ProductPut{Slug: "bad-1", Create: true, Product: api.ProductRequest{Category: api.ProductDomain, NameEn: "x", Tld: "-x"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("domain product with a bad tld: %v", err)
	}
	h.must(CmdAccountPricing, AccountPricingSet{AccountID: "acc_1", Pricing: api.AccountPricing{DiscountPercent: 10}})
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: 2000})

	before := domainDump(h.fsms[0])
	bad := testDomainOrder("dom_2", "b.test", 3) // 2700 > 2000
	var short *ShortfallError
	if _, err := h.apply(CmdDomainOrder, bad); !errors.As(err, &short) || short.ShortfallUsdCents() != 700 {
		t.Fatalf("order beyond the wallet: %v", err)
	}
	bad = testDomainOrder("dom_2", "b.other", 1)
	bad.Tld = "other"
	if _, err := h.apply(CmdDomainOrder, bad); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"name"`) {
		t.Fatalf("order under a TLD not offered: %v", err)
	}
	bad = testDomainOrder("dom_2", "b.test", 11)
	if _, err := h.apply(CmdDomainOrder, bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("11 years: %v", err)
	}
	if !bytes.Equal(before, domainDump(h.fsms[0])) {
		t.Fatal("a refused order changed the state")
	}

	d := h.must(CmdDomainOrder, testDomainOrder("dom_1", "a.test", 2)).(api.Domain)
	if d.Status != api.DomainRegistering || d.YearlyUsdCents != 900 || balance(t, h.fsms[0], "acc_1") != 200 || openOps(t, h.fsms[0]) != 1 {
		t.Fatalf("ordered %+v, balance %d", d, balance(t, h.fsms[0], "acc_1"))
	}
	if _, err := h.apply(CmdDomainOrder, testDomainOrder("dom_3", "a.test", 1)); !errors.Is(err, ErrConflict) {
		t.Fatalf("second order of the same name: %v", err)
	}
	// A change waits for the registration.
	ns := []string{"ns1.other.net", "ns2.other.net"}
	if _, err := h.apply(CmdDomainChange, DomainChange{DomainID: "dom_1", AccountID: "acc_1", ChangeID: "dch_1", ClTRID: "dch_1", Nameservers: ns}); !errors.Is(err, ErrConflict) {
		t.Fatalf("change while registering: %v", err)
	}
	exp := h.at.AddDate(2, 0, 0)
	d = h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_1", OpID: "dom_1", OK: true, Expires: &exp}).(api.Domain)
	if d.Status != api.DomainActive || !d.ExpiresAt.Equal(exp) || openOps(t, h.fsms[0]) != 0 {
		t.Fatalf("registered %+v", d)
	}
	evs := outboxEvents(t, h.fsms[0])
	last := evs[len(evs)-1]
	var payload map[string]any
	_ = json.Unmarshal(last.Data, &payload)
	if last.Type != string(api.EventDomainRegistered) || payload["domainId"] != "dom_1" || payload["domain"] != "a.test" ||
		payload["periodYears"] != float64(2) || payload["expiresAt"] != exp.Format(time.RFC3339) || len(payload) != 4 {
		t.Fatalf("event %s %s", last.Type, last.Data)
	}
	// A repeat (another leader) changes nothing.
	before = domainDump(h.fsms[0])
	h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_1", OpID: "dom_1", OK: false, Reason: "late"})
	if !bytes.Equal(before, domainDump(h.fsms[0])) {
		t.Fatal("a repeated end changed the state")
	}

	// A refused registration is refunded once and frees the name.
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep2", AccountID: "acc_1", AmountUsdCents: 700})
	h.must(CmdDomainOrder, testDomainOrder("dom_4", "c.test", 1))
	if b := balance(t, h.fsms[0], "acc_1"); b != 0 {
		t.Fatalf("balance %d", b)
	}
	d = h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_4", OpID: "dom_4", Reason: "object exists (2302)"}).(api.Domain)
	if d.Status != api.DomainFailed || !strings.Contains(d.StatusReason, "object exists") || !strings.Contains(d.StatusReason, "900 cents were refunded") {
		t.Fatalf("failed %+v", d)
	}
	h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_4", OpID: "dom_4", Reason: "again"})
	if b := balance(t, h.fsms[0], "acc_1"); b != 900 {
		t.Fatalf("balance after the refund %d, want 900", b)
	}
	var taken string
	_ = h.fsms[0].Read(func(r store.ReadTx) error { taken = r.RegDomainNameTaken("c.test"); return nil })
	if taken != "" {
		t.Fatalf("the failed name is still held by %s", taken)
	}
	h.replicasSame(domainDump)
}

// registeredHarness: the product domain-test, acc_1's wallet credited 1000
// cents and its domain dom_1 (a.test) registered for a year, expiring at exp.
func registeredHarness(t *testing.T) (h *whHarness, exp time.Time) {
	h = newServerHarness(t)
	h.putDomainTest()
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: 1000})
	return h, h.registered("dom_1", "a.test")
}

// registered orders domain id (name, for a year, as acc_1) and ends its
// registration, expiring a year from now: its expiry.
func (h *whHarness) registered(id, name string) time.Time {
	h.t.Helper()
	h.must(CmdDomainOrder, testDomainOrder(id, name, 1))
	exp := h.at.AddDate(1, 0, 0)
	h.must(CmdDomainOpDone, DomainOpDone{DomainID: id, OpID: id, OK: true, Expires: &exp})
	return exp
}

// TestDomainChange: auto_renew is applied at once; registry settings are
// pending until the end commits them (applied) or rolls them back (failed,
// the reason kept, the settings unchanged); a second change waits.
func TestDomainChange(t *testing.T) {
	h, _ := registeredHarness(t)

	off, on := false, true
	d := h.must(CmdDomainChange, DomainChange{DomainID: "dom_1", AccountID: "acc_1", AutoRenew: &off}).(api.Domain)
	if d.AutoRenew || d.Change != nil || openOps(t, h.fsms[0]) != 0 {
		t.Fatalf("auto_renew only: %+v", d)
	}
	if _, err := h.apply(CmdDomainChange, DomainChange{DomainID: "dom_1", AccountID: "acc_2", AutoRenew: &on}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another account's domain: %v", err)
	}
	ns := []string{"ns1.other.net", "ns2.other.net"}
	d = h.must(CmdDomainChange, DomainChange{DomainID: "dom_1", AccountID: "acc_1", ChangeID: "dch_1", ClTRID: "dch_1", Nameservers: ns, TransferLock: &on}).(api.Domain)
	if d.Change == nil || d.Change.Status != api.ChangePending || d.Nameservers[0] != "ns1.example.net" || d.TransferLock {
		t.Fatalf("pending %+v", d)
	}
	if _, err := h.apply(CmdDomainChange, DomainChange{DomainID: "dom_1", AccountID: "acc_1", ChangeID: "dch_2", ClTRID: "dch_2", WhoisPrivacy: &on}); !errors.Is(err, ErrConflict) {
		t.Fatalf("second change while pending: %v", err)
	}
	// auto_renew is ours: it goes through while a change is pending.
	h.must(CmdDomainChange, DomainChange{DomainID: "dom_1", AccountID: "acc_1", AutoRenew: &on})
	d = h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_1", OpID: "dch_1", Reason: "nameservers: the registry could not be reached: registry down"}).(api.Domain)
	if d.Change.Status != api.ChangeFailed || d.Change.Reason == "" || d.Nameservers[0] != "ns1.example.net" || d.TransferLock || !d.AutoRenew {
		t.Fatalf("rolled back %+v %+v", d, d.Change)
	}
	h.must(CmdDomainChange, DomainChange{DomainID: "dom_1", AccountID: "acc_1", ChangeID: "dch_3", ClTRID: "dch_3", Nameservers: ns, TransferLock: &on})
	d = h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_1", OpID: "dch_3", OK: true}).(api.Domain)
	if d.Change.Status != api.ChangeApplied || d.Nameservers[0] != "ns1.other.net" || !d.TransferLock || d.Change.FinishedAt == nil {
		t.Fatalf("applied %+v %+v", d, d.Change)
	}
	h.replicasSame(domainDump)
}

// TestDomainChangeAutoRenewGoesWithItsChange: at semantics level 1 an
// auto_renew sent with registry settings applies at once (what releases
// before levels did); from level 2 it is applied by the change's end and
// dropped when the registry refuses it, and an auto_renew alone sent while
// that change is pending wins over the held one.
func TestDomainChangeAutoRenewGoesWithItsChange(t *testing.T) {
	h, _ := registeredHarness(t)
	on := true
	ns := []string{"ns1.other.net", "ns2.other.net"}
	change := func(id string, lock, ar bool) api.Domain {
		return h.must(CmdDomainChange, DomainChange{DomainID: "dom_1", AccountID: "acc_1", ChangeID: id, ClTRID: id, Nameservers: ns, TransferLock: &lock, AutoRenew: &ar}).(api.Domain)
	}
	// Level 1: auto_renew at once, kept when the change is refused.
	if d := change("dch_0", true, false); d.AutoRenew || d.Change.AutoRenew != nil {
		t.Fatalf("level 1: %+v %+v", d, d.Change)
	}
	if d := h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_1", OpID: "dch_0", Reason: "refused"}).(api.Domain); d.AutoRenew {
		t.Fatalf("level 1, refused: %+v", d)
	}
	h.must(CmdDomainChange, DomainChange{DomainID: "dom_1", AccountID: "acc_1", AutoRenew: &on})
	h.must(CmdClusterLevel, ClusterLevel{Level: domainChangeLevel})
	// Refused: auto_renew stays on.
	if d := change("dch_1", true, false); !d.AutoRenew || d.Change.AutoRenew == nil || *d.Change.AutoRenew {
		t.Fatalf("pending with auto_renew held: %+v %+v", d, d.Change)
	}
	if d := h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_1", OpID: "dch_1", Reason: "refused"}).(api.Domain); !d.AutoRenew || d.TransferLock {
		t.Fatalf("refused change: %+v", d)
	}
	// Applied: auto_renew goes off with it.
	change("dch_2", true, false)
	if d := h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_1", OpID: "dch_2", OK: true}).(api.Domain); d.AutoRenew || !d.TransferLock {
		t.Fatalf("applied change: %+v", d)
	}
	// A later auto_renew alone wins over the held one.
	change("dch_3", false, false)
	h.must(CmdDomainChange, DomainChange{DomainID: "dom_1", AccountID: "acc_1", AutoRenew: &on})
	if d := h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_1", OpID: "dch_3", OK: true}).(api.Domain); !d.AutoRenew || d.TransferLock {
		t.Fatalf("auto_renew alone during a change: %+v", d)
	}
	h.replicasSame(domainDump)
}

// TestDomainChangeOfAnExpiredDomain: at semantics level 1 an expired domain
// is changed (releases before levels did); from level 2 it takes no change
// (a DomainStateError, a conflict).
func TestDomainChangeOfAnExpiredDomain(t *testing.T) {
	h, exp := registeredHarness(t)
	h.at = exp.Add(time.Hour)
	h.must(CmdDomainSweep, DomainSweep{Policy: DomainPolicy{RenewDays: 30}, Domains: []string{"dom_1"}})
	off := false
	if d := h.must(CmdDomainChange, DomainChange{DomainID: "dom_1", AccountID: "acc_1", AutoRenew: &off}).(api.Domain); d.AutoRenew || d.Status != api.DomainExpired {
		t.Fatalf("level 1: %+v", d)
	}
	h.must(CmdClusterLevel, ClusterLevel{Level: domainChangeLevel})
	on := true
	_, err := h.apply(CmdDomainChange, DomainChange{DomainID: "dom_1", AccountID: "acc_1", AutoRenew: &on})
	var state *DomainStateError
	if !errors.As(err, &state) || !errors.Is(err, ErrConflict) || state.Status != api.DomainExpired {
		t.Fatalf("a change of an expired domain: %v", err)
	}
	if d := getRegDomain(t, h.fsms[0], "dom_1"); d.AutoRenew {
		t.Fatalf("after the refused change: %+v", d)
	}
	h.replicasSame(domainDump)
}

// TestDomainSweep: an auto-renewing domain is paid RenewDays before expiry
// (one renewal per period, its transaction id derived from the domain and
// the expiry) and renewed by the end; a domain with auto-renew off gets one
// domain.expiring per reminder day; an unpayable renewal one reminder.
func TestDomainSweep(t *testing.T) {
	h := newServerHarness(t)
	h.putDomainTest()
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: 3000})
	for _, id := range []string{"dom_1", "dom_2"} {
		h.registered(id, id[4:]+".test")
	}
	off := false
	h.must(CmdDomainChange, DomainChange{DomainID: "dom_2", AccountID: "acc_1", AutoRenew: &off})
	pol := DomainPolicy{RenewDays: 30, ReminderDays: []int{30, 7}}
	exp := *getRegDomain(t, h.fsms[0], "dom_1").ExpiresAt
	sweep := func(at time.Time) DomainSweepResult {
		h.at = at
		var due []string
		_ = h.fsms[0].Read(func(r store.ReadTx) (err error) { due, err = DomainRenewalCandidates(r, pol, at); return })
		return h.must(CmdDomainSweep, DomainSweep{Policy: pol, Domains: due}).(DomainSweepResult)
	}
	if r := sweep(exp.AddDate(0, 0, -40)); r != (DomainSweepResult{}) {
		t.Fatalf("40 days before: %+v", r)
	}
	r := sweep(exp.AddDate(0, 0, -29))
	if r.Renewing != 1 || r.Reminded != 1 || balance(t, h.fsms[0], "acc_1") != 0 {
		t.Fatalf("29 days before: %+v, balance %d", r, balance(t, h.fsms[0], "acc_1"))
	}
	d := getRegDomain(t, h.fsms[0], "dom_1")
	if d.Op == nil || d.Op.Kind != store.RegOpRenew || d.Op.ClTRID != "dom_1-renew-"+exp.Format("20060102")+"-"+exp.AddDate(0, 0, -29).Format("20060102") {
		t.Fatalf("renewal op %+v", d.Op)
	}
	if r := sweep(exp.AddDate(0, 0, -28)); r != (DomainSweepResult{}) {
		t.Fatalf("a second sweep: %+v", r)
	}
	// The registry refuses: refunded, a reminder with the reason, and no
	// second try the same day.
	h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_1", OpID: d.Op.ID, Reason: "object status prohibits operation (2304)"})
	if b := balance(t, h.fsms[0], "acc_1"); b != 1000 {
		t.Fatalf("balance %d after the refused renewal, want 1000", b)
	}
	if r := sweep(exp.AddDate(0, 0, -28).Add(time.Hour)); r != (DomainSweepResult{}) {
		t.Fatalf("a sweep the same day: %+v", r)
	}
	if r := sweep(exp.AddDate(0, 0, -27)); r.Renewing != 1 {
		t.Fatalf("the next day: %+v", r)
	}
	d = getRegDomain(t, h.fsms[0], "dom_1")
	next := exp.AddDate(1, 0, 0)
	h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_1", OpID: d.Op.ID, OK: true, Expires: &next})
	if d := getRegDomain(t, h.fsms[0], "dom_1"); !d.ExpiresAt.Equal(next) {
		t.Fatalf("renewed to %v", d.ExpiresAt)
	}
	if r := sweep(exp.AddDate(0, 0, -6)); r.Reminded != 1 || r.Renewing != 0 {
		t.Fatalf("7-day reminder: %+v", r)
	}
	if r := sweep(exp.AddDate(0, 0, 1)); r.Expired != 1 {
		t.Fatalf("past expiry: %+v", r)
	}
	// The next period's renewal cannot be paid: one reminder says so.
	if r := sweep(next.AddDate(0, 0, -20)); r.Unpayable != 1 {
		t.Fatalf("unpayable: %+v", r)
	}
	if r := sweep(next.AddDate(0, 0, -19)); r != (DomainSweepResult{}) {
		t.Fatalf("unpayable again: %+v", r)
	}
	var kinds []string
	for _, e := range outboxEvents(t, h.fsms[0]) {
		if strings.HasPrefix(e.Type, "domain.") {
			kinds = append(kinds, e.Type)
		}
	}
	if strings.Join(kinds, ",") != "domain.registered,domain.registered,domain.expiring,domain.expiring,domain.renewed,domain.expiring,domain.expiring" {
		t.Fatalf("domain events %v", kinds)
	}
	h.replicasSame(domainDump)
}
