package robustness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
)

// The money guarantee, checked from outside: nothing lost, nothing spent
// twice. Clients credit the wallet through the operator's API (each credit
// with its Idempotency-Key, retried with it on an unknown outcome, possibly
// at another coordinator), order servers through /v1 (the customer's way to
// debit the wallet; each order with its key, retried likewise) and read the
// balance (GET /v1/billing/wallet, default consistency), through all three
// coordinators, while the leader is killed or paused. The history must be
// linearizable for a wallet holding an integer balance.

// walletPrice is what an order of walletPlan costs (retail, no discount).
const (
	walletPlan  = "vps-lin"
	walletPrice = 700
)

type walletKind int

const (
	walletCredit walletKind = iota
	walletOrder
	walletRead
)

// walletIn is one operation on the wallet: a credit of amount (key is its
// Idempotency-Key), an order costing amount (key likewise), or a read.
type walletIn struct {
	kind   walletKind
	amount int64
	key    string
}

// walletOut is what the operation answered. known is false for an
// operation whose outcome stayed unknown (it may have applied once, at any
// time after its call). balance is the read's balance, the credit's
// balance_after (the first answer, replayed to a retry), or the balance a
// refused order's message names (-1: it names none); ok is an order's
// success (false: 402 insufficient_funds); noRoom is an order refused with
// 409 no_capacity (no node could take it), which must have changed nothing
// either; a run asserts there is none (the node is far from full, and while
// its session moves to a new leader an order is a 503 node_reconnecting).
type walletOut struct {
	known   bool
	ok      bool
	noRoom  bool
	balance int64
}

// walletModel is a wallet: an integer balance, starting at 0. A credit adds
// its amount (its answer's balance_after must be the result); an order
// debits its price if the balance covers it and is refused otherwise,
// changing nothing (a refusal that names the balance must name this one); a
// read returns the balance. An order of unknown outcome does what the
// balance at its linearization point makes it do; porcupine may also place
// it (or an unknown credit) after every other operation, which is its not
// having applied.
var walletModel = porcupine.Model{
	Init: func() interface{} { return int64(0) },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		st, in, out := state.(int64), input.(walletIn), output.(walletOut)
		switch in.kind {
		case walletCredit:
			if out.known && out.balance != st+in.amount {
				return false, st
			}
			return true, st + in.amount
		case walletOrder:
			switch {
			case !out.known:
				if st >= in.amount {
					return true, st - in.amount
				}
				return true, st
			case out.ok:
				return st >= in.amount, st - in.amount
			case out.noRoom:
				return true, st
			default:
				return st < in.amount && (out.balance < 0 || out.balance == st), st
			}
		default:
			return out.balance == st, st
		}
	},
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(walletIn), output.(walletOut)
		switch {
		case in.kind == walletRead:
			return fmt.Sprintf("read() -> %d", out.balance)
		case !out.known:
			return fmt.Sprintf("%s(%s, %d) -> unknown", [...]string{"credit", "order"}[in.kind], in.key, in.amount)
		case in.kind == walletCredit:
			return fmt.Sprintf("credit(%s, %d) -> balance_after %d", in.key, in.amount, out.balance)
		case out.ok:
			return fmt.Sprintf("order(%s, %d) -> paid", in.key, in.amount)
		case out.noRoom:
			return fmt.Sprintf("order(%s, %d) -> 409 no_capacity", in.key, in.amount)
		default:
			return fmt.Sprintf("order(%s, %d) -> 402 (holds %d)", in.key, in.amount, out.balance)
		}
	},
	DescribeState: func(state interface{}) string { return strconv.FormatInt(state.(int64), 10) },
	DescribeOperationMetadata: func(info interface{}) string {
		if info == nil {
			return ""
		}
		return info.(string)
	},
}

// holdsRE reads the balance from a 402 insufficient_funds message ("… the
// wallet holds N cents …"): the FSM writes it when it refuses the order.
var holdsRE = regexp.MustCompile(`the wallet holds (\d+) cents`)

