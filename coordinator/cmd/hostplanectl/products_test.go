package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestProductCLI drives `hostplanectl product` and `account pricing` against
// a real coordinator: refusals name the field and change nothing; create,
// update, retire and pricing reach the catalogue.
func TestProductCLI(t *testing.T) {
	run := runCmd
	product, account := newProductCmd, newAccountCmd
	wantUsageErrors(t, func(args ...string) error { return run(product, &globals{}, args...) },
		[]string{"create", "vps-2", "--name", "VPS 2", "--price", "1200"},
		[]string{"create", "vps-2", "--category", "vps", "--price", "1200"},
		[]string{"create", "vps-2", "--category", "vps", "--name", "VPS 2"},
		[]string{"create", "vps-2", "--category", "vps", "--name", "VPS 2", "--price", "1", "--name-in", "tr"},
	)
	if testing.Short() {
		return
	}
	_, g, adm := cliCluster(t)
	ctx := context.Background()
	acc, err := adm.CreateAccount(ctx, api.AccountCreateRequest{Email: "reseller@example.com"})
	if err != nil {
		t.Fatal(err)
	}

	var ae *api.Error
	wantFieldRefusals(t, func(args ...string) error { return run(product, g, args...) }, []fieldRefusal{
		{[]string{"create", "VPS", "--category", "vps", "--name", "x", "--price", "1", "--vcpu", "1", "--ram-mb", "1", "--disk-gb", "1"}, `"slug"`},
		{[]string{"create", "vps-2", "--category", "vds", "--name", "x", "--price", "1"}, `"category"`},
		{[]string{"create", "vps-2", "--category", "vps", "--name", "x", "--price", "-1", "--vcpu", "1", "--ram-mb", "1", "--disk-gb", "1"}, `"retail_monthly_usd_cents"`},
		{[]string{"create", "vps-2", "--category", "vps", "--name", "x", "--price", "1"}, `"specs"`},
		// Sizes no agent provisions (below 64 MiB, past 1 TiB of memory, 64
		// vCPUs or 16 TiB of disk; 2^44 MiB is 0 bytes to placement).
		{[]string{"create", "vps-2", "--category", "vps", "--name", "x", "--price", "1", "--vcpu", "1", "--ram-mb", "1", "--disk-gb", "1"}, `"specs"`},
		{[]string{"create", "vps-2", "--category", "vps", "--name", "x", "--price", "1", "--vcpu", "1", "--ram-mb", "17592186044416", "--disk-gb", "1"}, `"specs"`},
		{[]string{"create", "vps-2", "--category", "vps", "--name", "x", "--price", "1", "--vcpu", "4294967295", "--ram-mb", "64", "--disk-gb", "1"}, `"specs"`},
		{[]string{"create", "vps-2", "--category", "vps", "--name", "x", "--price", "1", "--vcpu", "1", "--ram-mb", "64", "--disk-gb", "17179869184"}, `"specs"`},
	})
	if ps, err := adm.Products(ctx); err != nil || len(ps) != 0 {
		t.Fatalf("refusals left products %+v (%v)", ps, err)
	}
	if err := run(product, g, "create", "vps-2", "--category", "vps", "--name", "VPS 2", "--name-in", "tr=VPS 2 TR", "--price", "1200",
		"--vcpu", "2", "--ram-mb", "4096", "--disk-gb", "60", "--locations", "ist-1,ams-1"); err != nil {
		t.Fatal(err)
	}
	if err := run(product, g, "update", "vps-2", "--category", "vps", "--name", "VPS 2", "--price", "1500",
		"--vcpu", "2", "--ram-mb", "4096", "--disk-gb", "80"); err != nil {
		t.Fatal(err)
	}
	if err := run(product, g, "retire", "vps-2"); err != nil {
		t.Fatal(err)
	}
	if err := run(product, g, "update", "nope", "--category", "vps", "--name", "x", "--price", "1", "--vcpu", "1", "--ram-mb", "64", "--disk-gb", "1"); !errors.As(err, &ae) || ae.StatusCode != 404 {
		t.Fatalf("update of a missing product: %v", err)
	}
	ps, err := adm.Products(ctx)
	if err != nil || len(ps) != 1 || ps[0].RetailMonthlyUsdCents != 1500 || ps[0].Specs.DiskGB != 80 || !ps[0].Retired || ps[0].Names != nil {
		t.Fatalf("products %+v (%v)", ps, err)
	}
	if err := run(account, g, "pricing", acc.ID, "--discount", "101"); !errors.As(err, &ae) || !strings.Contains(ae.Message, `"discount_percent"`) {
		t.Fatalf("discount 101: %v", err)
	}
	// A price for a product the catalogue does not hold (a typo) is refused,
	// naming the slug, and changes nothing.
	if err := run(account, g, "pricing", acc.ID, "--discount", "20", "--price", "vps-3=900"); !errors.As(err, &ae) || ae.StatusCode != 400 || !strings.Contains(ae.Message, `"vps-3"`) {
		t.Fatalf("a price for an unknown product: %v", err)
	}
	if p, err := adm.AccountPricing(ctx, acc.ID); err != nil || p.DiscountPercent != 0 || len(p.Prices) != 0 {
		t.Fatalf("the refused pricing left %+v (%v)", p, err)
	}
	if err := run(account, g, "pricing", acc.ID, "--discount", "20", "--price", "vps-2=900"); err != nil {
		t.Fatal(err)
	}
	if err := run(account, g, "pricing", acc.ID); err != nil {
		t.Fatal(err)
	}
	p, err := adm.AccountPricing(ctx, acc.ID)
	if err != nil || p.DiscountPercent != 20 || p.Prices["vps-2"] != 900 {
		t.Fatalf("pricing %+v (%v)", p, err)
	}
}
