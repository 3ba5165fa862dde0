package audit

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestAdminMoneyRetriesApplyOnce: an operator (or a billing script) whose
// `wallet credit` or `invoice issue --pay-from-wallet` lost its answer runs
// it again with the same --idempotency-key, on any coordinator: the account
// is credited, invoiced and charged once, and the retry prints the first
// transaction or invoice. The same key with other flags is refused and
// changes nothing; without a key each run is its own credit, as before.
func TestAdminMoneyRetriesApplyOnce(t *testing.T) {
	c, ld := plainCluster(t)
	f, g := c.Nodes[(ld+1)%c.Len()], c.Nodes[(ld+2)%c.Len()]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	acc, _, err := c.NewAccount(ctx, "retries@example.com")
	if err != nil {
		t.Fatal(err)
	}
	balance := func() int64 {
		t.Helper()
		a, err := c.Admin(ld).Account(ctx, acc.ID)
		if err != nil {
			t.Fatal(err)
		}
		return a.BalanceUsdCents
	}
	credit := func(p *framework.CoordinatorProcess, amount string, key ...string) (ctlRun, api.WalletTransaction) {
		t.Helper()
		args := append([]string{"--json", "wallet", "credit", acc.ID, "--amount", amount, "--gateway", "stripe"}, key...)
		r := ctl(t, p, args...)
		var tx api.WalletTransaction
		if r.code == 0 {
			if err := json.Unmarshal([]byte(r.stdout), &tx); err != nil {
				t.Fatalf("%s: %v", r, err)
			}
		}
		return r, tx
	}
	r1, tx1 := credit(f, "25", "--idempotency-key", "ch_3PqX")
	r2, tx2 := credit(g, "25", "--idempotency-key", "ch_3PqX")
	if r1.code != 0 || r2.code != 0 || tx1.ID == "" || tx2.ID != tx1.ID || tx2.BalanceAfterUsdCents != 2500 {
		t.Fatalf("a credit and its retry under one key: %s / %s; want the same transaction twice", r1, r2)
	}
	if got := balance(); got != 2500 {
		t.Fatalf("balance after a credit and its retry: %d, want 2500", got)
	}
	if r, _ := credit(f, "30", "--idempotency-key", "ch_3PqX"); r.code == 0 || !strings.Contains(r.stderr, "422") && !strings.Contains(strings.ToLower(r.stderr), "idempotency") {
		t.Errorf("the key with another amount: %s; want a refusal naming the key", r)
	}
	if got := balance(); got != 2500 {
		t.Errorf("balance after the refused reuse: %d, want 2500", got)
	}
	// Without a key, each run is a credit (nothing changed for scripts that never retry).
	credit(f, "1")
	credit(f, "1")
	if got := balance(); got != 2700 {
		t.Errorf("two credits without a key: balance %d, want 2700", got)
	}

	issue := func(p *framework.CoordinatorProcess) (ctlRun, api.Invoice) {
		t.Helper()
		r := ctl(t, p, "--json", "invoice", "issue", acc.ID, "--line", "Setup fee=12.00", "--pay-from-wallet", "--idempotency-key", "setup-"+acc.ID)
		var inv api.Invoice
		if r.code == 0 {
			if err := json.Unmarshal([]byte(r.stdout), &inv); err != nil {
				t.Fatalf("%s: %v", r, err)
			}
		}
		return r, inv
	}
	ri1, inv1 := issue(f)
	ri2, inv2 := issue(g)
	if ri1.code != 0 || ri2.code != 0 || inv1.ID == "" || inv2.ID != inv1.ID || inv1.Status != api.InvoicePaid {
		t.Fatalf("an invoice and its retry under one key: %s / %s; want the same paid invoice twice", ri1, ri2)
	}
	if got := balance(); got != 1500 {
		t.Errorf("balance after a paid invoice and its retry: %d, want 1500 (charged once)", got)
	}
}
