package fsm

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/ipam"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/proccpu"
	"github.com/hostplane/hostplane/pkg/action"
	"github.com/hostplane/hostplane/pkg/api"
)

// BenchmarkApplyOrder is what every replica's FSM does for a POST
// /v1/servers against a POST /v1/tickets, each sent with an
// Idempotency-Key as the cluster benchmark (tests/orders BenchmarkOrderCPU)
// sends them: FSM.ApplyBatch of group commits of applyOrderBatch commands,
// as the leader's batcher proposes them under load, on a store holding a
// few hundred servers, accounts with wallets, products, three nodes and
// two IP pools. One op is one command (ns/op, B/op, allocs/op per
// command). order is a server order as the API builds it without pools
// (the cluster benchmark's rig has none); order-addr one that allocates an
// IPv4 and an IPv6 from the pools; ticket a ticket creation. cpu-µs/op
// is the process's CPU time per command: ns/op is wall time, which on a
// shared machine includes waits for the page cache's writes; pages/op is
// the bbolt pages the commits wrote per command (the FSM's page count, each
// a write of its own), which is what an order's CPU follows. The three
// run at this binary's MaxLevel; order-level9 is order on a state at the
// level before LevelOwnerIDs (server_ids and invoice_ids written), as a
// cluster not yet upgraded applies it.
//
//	go test ./coordinator/internal/fsm -run '^$' -bench ApplyOrder -benchmem
func BenchmarkApplyOrder(b *testing.B) {
	b.Run("order", func(b *testing.B) { benchApplyOrder(b, "order", MaxLevel) })
	b.Run("order-addr", func(b *testing.B) { benchApplyOrder(b, "order-addr", MaxLevel) })
	b.Run("ticket", func(b *testing.B) { benchApplyOrder(b, "ticket", MaxLevel) })
	b.Run("order-level9", func(b *testing.B) { benchApplyOrder(b, "order", LevelOwnerIDs-1) })
}

// applyOrderBatch is how many commands one group commit of the benchmark holds.
const applyOrderBatch = 8

// applyOrderState is BenchmarkApplyOrder's store before the measured
// commands: every order's command time is after at.
type applyOrderState struct {
	f     *FSM
	at    time.Time
	idx   uint64
	seq   int
	prov  []byte // an order's provision params, as the API encodes them
	fixed bool   // ids numbered from seq, not ids.New's (TestApplyOrderRecordsUnchanged)
	label string // the servers' label
	// oneCustomer: every command is acc_00's, every server on hv-1, and
	// the Idempotency-Keys are tests/orders BenchmarkOrderCPU's (one API
	// key; "bench-order-<n>", "cpu-ticket-<round>-<i>"), as that
	// benchmark's cluster applies them (BenchmarkOrderLayouts).
	oneCustomer bool
	orders      int // orders made so far (oneCustomer's keys)
	tickets     int // tickets made so far
}

const applyOrderAccounts = 40

func newApplyOrderState(b *testing.B) *applyOrderState {
	return newApplyOrderStateOf(b, 300, false, MaxLevel)
}

// newApplyOrderStateOf is the store at semantics level with servers
// servers (and as many tickets) ordered, their ids numbered when fixed.
func newApplyOrderStateOf(b testing.TB, servers int, fixed bool, level uint16) *applyOrderState {
	b.Helper()
	return newApplyOrderStateFor(b, servers, fixed, level, applyOrderAccounts)
}

