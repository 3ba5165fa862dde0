package mcpserver_test

import (
	"context"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/registrar"
	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
)

// orderRig is a 1-node cluster for the order tools: an in-memory registry
// (moved.test registered there by another registrar, auth code
// s3cret-Code-42), the domain-test product (.test at 1000 a year), and an
// account with scopes and credit cents in its wallet.
type orderRig struct {
	c   *testcluster.Cluster
	acc api.Account
	key string
}

// orderContact is a registrant contact the domain routes take.
var orderContact = map[string]any{"name": "Ada Lovelace", "street": []string{"1 Analytical St"}, "city": "Istanbul", "cc": "TR", "email": "ada@example.com"}

func newOrderRig(t *testing.T, email string, credit int64, scopes ...string) *orderRig {
	t.Helper()
	reg := registrar.NewMemory(nil, "test")
	c := testcluster.New(t, 1, func(_ int, cfg *server.Config) { cfg.DomainReg.Registrar = reg })
	ctx := context.Background()
	if _, err := c.Admin(0).CreateProduct(ctx, "domain-test", api.ProductRequest{Category: api.ProductDomain, NameEn: ".test", Tld: "test", RetailYearlyUsdCents: 1000}); err != nil {
		t.Fatal(err)
	}
	acc, key := c.NewAccount(email, scopes...)
	if _, err := c.Admin(0).CreditWallet(ctx, acc.ID, api.WalletCreditRequest{AmountUsdCents: credit, Gateway: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Register(ctx, registrar.RegisterRequest{ClTRID: "other-1", Name: "moved.test", Years: 1, AuthCode: "s3cret-Code-42"}); err != nil {
		t.Fatal(err)
	}
	return &orderRig{c: c, acc: acc, key: key}
}

// balance is the account's wallet balance.
func (r *orderRig) balance(t *testing.T) int64 {
	t.Helper()
	a, err := r.c.Admin(0).Account(context.Background(), r.acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	return a.BalanceUsdCents
}