// walletRig is the cluster of a wallet run: the scripted agent node orders
// are placed on, the product, an admin client per coordinator.
type walletRig struct {
	*cluster
	admins []*client.Admin
}

func newWalletRig(t *testing.T, name string) *walletRig {
	t.Helper()
	c := startCluster(t, name, clusterOptions{agents: true,
		scopes: []string{api.ScopeBillingRead, api.ScopeOrdersWrite, api.ScopeServersRead}})
	r := &walletRig{cluster: c}
	for _, p := range c.procs {
		r.admins = append(r.admins, p.Admin())
	}
	// Room for far more servers than a run orders (every action succeeds).
	c.pc.StartTestAgent("lin-node-1", strings.Join(c.pc.AgentAddrs(), ","), "-kvm", "-kvm-scale", "64")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := r.admins[0].CreateProduct(ctx, walletPlan, api.ProductRequest{Category: api.ProductVPS, NameEn: "VPS lin",
		RetailMonthlyUsdCents: walletPrice, Specs: api.ProductSpecs{VCPU: 1, RAMMB: 256, DiskGB: 1}}); err != nil {
		t.Fatal(err)
	}
	// Every coordinator serves the (empty) wallet and knows the product and
	// the node before the clocks start.
	for _, p := range c.procs {
		framework.PollFor(t, p.ID+" serving the wallet", 20*time.Second, 50*time.Millisecond,
			func(ctx context.Context) (api.Wallet, error) { return c.api(p).Wallet(ctx) },
			func(w api.Wallet) bool { return w.BalanceUsdCents == 0 })
	}
	return r
}

// walletStats describes a run.
type walletStats struct {
	reads, failedReads, credits, orders, paid, refused, noRoom int
	retryCounts
}

// credit sends one credit of amount with key through p's admin socket.
func (r *walletRig) credit(ctx context.Context, p *framework.CoordinatorProcess, key string, amount int64) (api.WalletTransaction, try, error) {
	adm := r.admins[r.index(p)]
	tx, err := adm.CreditWalletOnce(ctx, r.account, api.WalletCreditRequest{AmountUsdCents: amount, Gateway: "test", Description: "lin " + key}, key)
	if err == nil {
		return tx, try{done: true}, nil
	}
	st, code := statusOf(err)
	if unknownOutcome(st, code) {
		return tx, try{status: st}, nil
	}
	return tx, try{done: true, status: st}, err
}

