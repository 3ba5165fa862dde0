package orders

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestReservedDomainsNotSold: coordinators started with --reserved-domains
// (as an operator writes it: mixed case, a trailing dot) refuse a
// customer's hosting quote and order on a reserved name or a subdomain of
// one, through every coordinator, with a 409 domain_reserved naming
// domain and nothing charged; a near miss (notprovider.example) is sold and
// charged as usual; the operator's hosting create on a reserved name is
// allowed (README: refused for customers, allowed for the operator).
func TestReservedDomainsNotSold(t *testing.T) {
	r := newRig(t, "--reserved-domains", "Provider.Example.,panel.example")
	r.hostingProduct()
	r.credit(hostingPrice)
	for i, d := range []string{"provider.example", "www.provider.example", "shop.panel.example"} {
		req := api.HostingOrderRequest{PlanSlug: "web-t", Domain: d, Username: "shop"}
		_, err := r.api(i).QuoteHosting(r.ctx, req)
		if st, msg := status(err); st != http.StatusConflict || !strings.Contains(msg, `field "domain"`) || !strings.Contains(msg, "reserved") {
			t.Errorf("quote of %s via coordinator %d: %d %s, want 409 naming domain", d, i, st, msg)
		}
		_, err = r.api(i).OrderHosting(r.ctx, req, "")
		var ae *api.Error
		if st, msg := status(err); st != http.StatusConflict || !strings.Contains(msg, `field "domain"`) || !errors.As(err, &ae) || ae.Code != "domain_reserved" {
			t.Errorf("order of %s via coordinator %d: %d %s, want 409 domain_reserved naming domain", d, i, st, msg)
		}
	}
	if b, n := r.balance(), len(firstPage(r, r.api(1).Hosting)); b != hostingPrice || n != 0 {
		t.Fatalf("after the refused orders: balance %d (want %d), %d hosting accounts (want 0)", b, hostingPrice, n)
	}
	o, err := r.api(2).OrderHosting(r.ctx, api.HostingOrderRequest{PlanSlug: "web-t", Domain: "notprovider.example", Username: "shop"}, "")
	if err != nil || o.Hosting.Domain != "notprovider.example" {
		t.Fatalf("order of notprovider.example: %+v %v", o, err)
	}
	if b := r.balance(); b != 0 {
		t.Fatalf("balance %d after the near miss's order, want 0", b)
	}
	if _, err := r.c.AnyAlive(nil).Admin().CreateHosting(r.ctx, api.AdminHostingCreateRequest{AccountID: r.acc, Plan: "hosting-starter",
		Domain: "www.provider.example", Username: "staff"}); err != nil {
		t.Fatalf("operator's hosting create on a reserved name: %v", err)
	}
}
