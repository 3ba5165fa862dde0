package fsm

import (
	"bytes"
	"flag"
	"net/http"
	"testing"
)

var updateDomainAnswer14Golden = flag.Bool("update-domain-answer-14-golden", false,
	"rewrite testdata/domainanswer_level14.golden (with the code of the release before level 15)")

// domainAnswerLog14 is domainAnswerLog and, after it, what the log of two
// keyed operations whose answer windows are closed before their ends holds
// (an order's, a change's: the close a first send proposes when its wait
// runs out), and a close after an end.
func domainAnswerLog14(h *whHarness, out *bytes.Buffer) {
	domainAnswerLog(h, out)
	exp := h.at.AddDate(1, 0, 0)
	h.applyKeyed(CmdDomainOrder, testDomainOrder("dom_3", "c.test", 1), h.key("reg-3", 202))
	h.must(CmdDomainAnswerClose, DomainAnswerClose{DomainID: "dom_3", OpID: "dom_3"})
	h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_3", OpID: "dom_3", OK: true, Expires: &exp})
	h.must(CmdDomainAnswerClose, DomainAnswerClose{DomainID: "dom_3", OpID: "dom_3"})
	ns := []string{"ns1.third.net", "ns2.third.net"}
	h.applyKeyed(CmdDomainChange, DomainChange{DomainID: "dom_3", AccountID: "acc_1", ChangeID: "dch_3", ClTRID: "dch_3", Nameservers: ns}, h.key("ns-3", 200))
	h.must(CmdDomainAnswerClose, DomainAnswerClose{DomainID: "dom_3", OpID: "dch_3"})
	h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_3", OpID: "dch_3", OK: true})
}

// TestDomainAnswerLevel14: at level 14 a domain operation's answer window
// is decided as the release before level 15 decided it, byte for byte
// (results, domains and records are the golden that release's code wrote,
// f27c3ca8): no record is marked decided.
func TestDomainAnswerLevel14(t *testing.T) {
	domainAnswerGolden(t, LevelDomainAnswer, domainAnswerLog14, "domainanswer_level14.golden", *updateDomainAnswer14Golden, "at level 14")
}

// TestDomainAnswerDecidedAtLevel15: from level 15 the record an answer
// window's end or close rewrites is marked decided, on every replica alike:
// the end first (201, 409 for a refused change), the close first (202, and
// still 202 and decided after the end). A record the window never rewrote
// (the command's own, the window open) is not marked.
func TestDomainAnswerDecidedAtLevel15(t *testing.T) {
	h := newServerHarness(t)
	h.must(CmdClusterLevel, ClusterLevel{Level: LevelDomainAnswerDecided})
	h.putDomainTest()
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: 5000})
	exp := h.at.AddDate(1, 0, 0)
	decided := func(what, k string, status int, want bool) {
		t.Helper()
		if rec := h.record(k); rec.Status != status || rec.Decided != want {
			t.Fatalf("%s: the key's record answers %d, decided %v; want %d, decided %v", what, rec.Status, rec.Decided, status, want)
		}
	}
	h.applyKeyed(CmdDomainOrder, testDomainOrder("dom_1", "a.test", 1), h.key("reg-1", 202))
	decided("ordered, the window open", "reg-1", http.StatusAccepted, false)
	h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_1", OpID: "dom_1", OK: true, Expires: &exp})
	decided("the end first", "reg-1", http.StatusCreated, true)

	ns := []string{"ns1.other.net", "ns2.other.net"}
	h.applyKeyed(CmdDomainChange, DomainChange{DomainID: "dom_1", AccountID: "acc_1", ChangeID: "dch_1", ClTRID: "dch_1", Nameservers: ns}, h.key("ns-1", 200))
	decided("change pending", "ns-1", http.StatusOK, false)
	h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_1", OpID: "dch_1", Reason: "registry down"})
	decided("change refused", "ns-1", http.StatusConflict, true)

	h.applyKeyed(CmdDomainOrder, testDomainOrder("dom_2", "b.test", 1), h.key("reg-2", 202))
	h.must(CmdDomainAnswerClose, DomainAnswerClose{DomainID: "dom_2", OpID: "dom_2"})
	decided("the close first", "reg-2", http.StatusAccepted, true)
	if op := getRegDomain(t, h.fsms[0], "dom_2").Op; op == nil || op.Answer != nil {
		t.Fatalf("after the close the operation is %+v; want it open, its answer window closed", op)
	}
	h.must(CmdDomainOpDone, DomainOpDone{DomainID: "dom_2", OpID: "dom_2", OK: true, Expires: &exp})
	decided("the end after the close", "reg-2", http.StatusAccepted, true)
	h.replicasSame(domainAnswerDump)
}