// runWallet drives 12 clients for dur, 6 of which also credit and order,
// applying f to the leader at 5 s; after dur every client finishes the
// operation it has begun (retrying for up to 20 s), then every coordinator
// reads the balance once more.
func runWallet(t *testing.T, r *walletRig, f fault, dur time.Duration) ([]porcupine.Operation, walletStats) {
	const clients, writers = 12, 6
	run := newLinRun()
	var s walletStats
	// read reads the balance.
	read := func(ctx context.Context, p *framework.CoordinatorProcess, client int, meta string) error {
		call := run.now()
		wl, err := r.api(p).Wallet(ctx)
		ret := run.now()
		if err == nil {
			run.add(porcupine.Operation{ClientId: client, Input: walletIn{kind: walletRead}, Call: call, Output: walletOut{known: true, balance: wl.BalanceUsdCents}, Return: ret, Metadata: meta})
		}
		return err
	}
	s.reads, s.failedReads = run.drive(t, r.cluster, f, clients, dur, func(ctx context.Context, i int, rng *rand.Rand, p *framework.CoordinatorProcess) {
		switch w := rng.IntN(2); {
		case i < writers && w == 0:
			n := run.next.Add(1)
			key := fmt.Sprintf("lin-credit-%d", n)
			amount := int64(100 + rng.IntN(900))
			var out walletOut
			call, ret, attempts := r.untilDefinite(run.recorder, rng, r.index(p), run.giveUp, func(ctx context.Context, p *framework.CoordinatorProcess) try {
				tx, res, err := r.credit(ctx, p, key, amount)
				if err != nil {
					t.Errorf("credit %s via %s: %v", key, p.ID, err)
				} else if res.done {
					out = walletOut{known: true, balance: tx.BalanceAfterUsdCents}
					if tx.AmountUsdCents != amount || tx.Type != api.TxDeposit {
						t.Errorf("credit %s of %d answered %+v", key, amount, tx)
					}
				}
				return res
			})
			run.addWrite(i, walletIn{kind: walletCredit, amount: amount, key: key}, out, out.known, call, ret, p, attempts)
			run.count(func() {
				s.credits++
				s.count(ret, attempts)
			})
		case i < writers:
			n := run.next.Add(1)
			key := fmt.Sprintf("lin-order-%d", n)
			req := api.ServerOrderRequest{PlanSlug: walletPlan, Label: key, Hostname: key, OSTemplate: "base"}
			var out walletOut
			call, ret, attempts := r.untilDefinite(run.recorder, rng, r.index(p), run.giveUp, func(ctx context.Context, p *framework.CoordinatorProcess) try {
				o, err := r.api(p).OrderServer(ctx, req, key)
				if err == nil {
					if o.Invoice.TotalUsdCents != walletPrice || o.Invoice.Status != api.InvoicePaid || o.Server.ID == "" {
						t.Errorf("order %s answered invoice %+v, server %q", key, o.Invoice, o.Server.ID)
					}
					out = walletOut{known: true, ok: true}
					return try{done: true}
				}
				st, code := statusOf(err)
				switch {
				case st == 402 && code == "insufficient_funds":
					out = walletOut{known: true, balance: -1}
					if m := holdsRE.FindStringSubmatch(err.Error()); m != nil {
						out.balance, _ = strconv.ParseInt(m[1], 10, 64)
					}
					return try{done: true}
				case st == 409 && code == "no_capacity":
					out = walletOut{known: true, noRoom: true}
					return try{done: true}
				case unknownOutcome(st, code):
					return try{status: st}
				}
				t.Errorf("order %s via %s: %v", key, p.ID, err)
				return try{done: true, status: st}
			})
			run.addWrite(i, walletIn{kind: walletOrder, amount: walletPrice, key: key}, out, out.known, call, ret, p, attempts)
			run.count(func() {
				s.orders++
				s.count(ret, attempts)
				switch {
				case ret == pendingForever: // counted unknown
				case out.ok:
					s.paid++
				case out.noRoom:
					s.noRoom++
				case out.known:
					s.refused++
				}
			})
		default:
			run.reads.read(ctx, read, p, i)
		}
	}, read)
	return run.history(), s
}

// walletLedger checks the wallet's transactions after a run: every credit
// key deposited at most once (acknowledged ones exactly once), one payment
// per paid order and none beyond the orders, and the transactions summing
// to the final balance.
func walletLedger(t *testing.T, r *walletRig, hist []porcupine.Operation) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := r.api(r.procs[r.pc.WaitLeader(10*time.Second)])
	var txs []api.WalletTransaction
	for page := 1; ; page++ {
		l, err := cl.WalletTransactions(ctx, page, 200)
		if err != nil {
			t.Fatal(err)
		}
		txs = append(txs, l.Data...)
		if l.NextPage == nil {
			break
		}
	}
	w, err := cl.Wallet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deposits := map[string]int{}
	payments := 0
	var sum int64
	for _, tx := range txs {
		sum += tx.AmountUsdCents
		switch tx.Type {
		case api.TxDeposit:
			deposits[strings.TrimPrefix(tx.Description, "lin ")]++
		case api.TxInvoicePayment:
			payments++
		default:
			t.Errorf("unexpected transaction %+v", tx)
		}
	}
	paid, unknownOrders := 0, 0
	for _, op := range hist {
		in, out := op.Input.(walletIn), op.Output.(walletOut)
		switch {
		case in.kind == walletCredit && out.known && deposits[in.key] != 1:
			t.Errorf("credit %s (acknowledged) deposited %d times", in.key, deposits[in.key])
		case in.kind == walletCredit && deposits[in.key] > 1:
			t.Errorf("credit %s (unknown outcome) deposited %d times", in.key, deposits[in.key])
		case in.kind == walletOrder && out.ok:
			paid++
		case in.kind == walletOrder && !out.known:
			unknownOrders++
		}
	}
	if payments < paid || payments > paid+unknownOrders {
		t.Errorf("%d order payments in the ledger; %d orders were paid and %d are of unknown outcome", payments, paid, unknownOrders)
	}
	if sum != w.BalanceUsdCents {
		t.Errorf("the %d transactions sum to %d, the balance is %d", len(txs), sum, w.BalanceUsdCents)
	}
	t.Logf("ledger: %d transactions (%d deposits, %d payments), balance %d", len(txs), len(txs)-payments, payments, w.BalanceUsdCents)
}

