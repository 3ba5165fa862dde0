package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

var updateCustomDomainDeleteGolden = flag.Bool("update-custom-domain-delete-golden", false,
	"rewrite testdata/customdomain_delete_level5.golden (with the code of the release before level 6)")

// batch applies the commands as one group commit (one Raft entry, as the
// batcher commits concurrent proposals) on every replica and returns the
// first replica's results, one per command.
func (h *whHarness) batch(cmds ...*Envelope) BatchResult {
	h.t.Helper()
	h.at = h.at.Add(time.Second)
	h.idx++
	enc := make([][]byte, len(cmds))
	for i, c := range cmds {
		env := *c
		env.At = h.at
		var err error
		if enc[i], err = env.Encode(); err != nil {
			h.t.Fatal(err)
		}
	}
	l := &raft.Log{Index: h.idx, Term: 1, Type: raft.LogCommand, Data: EncodeBatch(h.at, enc)}
	var first BatchResult
	for _, f := range h.fsms {
		r, ok := f.ApplyBatch([]*raft.Log{l})[0].(BatchResult)
		if !ok || len(r) != len(cmds) {
			h.t.Fatalf("a batch of %d commands answered %#v", len(cmds), r)
		}
		if first == nil {
			first = r
		}
	}
	return first
}

// deletingHarness is hosting account hst_a (acc_1, user ada) with the
// custom domain shop.example pending, at semantics level level, and the
// batch a PUT and a verify race with: the account's delete, then a custom
// domain set (other.example) and its verification, each having passed the
// handler's check before the delete was committed.
func deletingHarness(t *testing.T, level uint16) (*whHarness, []*Envelope) {
	h := shopHarnessOn(t, level, 106)
	return h, []*Envelope{
		cmd(CmdHostingAction, HostingAction{Action: store.Action{Action: api.Action{ID: "act_del", Command: api.ActionHostingDelete,
			ResourceID: "hst_a"}, AccountID: "acc_1", NodeID: "hv-1", Target: "ada", Deadline: h.at.Add(time.Hour)}}),
		cmd(CmdCustomDomainSet, CustomDomainSet{HostingID: "hst_a", AccountID: "acc_1", Domain: "other.example", Token: "t2",
			Detach: &DetachAction{ID: "act_d1", Deadline: h.at.Add(time.Hour)}}),
		cmd(CmdCustomDomainVerified, CustomDomainVerified{HostingID: "hst_a", AccountID: "acc_1", Domain: "other.example",
			Takeover: &DetachAction{ID: "act_d2", Deadline: h.at.Add(time.Hour)}}),
	}
}

// TestCustomDomainRefusedDuringHostingDelete: from semantics level 6 a
// custom domain's set and its verification that reach the log after the
// account's delete (one group commit: delete, PUT, verify) are refused at
// apply, 409 action_in_progress naming the delete, and change nothing; once
// the delete is done they are refused as for a deleted account.
func TestCustomDomainRefusedDuringHostingDelete(t *testing.T) {
	h, race := deletingHarness(t, levelCustomDomainVsDelete)
	before := bucketDump(h.fsms[0], store.BucketCustomDomains, store.BucketHostingDomains)
	res := h.batch(race...)
	if res[0].Err != nil {
		t.Fatalf("the delete: %v", res[0].Err)
	}
	for i, what := range map[int]string{1: "custom domain set", 2: "custom domain verified"} {
		var busy *ActionBusyError
		if !errors.As(res[i].Err, &busy) || busy.ActionID != "act_del" || busy.Command != api.ActionHostingDelete || busy.ServerID != "hst_a" {
			t.Fatalf("%s after the delete in the same batch: %v %v, want the delete's action_in_progress", what, res[i].Value, res[i].Err)
		}
	}
	if after := bucketDump(h.fsms[0], store.BucketCustomDomains, store.BucketHostingDomains); !bytes.Equal(before, after) {
		t.Fatalf("refused commands changed the custom domain:\n%s\n%s", before, after)
	}
	h.must(CmdActionFinish, ActionFinish{ID: "act_del", Success: true})
	for _, c := range race[1:] {
		if _, err := h.apply(c.Type, json.RawMessage(c.Data)); !errors.Is(err, ErrConflict) {
			t.Fatalf("command %d on the deleted account: %v", c.Type, err)
		}
	}
	h.replicasSame(customDomainDump)
}

// TestCustomDomainDuringHostingDeleteLevel5: below level 6 the same batch
// applies as the release before applied it (both commands accepted: a
// custom domain recorded for an account being deleted): its results and the
// state are the golden written by that release's code, byte for byte.
func TestCustomDomainDuringHostingDeleteLevel5(t *testing.T) {
	h, race := deletingHarness(t, levelCustomDomainVsDelete-1)
	var out bytes.Buffer
	for i, r := range h.batch(race...) {
		v, _ := json.Marshal(r.Value)
		fmt.Fprintf(&out, "result %d: %s err %v\n", i, v, r.Err)
	}
	dumpBuckets(&out, h.fsms[0], store.BucketHosting, store.BucketCustomDomains, store.BucketHostingDomains, store.BucketActions)
	_, want := readGolden(t, "customdomain_delete_level5.golden", *updateCustomDomainDeleteGolden, out.Bytes())
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("below level 6 the batch applied otherwise than the release before:\n%s\nwant:\n%s", out.Bytes(), want)
	}
	h.replicasSame(customDomainDump)
}

func customDomainDump(f *FSM) []byte {
	return bucketDump(f, store.BucketCustomDomains, store.BucketHostingDomains, store.BucketHosting)
}
