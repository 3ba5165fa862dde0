package fsm

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// TestAppendOnlyBucketsPacked: orders and tickets with time-ordered ids, as
// the API makes them, fill the pages of the append-only buckets (outbox,
// server, invoice and ticket id indexes) to more than 75 %, and those of
// the append-mostly ones (servers, actions, invoices, wallet transactions,
// the node index, the account index of actions), half of whose servers and actions are rewritten larger
// by their provisioning's end, to more than 55 %; bbolt's default split
// leaves such pages about half full. Both replicas hold the same. Below
// LevelOwnerIDs the server and invoice ids are indexed in server_ids and
// invoice_ids, from it in owner_ids (the other two stay empty).
func TestAppendOnlyBucketsPacked(t *testing.T) {
	for _, level := range []uint16{LevelOwnerIDs - 1, LevelOwnerIDs} {
		t.Run(fmt.Sprintf("level %d", level), func(t *testing.T) { testAppendOnlyBucketsPacked(t, level) })
	}
}

// testAppendOnlyBucketsPacked is TestAppendOnlyBucketsPacked at level (2 or more).
func testAppendOnlyBucketsPacked(t *testing.T, level uint16) {
	unused := [][]byte{store.BucketOwnerIDs}
	if level >= LevelOwnerIDs {
		unused = [][]byte{store.BucketServerIDs, store.BucketInvoiceIDs}
	}
	var appendOnly [][]byte
	for _, b := range store.AppendOnlyBuckets {
		if !slices.ContainsFunc(unused, func(u []byte) bool { return bytes.Equal(u, b) }) {
			appendOnly = append(appendOnly, b)
		}
	}
	h := newServerHarness(t)
	h.must(CmdClusterLevel, ClusterLevel{Level: level}) // the account index of actions is written from level 2
	h.must(CmdNodeHello, NodeHello{NodeID: "hv-1", CertSerial: "s1", Roles: []string{"kvm"}, ProtocolVersion: 103,
		Capacity: api.AgentNodeCapacity{VCPUs: 1 << 20, MemoryBytes: 1 << 50, DiskBytes: 1 << 60}})
	h.must(CmdProductPut, ProductPut{Slug: "vps-1", Create: true, Product: api.ProductRequest{Category: api.ProductVPS, NameEn: "VPS 1",
		RetailMonthlyUsdCents: 100, Specs: api.ProductSpecs{VCPU: 1, RAMMB: 256, DiskGB: 1}}})
	const n = 600
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: n * 100})
	for i := 0; i < n; i++ {
		now := h.at.Add(time.Second)
		o := testOrder(i, "vps-1")
		s, a := &o.Create.Server, &o.Create.Action
		s.ID, a.ID, o.InvoiceID = ids.New("srv", now), ids.New("act", now), ids.New("inv", now)
		s.VMName, a.Target, a.ResourceID = "hp-"+s.ID, "hp-"+s.ID, s.ID
		h.must(CmdServerOrder, o)
		if i%2 == 0 { // half the servers provisioned: their server and action grow
			h.must(CmdActionFinish, ActionFinish{ID: a.ID, Success: true})
		}
		h.must(CmdTicketCreate, TicketCreate{ID: ids.New("tkt", now), AccountID: "acc_1", MessageID: ids.New("msg", now),
			Subject: "s", Message: "m", Department: "technical", Priority: "low", PerAccountNumber: true})
	}
	dumps := map[string]bool{}
	for _, f := range h.fsms {
		dumps[string(bucketDump(f, append(store.AppendOnlyBuckets, store.AppendMostlyBuckets...)...))] = true
		_ = f.View(func(tx *bolt.Tx) error {
			// checkFill wants each bucket's leaf pages more than minFill
			// used (and, with minKeys > 0, at least that many keys).
			checkFill := func(names [][]byte, minKeys int, minFill float64) {
				for _, name := range names {
					st := tx.Bucket(name).Stats()
					if st.KeyN < minKeys {
						t.Fatalf("%s holds %d keys, want at least %d", name, st.KeyN, minKeys)
					}
					if st.LeafPageN < 3 {
						t.Fatalf("%s: %d leaf pages; the test needs more", name, st.LeafPageN)
					}
					fill := float64(st.LeafInuse) / float64(st.LeafAlloc)
					t.Logf("%s: %d keys in %d leaf pages, %.0f %% used", name, st.KeyN, st.LeafPageN, 100*fill)
					if fill < minFill {
						t.Errorf("%s: leaf pages %.0f %% used, want more than %.0f %%", name, 100*fill, 100*minFill)
					}
				}
			}
			for _, name := range unused {
				if k := tx.Bucket(name).Stats().KeyN; k != 0 {
					t.Fatalf("%s holds %d keys at level %d, want none", name, k, level)
				}
			}
			checkFill(appendOnly, n, 0.75)
			// The append-mostly buckets: values rewritten larger split
			// some pages, which stay fuller than bbolt's half.
			checkFill(store.AppendMostlyBuckets, 0, 0.55)
			return nil
		})
	}
	if len(dumps) != 1 {
		t.Fatalf("the replicas hold %d different states", len(dumps))
	}
}
