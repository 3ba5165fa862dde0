package fsm

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/store"
)

var updateDomainAnswerGolden = flag.Bool("update-domain-answer-golden", false,
	"rewrite testdata/domainanswer_level13.golden (with the code of the release before level 14)")

// applyKeyed applies typ p with the Idempotency-Key request idem (as a
// handler's proposal carries it) on every replica and returns the first
// replica's result.
func (h *whHarness) applyKeyed(typ CommandType, p any, idem *IdemRequest) *Result {
	h.t.Helper()
	h.at = h.at.Add(time.Second)
	h.idx++
	env, err := NewEnvelope(typ, h.at, p)
	if err != nil {
		h.t.Fatal(err)
	}
	env.Idem = idem
	b, err := env.Encode()
	if err != nil {
		h.t.Fatal(err)
	}
	l := &raft.Log{Index: h.idx, Term: 1, Type: raft.LogCommand, Data: b}
	var first *Result
	for _, f := range h.fsms {
		r := f.Apply(l).(*Result)
		if first == nil {
			first = r
		}
	}
	return first
}

// domainAnswerLog applies, with Idempotency-Keys, what the log of a domain
// order, its end, a change refused by the registry and a second order holds
// (the entries a handler and the leader's driver propose), and writes each
// result to out.
func domainAnswerLog(h *whHarness, out *bytes.Buffer) {
	h.putDomainTest()
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: 5000})
	exp := h.at.AddDate(1, 0, 0)
	key := func(k string, status int) *IdemRequest {
		return &IdemRequest{Scope: "key_1/" + k, ReqHash: "h-" + k, Status: status, ExpiresAt: h.at.Add(24 * time.Hour)}
	}
	res := func(r *Result) {
		v, _ := json.Marshal(r.Value)
		fmt.Fprintf(out, "result %s err %v replayed %v\n", v, r.Err, r.Replayed != nil)
	}
	res(h.applyKeyed(CmdDomainOrder, testDomainOrder("dom_1", "a.test", 1), key("reg-1", 202)))
	res(h.applyKeyed(CmdDomainOpDone, DomainOpDone{DomainID: "dom_1", OpID: "dom_1", OK: true, Expires: &exp}, nil))
	ns := []string{"ns1.other.net", "ns2.other.net"}
	res(h.applyKeyed(CmdDomainChange, DomainChange{DomainID: "dom_1", AccountID: "acc_1", ChangeID: "dch_1", ClTRID: "dch_1", Nameservers: ns}, key("ns-1", 200)))
	res(h.applyKeyed(CmdDomainOpDone, DomainOpDone{DomainID: "dom_1", OpID: "dch_1", Reason: "registry down"}, nil))
	res(h.applyKeyed(CmdDomainOrder, testDomainOrder("dom_2", "b.test", 1), key("reg-2", 202)))
	res(h.applyKeyed(CmdDomainOpDone, DomainOpDone{DomainID: "dom_2", OpID: "dom_2", Reason: "taken"}, nil))
	// A replay of the first order's key through the FSM.
	res(h.applyKeyed(CmdDomainOrder, testDomainOrder("dom_9", "a.test", 1), key("reg-1", 202)))
}

// TestDomainAnswerLevel13: below level 14 a domain operation's end leaves
// its key's record as its command stored it (the first send records its
// answer itself), and a keyed order or change records no answer window:
// the same log applies as the release before applied it, byte for byte
// (results, domains and records are the golden that release's code wrote).
func TestDomainAnswerLevel13(t *testing.T) {
	domainAnswerGolden(t, LevelIDOrder, domainAnswerLog, "domainanswer_level13.golden", *updateDomainAnswerGolden, "below level 14")
}

// domainAnswerGolden applies log at level on a new harness and fails unless
// its results and the keys' records, domains and domain operations after
// it are the golden file (written by the release before; rewritten first
// with update), byte for byte, on every replica alike. at names the level
// in the failure.
func domainAnswerGolden(t *testing.T, level uint16, log func(*whHarness, *bytes.Buffer), golden string, update bool, at string) {
	t.Helper()
	h := newServerHarness(t)
	h.must(CmdClusterLevel, ClusterLevel{Level: level})
	var out bytes.Buffer
	log(h, &out)
	dumpBuckets(&out, h.fsms[0], store.BucketIdempotency, store.BucketRegDomains, store.BucketRegDomainOps)
	_, want := readGolden(t, golden, update, out.Bytes())
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("%s the log applied otherwise than the release before:\n%s\nwant:\n%s", at, out.Bytes(), want)
	}
	h.replicasSame(domainAnswerDump)
}
