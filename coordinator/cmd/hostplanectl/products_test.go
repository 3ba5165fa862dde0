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
	// An update changes only the flags given: the hosting quotas, names and
	// locations not given stay (a price change alone reset a hosting plan's
	// quotas to the flags' defaults before, and needed --category --name).
	if err := run(product, g, "create", "web-2", "--category", "hosting", "--name", "Web 2", "--price", "500",
		"--php-workers", "8", "--disk-mib", "20480", "--upload-mib", "256"); err != nil {
		t.Fatal(err)
	}
	if err := run(product, g, "update", "web-2", "--price", "600"); err != nil {
		t.Fatal(err)
	}
	if err := run(product, g, "update", "web-2", "--php-memory-mib", "256", "--name-in", "tr=Web 2 TR"); err != nil {
		t.Fatal(err)
	}
	if err := run(product, g, "update", "web-2"); !errors.As(err, new(usageError)) {
		t.Fatalf("an update without flags: %v, want a usage error", err)
	}
	ps, err := adm.Products(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Slug != "web-2" {
			continue
		}
		if h := p.Specs.Hosting; p.RetailMonthlyUsdCents != 600 || p.NameEn != "Web 2" || p.Category != api.ProductHosting || h == nil ||
			*h != (api.HostingPlan{PHPWorkers: 8, PHPMemoryMiB: 256, MaxExecutionSeconds: 30, UploadMiB: 256, DiskMiB: 20480}) || p.Names["tr"] != "Web 2 TR" {
			t.Fatalf("web-2 after updates: %+v %+v", p, h)
		}
	}
	if err := run(product, g, "retire", "web-2"); err != nil {
		t.Fatal(err)
	}
	if err := run(product, g, "retire", "vps-2"); err != nil {
		t.Fatal(err)
	}
	if err := run(product, g, "update", "nope", "--category", "vps", "--name", "x", "--price", "1", "--vcpu", "1", "--ram-mb", "64", "--disk-gb", "1"); api.StatusOf(err) != 404 {
		t.Fatalf("update of a missing product: %v", err)
	}
	ps, err = adm.Products(ctx)
	var vps2 api.AdminProduct
	for _, p := range ps {
		if p.Slug == "vps-2" {
			vps2 = p
		}
	}
	// The update gave no --name-in: the name in Turkish stays.
	if err != nil || len(ps) != 2 || vps2.RetailMonthlyUsdCents != 1500 || vps2.Specs.DiskGB != 80 || !vps2.Retired || vps2.Names["tr"] != "VPS 2 TR" || len(vps2.Locations) != 2 {
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

// TestProductUpdateKeepsConcurrentChange: product update reads the product,
// overlays the flags given and sends the whole product back; another
// operator's change landing between that read and the write was undone
// silently (the write carried the old value read). The write is now sent
// onto the product as read (If-Match: its updated_at): such an update is a
// 412 naming the product, the other change kept; run again, it applies.
func TestProductUpdateKeepsConcurrentChange(t *testing.T) {
	_, adm, run := cmdCluster(t, newProductCmd)
	ctx := context.Background()
	if err := run("create", "web-3", "--category", "hosting", "--name", "Web 3", "--price", "500", "--php-workers", "8"); err != nil {
		t.Fatal(err)
	}
	web3 := func() api.AdminProduct {
		t.Helper()
		p, ok := find(t, adm.Products, func(p api.AdminProduct) bool { return p.Slug == "web-3" })
		if !ok {
			t.Fatal("web-3 is gone")
		}
		return p
	}
	// Another operator raises the plan's PHP workers while this update of
	// the price is between its read and its write.
	afterProductRead = func() {
		cur := web3()
		q := *cur.Specs.Hosting
		q.PHPWorkers = 16
		cur.Specs.Hosting = &q
		if _, err := adm.UpdateProduct(ctx, "web-3", cur.ProductRequest); err != nil {
			t.Error(err)
		}
	}
	var ae *api.Error
	err := run("update", "web-3", "--price", "700")
	afterProductRead = nil
	if !errors.As(err, &ae) || ae.StatusCode != 412 || !strings.Contains(ae.Message, "web-3") {
		t.Fatalf("an update racing another change: %v, want a 412 naming web-3", err)
	}
	if p := web3(); p.Specs.Hosting.PHPWorkers != 16 || p.RetailMonthlyUsdCents != 500 {
		t.Fatalf("after the refused update: php_workers %d, price %d; want 16 (the other change), 500", p.Specs.Hosting.PHPWorkers, p.RetailMonthlyUsdCents)
	}
	if err := run("update", "web-3", "--price", "700"); err != nil {
		t.Fatal(err)
	}
	if p := web3(); p.Specs.Hosting.PHPWorkers != 16 || p.RetailMonthlyUsdCents != 700 {
		t.Fatalf("after the update run again: php_workers %d, price %d; want 16, 700", p.Specs.Hosting.PHPWorkers, p.RetailMonthlyUsdCents)
	}
}