// newApplyOrderStateFor is newApplyOrderStateOf with accounts accounts
// (acc_00 on), each with a wallet.
func newApplyOrderStateFor(b testing.TB, servers int, fixed bool, level uint16, accounts int) *applyOrderState {
	b.Helper()
	f := open(b, filepath.Join(b.TempDir(), "fsm.db"))
	b.Cleanup(func() { f.Close() })
	s := &applyOrderState{f: f, at: time.Date(2026, 6, 3, 10, 0, 0, 0, time.UTC), fixed: fixed, label: "web"}
	s.prov, _ = action.Encode(&action.Provision{Template: "debian-12", Plan: api.NodePlan{VCPUs: 1, MemoryMiB: 1024, DiskGiB: 25},
		Hostname: "web.example.com", SSHKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx3b3JkcyBvZiBhIHRlc3Qga2V5IGZvciB0aGUgYmVuY2ggb25seQ bench@example"}})
	setup := []*Envelope{
		cmd(CmdClusterLevel, ClusterLevel{Level: level}),
		cmd(CmdNodeCAInit, NodeCAInit{CertDER: []byte{1}, SealedKey: "v1.x", Fingerprint: "fp"}),
	}
	for i := 0; i < accounts; i++ {
		acc := fmt.Sprintf("acc_%02d", i)
		setup = append(setup,
			cmd(CmdAccountCreate, AccountCreate{ID: acc, Email: acc + "@example.com", Name: "Customer " + acc, Country: "DE"}),
			cmd(CmdWalletCredit, WalletCredit{TxID: "wtx_dep" + acc, AccountID: acc, AmountUsdCents: 1_000_000_000_000}))
	}
	for n := 1; n <= 3; n++ {
		node, tok := fmt.Sprintf("hv-%d", n), fmt.Sprintf("jt_%d", n)
		setup = append(setup,
			cmd(CmdNodeTokenCreate, NodeTokenCreate{ID: tok, Hash: "h" + tok, ExpiresAt: s.at.Add(time.Hour)}),
			cmd(CmdNodeEnrol, NodeEnrol{TokenID: tok, TokenHash: "h" + tok, NodeID: node, CertSerial: "s" + node, CertNotAfter: s.at.Add(24 * time.Hour)}),
			cmd(CmdNodeHello, NodeHello{NodeID: node, CertSerial: "s" + node, Roles: []string{"kvm"}, ProtocolVersion: 103, Bridges: []string{"br0"},
				Capacity: api.AgentNodeCapacity{VCPUs: 1 << 20, MemoryBytes: 1 << 50, DiskBytes: 1 << 60}}))
	}
	for i, p := range []uint32{1, 2, 4, 8, 16} {
		setup = append(setup, cmd(CmdProductPut, ProductPut{Slug: fmt.Sprintf("vps-%d", i+1), Create: true, Product: api.ProductRequest{
			Category: api.ProductVPS, NameEn: fmt.Sprintf("VPS %d", i+1), RetailMonthlyUsdCents: int64(500 * p),
			Specs: api.ProductSpecs{VCPU: p, RAMMB: 1024 * uint64(p), DiskGB: 25 * uint64(p)}}}))
	}
	setup = append(setup,
		cmd(CmdIPPoolCreate, IPPoolCreate{Pool: store.IPPool{Pool: ipam.Pool{Name: "v4", CIDR: "198.18.0.0/16", Gateway: "198.18.0.1", Bridge: "br0"}}}),
		cmd(CmdIPPoolCreate, IPPoolCreate{Pool: store.IPPool{Pool: ipam.Pool{Name: "v6", CIDR: "2001:db8::/48", Gateway: "fe80::1", Bridge: "br0"}}}))
	s.applyGroup(setup)
	// The servers already ordered, with their tickets.
	for i := 0; i < servers; i += applyOrderBatch {
		var g []*Envelope
		for j := 0; j < applyOrderBatch; j++ {
			g = append(g, s.next("order-addr"), s.next("ticket"))
		}
		s.applyGroup(g)
	}
	return s
}

// next is the next command of kind (order, order-addr, ticket), with an
// Idempotency-Key's request as the API sends it, at a later time.
func (s *applyOrderState) next(kind string) *Envelope {
	s.seq++
	s.at = s.at.Add(time.Millisecond)
	acc := fmt.Sprintf("acc_%02d", s.seq%applyOrderAccounts)
	if s.oneCustomer {
		acc = "acc_00"
	}
	var env *Envelope
	var err error
	switch kind {
	case "ticket":
		env, err = NewEnvelope(CmdTicketCreate, s.at, TicketCreate{ID: s.id("tkt"), AccountID: acc, MessageID: s.id("msg"),
			Subject: "The server does not answer on port 443", Message: "Since this morning the server answers nothing on port 443; port 22 works. Can you look?",
			Department: "technical", Priority: "normal", PerAccountNumber: true})
	default:
		srv, act := s.id("srv"), s.id("act")
		vm := "hp-" + srv
		node := fmt.Sprintf("hv-%d", 1+s.seq%3)
		if s.oneCustomer {
			node = "hv-1"
		}
		plan := api.ServerPlan{Slug: "vps-1", VCPUs: 1, MemoryMiB: 1024, DiskGiB: 25}
		c := ServerCreate{
			Server: store.Server{Server: api.Server{ID: srv, Label: s.label, Hostname: "web.example.com", Plan: plan, OSTemplate: "debian-12", OS: "debian"},
				AccountID: acc, NodeID: node, VMName: vm},
			Action: store.Action{Action: api.Action{ID: act, Command: api.ActionServerProvision, ResourceType: "server", ResourceID: srv},
				NodeID: node, Target: vm, Params: s.prov, NeedsSecret: true, Mutating: true, Deadline: s.at.Add(15 * time.Minute)},
			CPUOvercommit: 4,
		}
		if kind == "order-addr" {
			c.Addresses = &AddrRequest{IPv4Pools: []string{"v4"}, IPv4: 1, IPv6Pools: []string{"v6"}, IPv6: 1}
		}
		env, err = NewEnvelope(CmdServerOrder, s.at, ServerOrder{PlanSlug: "vps-1", Create: c,
			InvoiceID: s.id("inv"), PaymentID: s.id("pay"), TxID: s.id("wtx")})
	}
	if err != nil {
		panic(err)
	}
	scope := fmt.Sprintf("key_%s/bench-%d", acc, s.seq)
	if s.oneCustomer {
		const key = "key_01kt6e0000000000000000000a/"
		if kind == "ticket" {
			scope = fmt.Sprintf("%scpu-ticket-%d-%d", key, s.tickets/120, s.tickets%120)
			s.tickets++
		} else {
			scope = fmt.Sprintf("%sbench-order-%d", key, s.orders)
			s.orders++
		}
	}
	env.Idem = &IdemRequest{Scope: scope, ReqHash: fmt.Sprintf("%064x", s.seq), Status: 201, ExpiresAt: s.at.Add(24 * time.Hour)}
	return env
}

// id is a new id of prefix: ids.New's, or numbered from seq when s.fixed.
func (s *applyOrderState) id(prefix string) string {
	if s.fixed {
		return fmt.Sprintf("%s_%06d", prefix, s.seq)
	}
	return ids.New(prefix, s.at)
}

// entry is envs as the batcher commits them: one Raft entry, a group
// commit when there are several.
func (s *applyOrderState) entry(envs []*Envelope) *raft.Log {
	s.idx++
	enc := make([][]byte, len(envs))
	for i, e := range envs {
		var err error
		if enc[i], err = e.Encode(); err != nil {
			panic(err)
		}
	}
	data := enc[0]
	if len(enc) > 1 {
		data = EncodeBatch(envs[len(envs)-1].At, enc)
	}
	return &raft.Log{Index: s.idx, Term: 1, Type: raft.LogCommand, Data: data}
}

// applyGroup applies envs as one group commit; every command must succeed.
func (s *applyOrderState) applyGroup(envs []*Envelope) {
	checkApplied(s.f.ApplyBatch([]*raft.Log{s.entry(envs)})[0])
}

func checkApplied(out any) {
	switch r := out.(type) {
	case BatchResult:
		for i, x := range r {
			if x.Err != nil {
				panic(fmt.Sprintf("command %d: %v", i, x.Err))
			}
		}
	case *Result:
		if r.Err != nil {
			panic(r.Err)
		}
	}
}

func benchApplyOrder(b *testing.B, kind string, level uint16) {
	s := newApplyOrderStateOf(b, 300, false, level)
	var logs []*raft.Log
	for n := 0; n < b.N; n += applyOrderBatch {
		g := make([]*Envelope, min(applyOrderBatch, b.N-n))
		for i := range g {
			g[i] = s.next(kind)
		}
		logs = append(logs, s.entry(g))
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, pages0 := proccpu.Self(), s.f.pages.Load()
	for _, l := range logs {
		checkApplied(s.f.ApplyBatch([]*raft.Log{l})[0])
	}
	b.StopTimer()
	b.ReportMetric(float64((proccpu.Self()-cpu0).Nanoseconds())/float64(b.N)/1e3, "cpu-µs/op")
	b.ReportMetric(float64(s.f.pages.Load()-pages0)/float64(b.N), "pages/op")
}
