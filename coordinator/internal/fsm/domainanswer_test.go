package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// answerHarness is two replicas at level 14 with .test offered and a wallet
// that pays a few orders.
func answerHarness(t *testing.T) *whHarness {
	h := newServerHarness(t)
	h.must(CmdClusterLevel, ClusterLevel{Level: LevelDomainAnswer})
	h.putDomainTest()
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: 5000})
	return h
}

func (h *whHarness) key(k string, status int) *IdemRequest {
	return &IdemRequest{Scope: "key_1/" + k, ReqHash: "h-" + k, Status: status, ExpiresAt: h.at.Add(24 * time.Hour)}
}

// record is the first replica's record of key k.
func (h *whHarness) record(k string) store.IdemRecord {
	h.t.Helper()
	return readOne(h.t, h.fsms[0], func(r store.ReadTx) (store.IdemRecord, error) { return r.Idempotency("key_1/" + k) })
}

func domainAnswerDump(f *FSM) []byte {
	return bucketDump(f, store.BucketIdempotency, store.BucketRegDomains, store.BucketRegDomainOps)
}

// wantAnswer fails unless key k's record answers status with a domain
// whose status is domStatus (or, for a 409, an error with code).
func (h *whHarness) wantAnswer(what, k string, status int, domStatus, code string) {
	h.t.Helper()
	rec := h.record(k)
	var body struct {
		api.Domain
		Code string `json:"code"`
	}
	if rec.Status != status || json.Unmarshal(rec.Body, &body) != nil || body.Status != domStatus || body.Code != code {
		h.t.Fatalf("%s: the key's record answers %d %s; want %d (domain %q, code %q)", what, rec.Status, rec.Body, status, domStatus, code)
	}
}

