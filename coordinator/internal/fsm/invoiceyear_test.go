package fsm

import (
	"fmt"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestOperatorInvoiceNumberYear: an operator's invoice was numbered
// INV-000123 while orders, renewals and domains number theirs INV-2026-000123
// from the same counter, so a customer's list mixed the two. From semantics
// level 2 it carries the year too; at level 1 (a cluster mid-upgrade) it is
// numbered as before, so replicas of one log agree. The counter is shared:
// no gap, no repeat. Replicas byte-identical.
func TestOperatorInvoiceNumberYear(t *testing.T) {
	h := newServerHarness(t)
	issue := func(id string) string {
		out := h.must(CmdInvoiceIssue, InvoiceIssue{ID: id, AccountID: "acc_1", DueAt: h.at.AddDate(0, 0, 7),
			Lines: []InvoiceLineReq{{Description: "Disk", Quantity: 1, UnitPriceUsdCents: 100}}})
		return out.(api.Invoice).Number
	}
	if n := issue("inv_1"); n != "INV-000001" {
		t.Fatalf("level 1: %s, want INV-000001", n)
	}
	h.must(CmdClusterLevel, ClusterLevel{Level: levelInvoiceYear})
	if n, want := issue("inv_2"), fmt.Sprintf("INV-%d-000002", h.at.Year()); n != want {
		t.Fatalf("level 2: %s, want %s", n, want)
	}
	buckets := [][]byte{store.BucketInvoices, store.BucketOutbox}
	if a, b := bucketDump(h.fsms[0], buckets...), bucketDump(h.fsms[1], buckets...); string(a) != string(b) {
		t.Fatal("replicas differ")
	}
}
