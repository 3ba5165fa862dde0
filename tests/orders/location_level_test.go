package orders

import (
	"net/http"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestProductLocationsBelowLevel2: while the cluster is below semantics level
// 2 (a rolling upgrade: one coordinator still of the older release) no node
// can be put in a location (CmdNodeLocation needs level 2), so a product's
// locations cannot place an order: an order for a product that lists
// locations, with or without one of them, is placed as before 35a2ef9 (the
// location checked against the product's, any node), not refused 409
// no_capacity for want of a node in a location nobody can set yet. A
// location the product is not offered in is still a 400.
func TestProductLocationsBelowLevel2(t *testing.T) {
	// Every coordinator acts as the older release (tests/upgrade's way: a
	// cluster started new raises its level before the others join); the
	// code serving the orders is this one's.
	r := newRigFlags(t, func(int) []string { return []string{"--test-max-semantics-level=1"} })
	adm := r.c.AnyAlive(nil).Admin()
	if st, err := adm.ClusterStatus(r.ctx); err != nil || st.Level > 1 {
		t.Fatalf("cluster status: level %d %v, want 1", st.Level, err)
	}
	if _, err := adm.SetNodeLocation(r.ctx, "orders-node-1", "fra-1"); err == nil {
		t.Fatal("a node's location set below level 2")
	}
	if _, err := adm.CreateProduct(r.ctx, "vps-fra", api.ProductRequest{Category: api.ProductVPS, NameEn: "VPS Fra", RetailMonthlyUsdCents: 400,
		Specs: api.ProductSpecs{VCPU: 1, RAMMB: 256, DiskGB: 1}, Locations: []string{"fra-1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateProduct(r.ctx, "web-fra", api.ProductRequest{Category: api.ProductHosting, NameEn: "Web Fra",
		RetailMonthlyUsdCents: 600, Specs: api.ProductSpecs{Hosting: &webQuota}, Locations: []string{"fra-1"}}); err != nil {
		t.Fatal(err)
	}
	r.credit(100_000)
	// Quoted as ordered: placed anywhere, so priced (not the 409 a quote
	// for a location no node is in is at level 2).
	quoteLocations(t, r, map[string]int{"": http.StatusOK, "fra-1": http.StatusOK, "ist-1": http.StatusBadRequest}, "vps-fra", "")
	for i, loc := range []string{"", "fra-1"} {
		req := order(300 + i)
		req.PlanSlug, req.Location = "vps-fra", loc
		if o, err := r.api(i).OrderServer(r.ctx, req, ""); err != nil {
			t.Errorf("server order of vps-fra (locations fra-1) in %q at level 1: %v, want placed", loc, err)
		} else if o.Server.Location != "" {
			t.Errorf("server order in %q at level 1 shows location %q", loc, o.Server.Location)
		}
		h := hostingOrder([]string{"lvlweb", "lvlfra"}[i])
		h.PlanSlug, h.Location = "web-fra", loc
		if _, err := r.api(i).OrderHosting(r.ctx, h, ""); err != nil {
			t.Errorf("hosting order of web-fra (locations fra-1) in %q at level 1: %v, want placed", loc, err)
		}
	}
	req := order(310)
	req.PlanSlug, req.Location = "vps-fra", "ist-1"
	if st, msg := status(func() error { _, err := r.api(2).OrderServer(r.ctx, req, ""); return err }()); st != http.StatusBadRequest {
		t.Errorf("vps-fra in ist-1 (not offered there) at level 1: %d %s, want 400", st, msg)
	}
}