// TestDomainAnswerEndThenClose: from level 14 a keyed order's end decides
// its key's answer, 201 with the domain active (a refused registration, 409
// registration_failed; a change, 200 applied or 409 change_failed) and the
// window's close after it changes nothing, on every replica alike.
func TestDomainAnswerEndThenClose(t *testing.T) {
	h := answerHarness(t)
	exp := h.at.AddDate(1, 0, 0)
	if r := h.applyKeyed(CmdDomainOrder, testDomainOrder("dom_1", "a.test", 1), h.key("reg-1", 202)); r.Err != nil {
		t.Fatal(r.Err)
	}
	if op := getRegDomain(t, h.fsms[0], "dom_1").Op; op == nil || op.Answer == nil || op.Answer.Scope != "key_1/reg-1" || op.Answer.ReqHash != "h-reg-1" {
		t.Fatalf("the keyed order's operation: %+v; want its answer window open with the key's scope", op)
	}
	h.wantAnswer("ordered", "reg-1", http.StatusAccepted, api.DomainRegistering, "")
	h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_1", OpID: "dom_1", OK: true, Expires: &exp})
	h.wantAnswer("registered", "reg-1", http.StatusCreated, api.DomainActive, "")
	h.repeatChangesNothing(domainAnswerDump, "a close after the end changed the state", CmdDomainAnswerClose, DomainAnswerClose{DomainID: "dom_1", OpID: "dom_1"})

	ns := []string{"ns1.other.net", "ns2.other.net"}
	h.applyKeyed(CmdDomainChange, DomainChange{DomainID: "dom_1", AccountID: "acc_1", ChangeID: "dch_1", ClTRID: "dch_1", Nameservers: ns}, h.key("ns-1", 200))
	h.wantAnswer("change pending", "ns-1", http.StatusOK, api.DomainActive, "")
	h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_1", OpID: "dch_1", Reason: "registry down"})
	h.wantAnswer("change refused", "ns-1", http.StatusConflict, "", "change_failed")
	h.applyKeyed(CmdDomainChange, DomainChange{DomainID: "dom_1", AccountID: "acc_1", ChangeID: "dch_2", ClTRID: "dch_2", Nameservers: ns}, h.key("ns-2", 200))
	h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_1", OpID: "dch_2", OK: true})
	h.wantAnswer("change applied", "ns-2", http.StatusOK, api.DomainActive, "")
	var applied api.Domain
	if _ = json.Unmarshal(h.record("ns-2").Body, &applied); applied.Change == nil || applied.Change.Status != api.ChangeApplied || !equalStrings(applied.Nameservers, ns) {
		t.Fatalf("change applied: the record answers %s; want the change applied", h.record("ns-2").Body)
	}

	h.applyKeyed(CmdDomainOrder, testDomainOrder("dom_2", "b.test", 1), h.key("reg-2", 202))
	h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_2", OpID: "dom_2", Reason: "taken"})
	h.wantAnswer("registration refused", "reg-2", http.StatusConflict, "", "registration_failed")
	h.replicasSame(domainAnswerDump)

	// An order without a key opens no window; its close is refused by
	// nothing and changes nothing.
	h.must(CmdDomainOrder, testDomainOrder("dom_3", "c.test", 1))
	if op := getRegDomain(t, h.fsms[0], "dom_3").Op; op == nil || op.Answer != nil {
		t.Fatalf("an order without a key: operation %+v; want no answer window", op)
	}
	h.repeatChangesNothing(domainAnswerDump, "closing a window never opened changed the state", CmdDomainAnswerClose, DomainAnswerClose{DomainID: "dom_3", OpID: "dom_3"})
	if _, err := h.apply(CmdDomainAnswerClose, DomainAnswerClose{DomainID: "dom_3"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a close without the operation's id: %v", err)
	}
}

func equalStrings(a, b []string) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// TestDomainAnswerCloseThenEnd: a close applied before the end decides 202
// with the domain pending; the end after it leaves the record at 202 (the
// domain itself ends: GET shows it), and a second close changes nothing, on
// every replica alike.
func TestDomainAnswerCloseThenEnd(t *testing.T) {
	h := answerHarness(t)
	exp := h.at.AddDate(1, 0, 0)
	h.applyKeyed(CmdDomainOrder, testDomainOrder("dom_1", "a.test", 1), h.key("reg-1", 202))
	h.must(CmdDomainAnswerClose, DomainAnswerClose{DomainID: "dom_1", OpID: "dom_1"})
	h.wantAnswer("closed", "reg-1", http.StatusAccepted, api.DomainRegistering, "")
	if op := getRegDomain(t, h.fsms[0], "dom_1").Op; op == nil || op.Answer != nil {
		t.Fatalf("after the close the operation is %+v; want it open, its answer window closed", op)
	}
	h.repeatChangesNothing(domainAnswerDump, "a second close changed the state", CmdDomainAnswerClose, DomainAnswerClose{DomainID: "dom_1", OpID: "dom_1"})
	closed := h.record("reg-1")
	h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_1", OpID: "dom_1", OK: true, Expires: &exp})
	if got := h.record("reg-1"); got.Status != closed.Status || !bytes.Equal(got.Body, closed.Body) {
		t.Fatalf("the end after the close rewrote the record: %d %s; want %d %s", got.Status, got.Body, closed.Status, closed.Body)
	}
	if d := getRegDomain(t, h.fsms[0], "dom_1"); d.Status != api.DomainActive {
		t.Fatalf("the domain after its end: %s", d.Status)
	}

	// A change closed before its end answers 202 with the change pending.
	ns := []string{"ns1.other.net", "ns2.other.net"}
	h.applyKeyed(CmdDomainChange, DomainChange{DomainID: "dom_1", AccountID: "acc_1", ChangeID: "dch_1", ClTRID: "dch_1", Nameservers: ns}, h.key("ns-1", 200))
	h.must(CmdDomainAnswerClose, DomainAnswerClose{DomainID: "dom_1", OpID: "dch_1"})
	h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_1", OpID: "dch_1", OK: true})
	h.wantAnswer("change closed", "ns-1", http.StatusAccepted, api.DomainActive, "")
	var pending api.Domain
	if _ = json.Unmarshal(h.record("ns-1").Body, &pending); pending.Change == nil || pending.Change.Status != api.ChangePending {
		t.Fatalf("change closed: the record answers %s; want the change pending", h.record("ns-1").Body)
	}

	// A record of another request (or none) under the window's scope is
	// left alone, and the end still ends.
	h.applyKeyed(CmdDomainOrder, testDomainOrder("dom_2", "b.test", 1), h.key("reg-2", 202))
	h.at = h.at.Add(48 * time.Hour)
	h.must(CmdIdemExpire, IdemExpire{})
	h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_2", OpID: "dom_2", OK: true, Expires: &exp})
	if d := getRegDomain(t, h.fsms[0], "dom_2"); d.Status != api.DomainActive || d.Op != nil {
		t.Fatalf("an end whose key's record expired: %s %+v", d.Status, d.Op)
	}
	h.replicasSame(domainAnswerDump)
}

// TestDomainAnswerCloseNeedsLevel14: below level 14 a close is refused
// (cluster_upgrading) and changes nothing.
func TestDomainAnswerCloseNeedsLevel14(t *testing.T) {
	h := newServerHarness(t)
	h.must(CmdClusterLevel, ClusterLevel{Level: LevelDomainAnswer - 1})
	var le *LevelError
	if _, err := h.apply(CmdDomainAnswerClose, DomainAnswerClose{DomainID: "dom_1", OpID: "dom_1"}); !errors.As(err, &le) || le.Need != LevelDomainAnswer {
		t.Fatalf("a close at level 13: %v", err)
	}
}

// TestDomainAnswerExpiredRecordLeftAlone: a key's record whose expiry has
// passed by the end's time, not yet swept (no CmdIdemExpire), is left as it
// is by the end (and by a close): an expired answer is not rewritten
// (review60 R10: only the swept record was tested).
func TestDomainAnswerExpiredRecordLeftAlone(t *testing.T) {
	h := answerHarness(t)
	exp := h.at.AddDate(1, 0, 0)
	h.applyKeyed(CmdDomainOrder, testDomainOrder("dom_1", "a.test", 1), h.key("reg-1", 202))
	h.applyKeyed(CmdDomainOrder, testDomainOrder("dom_2", "b.test", 1), h.key("reg-2", 202))
	before1, before2 := h.record("reg-1"), h.record("reg-2")
	h.at = before1.ExpiresAt.Add(time.Minute)
	h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_1", OpID: "dom_1", OK: true, Expires: &exp})
	h.must(CmdDomainAnswerClose, DomainAnswerClose{DomainID: "dom_2", OpID: "dom_2"})
	for k, before := range map[string]store.IdemRecord{"reg-1": before1, "reg-2": before2} {
		b, _ := json.Marshal(before)
		if a, _ := json.Marshal(h.record(k)); !bytes.Equal(a, b) {
			t.Fatalf("%s: the expired record was rewritten: %s; want it unchanged: %s", k, a, b)
		}
	}
	if d := getRegDomain(t, h.fsms[0], "dom_1"); d.Status != api.DomainActive || d.Op != nil {
		t.Fatalf("an end whose key's record expired: %s %+v", d.Status, d.Op)
	}
	h.replicasSame(domainAnswerDump)
}
