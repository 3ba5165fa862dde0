package audit

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestProbe12HostingConflictsAcrossCoordinators: one customer's conflicting
// requests on hosting accounts sent at the same moment through different
// coordinators, as a script with a bug or two browser tabs would.
//
// Two of the customer's sites claim one custom domain at once: exactly one
// gets it, the other is a 409 naming the domain field, and only the winner
// shows it. Three hosting orders at once from a wallet that pays for one:
// one order, two 402 insufficient_funds that charge nothing, the balance
// never below zero. Two orders for one username at once, money for both:
// one order, one debit, the other a 409 naming the username. A site deleted
// twice at once while its node holds the delete: one delete is accepted,
// the other is the 409 action_in_progress naming it, and so are a custom
// domain given to the site then (before: a 200 with the DNS records to
// create for a site about to go) and a verify of the one it had; once the delete is done the site is
// deleted, that domain is free for another site, a delete again is
// refused, and the wallet is refunded at most once for it.
func TestProbe12HostingConflictsAcrossCoordinators(t *testing.T) {
	r := newRig(t)
	// A's calls (and the waits for actions, which poll) on a key whose
	// budget the test cannot spend.
	r.keyA = r.keyOfA(t, api.KeyCreateRequest{Name: "probe12", Scopes: api.AllScopes, RateLimitPerMin: 6000})
	r.c.Credit(r.ctx, r.accA.ID, 2*hostingPrice)
	var sites [2]api.HostingOrder
	for k := range sites {
		r.ordered(t, fmt.Sprint("site ", k), k, r.keyA, "/v1/hosting", hostingBody(fmt.Sprint("p12site", k)), &sites[k], 60*time.Second)
	}
	at := func(reqs ...probe12Req) []framework.Reply {
		return atOnce(reqs, func(q probe12Req) framework.Reply { return r.call(q.i, r.keyA, q.method, q.path, q.body, nil) })
	}
	site := func(h api.HostingAccount) string { return "/v1/hosting/" + h.ID }

	t.Run("two sites claim one domain at once", func(t *testing.T) {
		const dom = "shop.probe12.example"
		reps := at(
			probe12Req{"site 0", 0, "PUT", site(sites[0].Hosting) + "/custom-domain", map[string]string{"domain": dom}},
			probe12Req{"site 1", 1, "PUT", site(sites[1].Hosting) + "/custom-domain", map[string]string{"domain": dom}},
		)
		won := -1
		for k, rep := range reps {
			switch {
			case rep.Status == 200 && won == -1:
				won = k
			case rep.Status == 409 && rep.Code() == "conflict" && strings.Contains(string(rep.Body), `\"domain\"`):
			default:
				t.Errorf("site %d's claim of %s: %s; want one 200, the other 409 conflict naming the domain field", k, dom, rep)
			}
		}
		if won == -1 {
			t.Fatalf("neither site got %s: %v", dom, reps)
		}
		for k, s := range sites {
			rep := r.call(2, r.keyA, "GET", site(s.Hosting)+"/custom-domain", nil, nil)
			has := rep.Status == 200 && strings.Contains(string(rep.Body), dom)
			if has != (k == won) {
				t.Errorf("site %d's custom domain after the race (site %d won): %s", k, won, rep)
			}
		}
	})

	// The third site: three orders at once from a wallet that holds one.
	r.c.Credit(r.ctx, r.accA.ID, 2*hostingPrice-1)
	before := r.charged(r.keyA)
	var third api.HostingOrder
	t.Run("three orders at once, money for one", func(t *testing.T) {
		reps := at(
			probe12Req{"order c", 0, "POST", "/v1/hosting", hostingBody("p12sitec")},
			probe12Req{"order d", 1, "POST", "/v1/hosting", hostingBody("p12sited")},
			probe12Req{"order e", 2, "POST", "/v1/hosting", hostingBody("p12sitee")},
		)
		for k, rep := range reps {
			switch {
			case rep.Status == 201 && third.Hosting.ID == "":
				rep.Decode(t, &third)
			case rep.Status == 402 && rep.Code() == "insufficient_funds":
			default:
				t.Errorf("order %d of three at once: %s; want one 201, the others 402 insufficient_funds", k, rep)
			}
		}
		if third.Hosting.ID == "" {
			t.Fatalf("none of three orders went through: %v", reps)
		}
		framework.WaitActionSuccess(t, r.apis[0].Client(r.keyA), third.Action.ID, 60*time.Second)
		after := r.charged(r.keyA)
		if after.balance != before.balance-hostingPrice || after.hosting != before.hosting+1 || after.invoices != before.invoices+1 {
			t.Errorf("three orders at once with money for one: %+v → %+v; want one site, one invoice, one debit", before, after)
		}
		var txs struct {
			Data []api.WalletTransaction `json:"data"`
		}
		r.get(t, 1, r.keyA, "/v1/billing/wallet/transactions?limit=200", &txs)
		for _, tx := range txs.Data {
			if tx.BalanceAfterUsdCents < 0 {
				t.Errorf("a wallet transaction leaves the balance below zero: %+v", tx)
			}
		}
	})
	if third.Hosting.ID == "" {
		t.FailNow()
	}

	t.Run("two orders for one username at once", func(t *testing.T) {
		r.c.Credit(r.ctx, r.accA.ID, 2*hostingPrice)
		before := r.charged(r.keyA)
		body := hostingBody("p12twin")
		other := hostingBody("p12twin")
		other["domain"] = "p12twin-other.example.com"
		reps := at(
			probe12Req{"order", 1, "POST", "/v1/hosting", body},
			probe12Req{"order again", 2, "POST", "/v1/hosting", other},
		)
		var won api.HostingOrder
		for k, rep := range reps {
			switch {
			case rep.Status == 201 && won.Hosting.ID == "":
				rep.Decode(t, &won)
			case rep.Status == 409 && rep.Code() == "conflict" && strings.Contains(string(rep.Body), `\"username\"`):
			default:
				t.Errorf("order %d of two for one username at once: %s; want one 201, the other 409 conflict naming username", k, rep)
			}
		}
		if won.Hosting.ID == "" {
			t.Fatalf("neither order went through: %v", reps)
		}
		framework.WaitActionSuccess(t, r.apis[0].Client(r.keyA), won.Action.ID, 60*time.Second)
		if after := r.charged(r.keyA); after.balance != before.balance-hostingPrice || after.hosting != before.hosting+1 || after.invoices != before.invoices+1 {
			t.Errorf("two orders for one username at once: %+v → %+v; want one site, one invoice, one debit", before, after)
		}
	})

	t.Run("deleted twice at once, then a custom domain", func(t *testing.T) {
		// The site without a custom domain: the one whose claim lost.
		gone := sites[1].Hosting
		if rep := r.call(0, r.keyA, "GET", site(gone)+"/custom-domain", nil, nil); rep.Status == 200 {
			gone = sites[0].Hosting
		}
		const dom = "blog.probe12.example"
		// A custom domain given before the delete, to verify during it.
		if rep := r.write(1, r.keyA, "PUT", site(gone)+"/custom-domain", map[string]string{"domain": "pre." + dom}); rep.Status != 200 {
			t.Fatalf("custom domain before the delete: %s", rep)
		}
		balance := r.charged(r.keyA).balance
		r.sim.Hold(t)
		reps := at(
			probe12Req{"delete", 0, "DELETE", site(gone), nil},
			probe12Req{"delete again", 1, "DELETE", site(gone), nil},
		)
		var del api.HostingActionAccepted
		for k, rep := range reps[:2] {
			if rep.Status == 202 && del.Action.ID == "" {
				rep.Decode(t, &del)
				continue
			}
			if rep.Status != 409 || rep.Code() != "action_in_progress" {
				t.Errorf("delete %d of two at once: %s; want one 202, the other 409 action_in_progress", k, rep)
			}
		}
		if del.Action.ID == "" {
			t.Fatalf("neither delete accepted: %v", reps)
		}
		for _, rep := range reps[:2] {
			if rep.Status == 409 && !strings.Contains(string(rep.Body), del.Action.ID) {
				t.Errorf("the refused delete does not name the delete under way %s: %s", del.Action.ID, rep)
			}
		}
		// A custom domain for the site being deleted: the 409 naming the
		// delete, as every other change of the site then. Before, a 200
		// with the DNS records to create for the site, dropped with it a
		// moment later.
		for i := range 3 {
			if rep := r.call(i, r.keyA, "PUT", site(gone)+"/custom-domain", map[string]string{"domain": dom}, nil); rep.Status != 409 || rep.Code() != "action_in_progress" || !strings.Contains(string(rep.Body), del.Action.ID) {
				t.Errorf("a custom domain for the site through coordinator %d while its delete %s is under way: %s; want 409 action_in_progress naming it", i, del.Action.ID, rep)
			}
			// Nor is the one it had verified then (it could take the name
			// over from another account's claim for a site about to go).
			if rep := r.call(i, r.keyA, "POST", site(gone)+"/custom-domain/verify", nil, nil); rep.Status != 409 || rep.Code() != "action_in_progress" || !strings.Contains(string(rep.Body), del.Action.ID) {
				t.Errorf("the site's custom domain verified through coordinator %d while its delete %s is under way: %s; want 409 action_in_progress naming it", i, del.Action.ID, rep)
			}
		}
		time.Sleep(time.Second)
		if held := r.sim.Release(t); held != 1 {
			t.Errorf("the agent was sent %d actions while the delete was under way; want it alone", held)
		}
		framework.WaitActionSuccess(t, r.apis[0].Client(r.keyA), del.Action.ID, 60*time.Second)
		var h api.HostingAccount
		r.get(t, 1, r.keyA, site(gone), &h)
		if h.Status != api.HostingDeleted {
			t.Errorf("the site after its delete: %+v", h)
		}
		if rep := r.call(2, r.keyA, "GET", site(gone)+"/custom-domain", nil, nil); rep.Status == 200 {
			t.Errorf("the deleted site's custom domain: %s; want none", rep)
		}
		// The name it was given is free for another site.
		if rep := r.call(0, r.keyA, "PUT", site(third.Hosting)+"/custom-domain", map[string]string{"domain": dom}, nil); rep.Status != 200 {
			t.Errorf("%s for another site once the site it was given is deleted: %s; want 200", dom, rep)
		}
		refunded := r.charged(r.keyA).balance
		for i := range 3 {
			if rep := r.call(i, r.keyA, "DELETE", site(gone), nil, nil); rep.Status != 409 && rep.Status != 404 {
				t.Errorf("a delete of the deleted site through coordinator %d: %s; want 409 or 404", i, rep)
			}
		}
		time.Sleep(time.Second)
		if now := r.charged(r.keyA).balance; now != refunded || refunded-balance > hostingPrice {
			t.Errorf("the wallet: %d before the delete, %d after it, %d after deletes again; want at most one refund of at most %d", balance, refunded, now, hostingPrice)
		}
		var txs struct {
			Data []api.WalletTransaction `json:"data"`
		}
		r.get(t, 1, r.keyA, "/v1/billing/wallet/transactions?limit=200", &txs)
		n := 0
		for _, tx := range txs.Data {
			if tx.Type == api.TxRefund && (tx.InvoiceID == sites[0].Invoice.ID || tx.InvoiceID == sites[1].Invoice.ID) {
				n++
			}
		}
		if n > 1 {
			t.Errorf("%d refunds for one deleted site: %+v", n, txs.Data)
		}
		t.Logf("refunded %d cents for the deleted site", refunded-balance)
	})
}