// corruptWallet returns a copy of hist in which the last read reads one
// cent more than it did: no linearization explains a cent nobody credited.
func corruptWallet(hist []porcupine.Operation) []porcupine.Operation {
	out := append([]porcupine.Operation(nil), hist...)
	for i := len(out) - 1; i >= 0; i-- {
		if out[i].Input.(walletIn).kind == walletRead {
			o := out[i].Output.(walletOut)
			o.balance++
			out[i].Output = o
			out[i].Metadata = "CORRUPTED: one cent more"
			break
		}
	}
	return out
}

// testWallet is one wallet run under fault f, its check, the ledger, and the
// check of a corrupted copy.
func testWallet(t *testing.T, name string, f fault) {
	start := time.Now()
	r := newWalletRig(t, name)
	t.Logf("%s: cluster, agent and product ready in %.1fs", name, time.Since(start).Seconds())
	load := time.Now()
	hist, s := runWallet(t, r, f, 25*time.Second)
	t.Logf("%s: %d operations in %.1fs: %d reads (%d failed), %d credits, %d orders (%d paid, %d refused for funds, %d for room), %d unknown, %d retried",
		name, len(hist), time.Since(load).Seconds(), s.reads, s.failedReads, s.credits, s.orders, s.paid, s.refused, s.noRoom, s.unknown, s.retried)
	if s.reads < 100 || s.credits < 30 || s.paid < 20 || s.refused < 1 {
		t.Errorf("%s: too little happened to check (%d reads, %d credits, %d paid and %d refused orders)", name, s.reads, s.credits, s.paid, s.refused)
	}
	if s.noRoom != 0 {
		// The agent's node is healthy and far from full: an order while its
		// session moves to the new leader is a 503 node_reconnecting
		// (retried), never a 409 no_capacity.
		t.Errorf("%s: %d orders refused with 409 no_capacity; want 0 (a node between sessions is node_reconnecting)", name, s.noRoom)
	}
	checkBites(t, walletModel, name, hist, "a cent from nowhere", func(h []porcupine.Operation) ([]porcupine.Operation, bool) { return corruptWallet(h), true })
	walletLedger(t, r, hist)
	t.Logf("%s: whole run %.1fs", name, time.Since(start).Seconds())
}

// TestLinearizableWalletLeaderKilled: credits, orders and balance reads
// through all three coordinators while the leader is SIGKILLed and
// restarted (twice); the history must be linearizable for an integer
// balance, each credit and order applied once.
func TestLinearizableWalletLeaderKilled(t *testing.T) {
	testWallet(t, "wallet-kill", faultKill)
}

// TestLinearizableWalletLeaderPaused: the same with the leader SIGSTOPped
// for 6 s and resumed (twice).
func TestLinearizableWalletLeaderPaused(t *testing.T) {
	testWallet(t, "wallet-pause", faultPause)
}
