package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// TestNodeUsageWarmAndCold: the node usage sums the apply path keeps decide
// exactly as summing the database does. The same log goes to a replica that
// keeps its sums throughout (warm) and to one closed and reopened before
// every entry (cold: each check sums the database): orders filling two
// small nodes, refusals for room (alone and in the middle of a batch entry),
// a failed provisioning, terminations freeing room, servers an operator
// places, orders from before the apply-time check. Every result and refusal
// is the same, the databases are byte-identical, and after every entry the
// warm replica's sums (what NodeUsed gives placement) equal the database's.
func TestNodeUsageWarmAndCold(t *testing.T) {
	dir := t.TempDir()
	openAt := func(name string) *FSM {
		f, err := Open(filepath.Join(dir, name), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	warm, cold := openAt("warm.db"), openAt("cold.db")
	t.Cleanup(func() { warm.Close(); cold.Close() })
	at := time.Date(2026, 6, 3, 10, 0, 0, 0, time.UTC)
	var idx uint64
	var refused, entries int
	applyEntry := func(data []byte) {
		t.Helper()
		idx++
		entries++
		l := &raft.Log{Index: idx, Type: raft.LogCommand, Data: data}
		if err := cold.Close(); err != nil {
			t.Fatal(err)
		}
		cold = openAt("cold.db")
		rw, rc := warm.Apply(l), cold.Apply(l)
		if w, c := resultText(rw), resultText(rc); w != c {
			t.Fatalf("entry %d: warm %s, cold %s", idx, w, c)
		}
		for _, r := range results(rw) {
			if r.Err != nil {
				refused++
			}
		}
		for _, node := range []string{"hv-1", "hv-2", "hv-3"} {
			kept, ok := warm.NodeUsed(node)
			summed := dbNodeUsed(t, warm, node)
			if ok && kept != summed {
				t.Fatalf("entry %d: node %s: kept %+v, the database sums %+v", idx, node, kept, summed)
			}
		}
	}
	enc := func(typ CommandType, p any) []byte {
		at = at.Add(time.Second)
		env, err := NewEnvelope(typ, at, p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := env.Encode()
		return b
	}
	do := func(typ CommandType, p any) { t.Helper(); applyEntry(enc(typ, p)) }

	do(CmdAccountCreate, AccountCreate{ID: "acc_1", Email: "a@example.com"})
	do(CmdNodeCAInit, NodeCAInit{CertDER: []byte{1}, SealedKey: "v1.x", Fingerprint: "fp"})
	for i, node := range []string{"hv-1", "hv-2"} {
		tok := fmt.Sprintf("jt_%d", i)
		do(CmdNodeTokenCreate, NodeTokenCreate{ID: tok, Hash: "h" + tok, ExpiresAt: at.Add(time.Hour)})
		do(CmdNodeEnrol, NodeEnrol{TokenID: tok, TokenHash: "h" + tok, NodeID: node, CertSerial: "s" + node, CertNotAfter: at.Add(24 * time.Hour)})
		do(CmdNodeHello, NodeHello{NodeID: node, CertSerial: "s" + node, Roles: []string{"kvm"}, ProtocolVersion: 103,
			Capacity: api.AgentNodeCapacity{VCPUs: 2, MemoryBytes: 3 << 30, DiskBytes: 100 << 30}})
	}
	do(CmdProductPut, ProductPut{Slug: "vps-1", Create: true, Product: api.ProductRequest{Category: api.ProductVPS, NameEn: "VPS 1",
		RetailMonthlyUsdCents: 100, Specs: api.ProductSpecs{VCPU: 1, RAMMB: 1024, DiskGB: 10}}})
	do(CmdWalletCredit, WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: 100_000})
	order := func(n int, node string, overcommit float64) ServerOrder {
		o := testOrder(n, "vps-1")
		o.Create.CPUOvercommit = overcommit
		o.Create.Server.NodeID, o.Create.Action.NodeID = node, node
		return o
	}
	// hv-1 takes 3 servers of 1 GiB; the fourth is refused.
	if _, ok := warm.NodeUsed("hv-2"); ok {
		t.Fatal("node usage known before any order")
	}
	for n := 1; n <= 4; n++ {
		do(CmdServerOrder, order(n, "hv-1", 4))
	}
	// The first check summed every node: placement reads hv-2's (and an
	// unknown node's) without summing it.
	for _, node := range []string{"hv-2", "hv-3"} {
		if used, ok := warm.NodeUsed(node); !ok || used != (api.AgentNodeCapacity{}) {
			t.Fatalf("%s after the first orders: %+v %t, want nothing used, known", node, used, ok)
		}
	}
	// A batch entry: three fit hv-2, the fourth does not, the fifth goes to
	// hv-1 (full).
	var batch [][]byte
	for _, n := range []int{5, 6, 7, 8, 15} {
		node := "hv-2"
		if n == 15 {
			node = "hv-1"
		}
		batch = append(batch, enc(CmdServerOrder, order(n, node, 4)))
	}
	applyEntry(EncodeBatch(at, batch))
	// srv_1's provisioning fails (refunded; it stays on the node until
	// terminated); srv_2 and srv_6 are terminated: a slot frees on each node.
	do(CmdActionsFinished, ActionsFinished{Results: []ActionFinish{{ID: "act_1", Success: false, ErrorCode: "x", ErrorMessage: "boom"}, {ID: "act_2", Success: true}, {ID: "act_6", Success: true}}})
	for _, st := range [][2]string{{"srv_2", "hv-1"}, {"srv_6", "hv-2"}} {
		srv, node := st[0], st[1]
		do(CmdActionCreate, ActionCreate{Action: store.Action{Action: api.Action{ID: "act_t" + srv, Command: api.ActionServerTerminate, ResourceID: srv},
			AccountID: "acc_1", NodeID: node, Target: "hp-" + srv, Deadline: at.Add(time.Hour)}})
		do(CmdActionFinish, ActionFinish{ID: "act_t" + srv, Success: true})
	}
	do(CmdServerOrder, order(9, "hv-1", 4))  // fits the freed slot
	do(CmdServerOrder, order(10, "hv-1", 4)) // full again
	// An order from before the apply-time check (no overcommit) is placed
	// regardless, and counts.
	do(CmdServerOrder, order(11, "hv-1", 0))
	do(CmdServerOrder, order(12, "hv-1", 8)) // memory: still full
	// A server an operator places (CmdServerCreate) counts too.
	op := order(13, "hv-2", 4).Create
	op.Server.Plan = api.ServerPlan{Slug: "nano", VCPUs: 1, MemoryMiB: 512, DiskGiB: 1}
	do(CmdServerCreate, op)
	do(CmdServerOrder, order(14, "hv-2", 4)) // hv-2: 2.5 GiB used of 3 GiB with srv_13: refused

	if refused != 6 {
		t.Fatalf("%d refusals in %d entries, want 6 (srv_4, 8, 15, 10, 12, 14)", refused, entries)
	}
	all := store.AllBuckets
	if !bytes.Equal(bucketDump(warm, all...), bucketDump(cold, all...)) {
		t.Fatal("the warm and the cold replica differ")
	}
	for node, want := range map[string]api.AgentNodeCapacity{
		"hv-1": {VCPUs: 4, MemoryBytes: 4 << 30, DiskBytes: 40 << 30},         // srv_1 (failed), 3, 9, 11
		"hv-2": {VCPUs: 3, MemoryBytes: 2<<30 + 512<<20, DiskBytes: 21 << 30}, // srv_5, 7, 13
	} {
		if got, ok := warm.NodeUsed(node); !ok || got != want {
			t.Fatalf("%s uses %+v (%t), want %+v", node, got, ok, want)
		}
	}
}

func results(v any) []*Result {
	switch r := v.(type) {
	case *Result:
		return []*Result{r}
	case BatchResult:
		return r
	}
	return nil
}

// resultText is an entry's results, compared between replicas.
func resultText(v any) string {
	var b bytes.Buffer
	for _, r := range results(v) {
		v, _ := json.Marshal(r.Value)
		fmt.Fprintf(&b, "[%s err=%v]", v, r.Err)
	}
	return b.String()
}

// dbNodeUsed sums the plans of the node's servers from the database.
func dbNodeUsed(t *testing.T, f *FSM, node string) api.AgentNodeCapacity {
	t.Helper()
	var used api.AgentNodeCapacity
	if err := f.View(func(tx *bolt.Tx) (err error) {
		used, err = scanNodeUsed(&applyCtx{tx: tx, r: store.Read(tx)}, node)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return used
}

// TestNodeUsedInsideAReadWhileARestoreWaits: the leader's placement reads
// NodeUsed inside its read transaction (httpapi placementCandidates) while
// a Restore (cluster restore, or a snapshot the leader sends) may ask for
// the FSM's lock. NodeUsed took that lock's read side a second time: with a
// writer waiting, sync.RWMutex blocks a new RLock, so the read never ended
// and the Restore never started (the coordinator's applies stopped behind
// it). Here a writer waits for the lock while a read holds it; NodeUsed
// must still answer. The 30 s bound only stops a deadlocked test.
func TestNodeUsedInsideAReadWhileARestoreWaits(t *testing.T) {
	f := open(t, filepath.Join(t.TempDir(), "fsm.db"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Read(func(store.ReadTx) error {
			// As Restore: the lock, then (fsm.open) a new usage.
			go func() { f.mu.Lock(); f.use.Store(newNodeUsage()); f.mu.Unlock() }()
			// Until the writer waits: only then does TryRLock fail.
			for f.mu.TryRLock() {
				f.mu.RUnlock()
				runtime.Gosched()
			}
			f.NodeUsed("hv-1")
			return nil
		})
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("NodeUsed inside a read transaction did not return while a Restore waited for the FSM's lock: deadlock")
	}
	f.Close()
}
