package audit

import (
	"crypto/rand"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestProbe14Domains probes the domain routes as a careless or hostile
// customer would, written from the seeds and SPEC.md (and the contract the
// coordinator publishes in /openapi.json where the seeds are silent): what
// a customer checks is the status, an error naming the field, and that
// nothing changed (the wallet, the registry, the list).
//
//   - A reseller's discount (444host seed, v1.2: "accounts with a reseller
//     discount see and pay discounted prices on GET /v1/products and API
//     orders; renewals inherit the discounted price") holds for domains as
//     it does for servers: the products list, check, quote, the order's
//     charge and the domain's renewal price all say the discounted price,
//     and B still pays retail.
//   - Order bodies of the wrong type or out of bounds are 400s naming the
//     field that charge nothing and reach no registry.
//   - Names a registrar cannot take (a third-level name, a 64-character
//     label, more than 253 characters, broken A-labels, symbols) are 400s
//     naming name, and so are two trailing dots; a name in capitals with
//     one trailing dot is the one domain in its lower-case form.
//   - A transfer with a well-formed but wrong auth code moves nothing and
//     costs nothing; a transfer of a domain already here is refused.
//   - An Idempotency-Key reused with another body is a 422 that charges
//     nothing.
//   - Ids of every shape that are not the caller's are 404s alike to an
//     unknown id, on GET and PATCH.
//   - Another account's name spelled with a full-width or ideographic dot,
//     in decomposed Unicode, in capitals or as its A-label is not
//     available and not bought again.
//   - Nameservers under the name being ordered (no glue): refused, or the
//     money follows the outcome (registered and charged, or failed and
//     refunded).
//   - A transfer sent again with its Idempotency-Key across a leader kill
//     while the registry is slow is one transfer at the registry and one
//     charge; one the registry refuses, sent across another kill, is
//     refunded once (the balance ends where it began).
func TestProbe14Domains(t *testing.T) {
	const rival, rivalPW = "rival-reg", "rival-pw-1"
	d := &domRig{rig: newRigWith(t, framework.EPPDOptions{TLDs: []string{"test"}, Clients: map[string]string{framework.EPPDClientID: framework.EPPDPassword, rival: rivalPW}})}
	const funds = 20 * domainPrice
	d.c.Credit(d.ctx, d.accA.ID, funds)
	d.c.Credit(d.ctx, d.accB.ID, funds)
	adm := d.c.AnyAlive(nil).Admin()
	if _, err := adm.SetAccountPricing(d.ctx, d.accA.ID, api.AccountPricing{DiscountPercent: 25}); err != nil {
		t.Fatal(err)
	}
	const yours = domainPrice * 75 / 100

	// nothingChanged: B's wallet, domains and the registry's creates and
	// transfers are as they were.
	creates0 := func() int { return d.reg.Applied("domain:create", "") }
	nothingChanged := func(t *testing.T, what string, creates int) {
		t.Helper()
		d.settled(d.keyB)
		if b := d.balance(d.keyB); b != funds {
			t.Errorf("%s: B's balance %d, want %d", what, b, funds)
		}
		if l := d.domains(d.keyB); len(l) != 0 {
			t.Errorf("%s: B holds %+v", what, l)
		}
		if n := creates0(); n != creates {
			t.Errorf("%s: %d creates at the registry, want %d", what, n, creates)
		}
	}

	// stayedWithRival: once A's domains settle, A's records of name (if the
	// transfer was not refused outright) are failed ones and the registry
	// still has name at the rival registrar.
	stayedWithRival := func(t *testing.T, name, what string) {
		t.Helper()
		d.settled(d.keyA)
		for _, x := range d.named(d.keyA, name) {
			if x.Status != api.DomainFailed {
				t.Errorf("%s: %+v, want failed or refused", what, x)
			}
		}
		if r := d.reg.Domain(name); r == nil || r.ClID != rival {
			t.Errorf("the registry's %s after %s: %+v", name, what, r)
		}
	}

	t.Run("a reseller's discount holds for domains", func(t *testing.T) {
		var prods api.ProductList
		if rep := d.call(0, d.keyA, "GET", "/v1/products", nil, nil); rep.Status != 200 {
			t.Fatalf("%s", rep)
		} else {
			rep.Decode(t, &prods)
		}
		for _, p := range prods.Data {
			if p.Slug == "test-a" && (p.RetailYearlyUsdCents != domainPrice || p.YourYearlyUsdCents != yours) {
				t.Errorf("A's products list for .test: retail %d, yours %d; want %d, %d", p.RetailYearlyUsdCents, p.YourYearlyUsdCents, domainPrice, yours)
			}
		}
		var c api.DomainCheck
		d.call(1, d.keyA, "GET", "/v1/domains/check?name=reseller.test", nil, nil).Decode(t, &c)
		if c.YearlyUsdCents != yours {
			t.Errorf("A's check of reseller.test: %+v, want %d a year", c, yours)
		}
		b := domainBody("reseller.test")
		b["years"] = 2
		var q api.DomainQuote
		d.call(2, d.keyA, "POST", "/v1/domains/quote", b, nil).Decode(t, &q)
		if q.YearlyUsdCents != yours || q.TotalUsdCents != 2*yours {
			t.Errorf("A's quote of two years: %+v, want %d a year", q, yours)
		}
		var qb api.DomainQuote
		d.call(2, d.keyB, "POST", "/v1/domains/quote", b, nil).Decode(t, &qb)
		if qb.YearlyUsdCents != domainPrice || qb.TotalUsdCents != 2*domainPrice {
			t.Errorf("B's quote of two years (retail): %+v", qb)
		}
		before := d.balance(d.keyA)
		rep := d.write(0, d.keyA, "POST", "/v1/domains", b)
		if rep.Status != http.StatusCreated && rep.Status != http.StatusAccepted {
			t.Fatalf("%s", rep)
		}
		var x api.Domain
		rep.Decode(t, &x)
		d.settled(d.keyA)
		x = d.domain(d.keyA, x.ID)
		if spent := before - d.balance(d.keyA); spent != q.TotalUsdCents || x.YearlyUsdCents != yours {
			t.Errorf("the order charged %d (the quote said %d); the domain renews at %d, want %d", spent, q.TotalUsdCents, x.YearlyUsdCents, yours)
		}
		if x.InvoiceID == "" {
			t.Fatalf("the registered domain names no invoice: %+v", x)
		}
		var inv api.Invoice
		d.get(t, 1, d.keyA, "/v1/billing/invoices/"+x.InvoiceID, &inv)
		if inv.TotalUsdCents != q.TotalUsdCents || inv.Status != api.InvoicePaid {
			t.Errorf("the order's invoice: %d cents %s, want %d paid", inv.TotalUsdCents, inv.Status, q.TotalUsdCents)
		}
	})

	t.Run("order bodies of the wrong type or out of bounds", func(t *testing.T) {
		creates := creates0()
		for _, c := range []struct {
			field string
			set   any
		}{
			{"years", "1"}, {"years", 1.5}, {"years", 0}, {"years", -1}, {"years", 11}, {"years", 1e9}, {"years", 9223372036854775807}, {"years", true},
			{"name", 42}, {"name", []string{"a.test"}}, {"name", ""}, {"name", nil},
			{"auto_renew", "true"}, {"auto_renew", 1}, {"whois_privacy", "yes"},
			{"nameservers", "ns1.example.net"}, {"nameservers", []string{"ns1.example.net"}}, {"nameservers", []any{"ns1.example.net", 2}},
			{"nameservers", make([]string, 14)}, {"contact", "Ada"}, {"contact", nil},
		} {
			b := domainBody("types-probe.test")
			b[c.field] = c.set
			for _, path := range []string{"/v1/domains", "/v1/domains/quote"} {
				rep := d.call(1, d.keyB, "POST", path, b, map[string]string{"Idempotency-Key": "types-" + rand.Text()})
				if rep.Status != http.StatusBadRequest || !strings.Contains(string(rep.Body), c.field) {
					t.Errorf("POST %s with %s %#v: %s, want 400 naming %s", path, c.field, c.set, rep, c.field)
				}
			}
		}
		b := domainBody("types-probe.test")
		b["price_usd_cents"] = 1
		if rep := d.call(0, d.keyB, "POST", "/v1/domains", b, nil); rep.Status != http.StatusBadRequest || !strings.Contains(string(rep.Body), "price_usd_cents") {
			t.Errorf("an order naming its own price: %s, want 400 naming price_usd_cents", rep)
		}
		for _, raw := range []string{`{"name":"types-probe.test","name":"other.test","contact":{}}`, `[]`, `null`, `{"name":"types-probe.test"`, "\xef\xbb\xbf{}"} {
			if rep := d.call(2, d.keyB, "POST", "/v1/domains", raw, map[string]string{"Content-Type": "application/json"}); rep.Status != http.StatusBadRequest {
				t.Errorf("POST /v1/domains %q: %s, want 400", raw, rep)
			}
		}
		nothingChanged(t, "bad order bodies", creates)
	})

	t.Run("names a registrar cannot take", func(t *testing.T) {
		creates := creates0()
		long := strings.Repeat(strings.Repeat("a", 63)+".", 4) + "test" // 256 characters
		for _, name := range []string{
			"www.third-level.test", "a.b.c.test", strings.Repeat("a", 64) + ".test", long, strings.Repeat("a", 250) + ".test",
			"xn--zz.test", "xn--.test", "xn--ay-evi-vua-.test", "xn--a.test", "☃.test", "a\u0301b\u200d.test", "\u0627\u0031b.test",
			"-dash.test", "dash-.test", "ab--cd.test", "under_score.test", "sp ace.test", "tab\t.test", "new\nline.test",
			"x..test", ".x.test", "x.test..", "x.TEST\x00", "%78.test", "x.test\r\nX-Injected: 1",
			"<x>.test", "x\";.test", "x.invalid", "localhost", "test", "", " ", strings.Repeat("é", 300) + ".test",
		} {
			for _, path := range []string{"/v1/domains", "/v1/domains/quote"} {
				rep := d.call(0, d.keyB, "POST", path, domainBody(name), nil)
				if rep.Status != http.StatusBadRequest || !strings.Contains(string(rep.Body), "name") {
					t.Errorf("POST %s %q: %s, want 400 naming name", path, name, rep)
				}
			}
			q := d.call(1, d.keyB, "GET", "/v1/domains/check?name="+url.QueryEscape(name), nil, nil)
			if q.Status != http.StatusBadRequest || !strings.Contains(string(q.Body), "name") {
				t.Errorf("check %q: %s, want 400 naming name", name, q)
			}
			tr := d.call(2, d.keyB, "POST", "/v1/domains/transfer", map[string]any{"name": name, "auth_code": "Good-Code-1", "contact": contact}, nil)
			if tr.Status != http.StatusBadRequest || !strings.Contains(string(tr.Body), "name") {
				t.Errorf("transfer %q: %s, want 400 naming name", name, tr)
			}
		}
		for _, q := range []string{"name=a.test&name=b.test", "", "name", "nam=a.test", "name=a.test&years=2"} {
			rep := d.call(1, d.keyB, "GET", "/v1/domains/check?"+q, nil, nil)
			if rep.Status != http.StatusBadRequest {
				t.Errorf("check ?%s: %s, want 400", q, rep)
			}
		}
		nothingChanged(t, "unorderable names", creates)

		// Two trailing dots are refused with a 400 naming name; one is
		// the root's, dropped as for every host name (validate.DomainInput).
		if rep := d.call(0, d.keyB, "POST", "/v1/domains", domainBody("upper-dot.test.."), nil); rep.Status != http.StatusBadRequest || !strings.Contains(string(rep.Body), "name") {
			t.Errorf("upper-dot.test..: %s, want 400 naming name", rep)
		}
		// Capitals and a trailing dot: the one domain, in lower case.
		rep := d.write(0, d.keyB, "POST", "/v1/domains", domainBody("Upper-Dot.TEST."))
		if rep.Status != http.StatusCreated && rep.Status != http.StatusAccepted {
			t.Fatalf("Upper-Dot.TEST.: %s", rep)
		}
		var x api.Domain
		rep.Decode(t, &x)
		d.settled(d.keyB)
		if x.Name != "upper-dot.test" || d.reg.Domain("upper-dot.test") == nil {
			t.Errorf("Upper-Dot.TEST ordered as %q (the registry: %+v)", x.Name, d.reg.Domain("upper-dot.test"))
		}
		if again := d.call(1, d.keyB, "POST", "/v1/domains", domainBody("upper-dot.test"), nil); again.Status < 400 || again.Status >= 500 {
			t.Errorf("B orders its own upper-dot.test again: %s, want a 4xx", again)
		}
		if n := len(d.named(d.keyB, "upper-dot.test")); n != 1 {
			t.Errorf("B holds upper-dot.test %d times", n)
		}
		// B's name in other spellings that map to it (a full-width dot,
		// an IDN in decomposed form): A cannot order it again.
		idn := d.write(1, d.keyB, "POST", "/v1/domains", domainBody("çay-probe.test"))
		if idn.Status != http.StatusCreated && idn.Status != http.StatusAccepted {
			t.Fatalf("çay-probe.test: %s", idn)
		}
		d.settled(d.keyB)
		before := d.balance(d.keyA)
		for _, name := range []string{"upper-dot\uff0etest", "upper-dot\u3002test", "c\u0327ay-probe.test", "ÇAY-PROBE.test", "xn--ay-probe-r0a.test"} {
			if rep := d.call(2, d.keyA, "POST", "/v1/domains", domainBody(name), nil); rep.Status < 400 || rep.Status >= 500 {
				t.Errorf("A orders B's name as %q: %s, want a 4xx", name, rep)
			}
			var c api.DomainCheck
			if rep := d.call(0, d.keyA, "GET", "/v1/domains/check?name="+url.QueryEscape(name), nil, nil); rep.Status == http.StatusOK {
				rep.Decode(t, &c)
				if c.Available {
					t.Errorf("check of B's name as %q: %s", name, rep)
				}
			} else if rep.Status != http.StatusBadRequest {
				t.Errorf("check of B's name as %q: %s", name, rep)
			}
		}
		d.settled(d.keyA)
		if b := d.balance(d.keyA); b != before {
			t.Errorf("A's orders of B's names moved A's balance %d → %d", before, b)
		}
	})

	t.Run("transfers that must move nothing", func(t *testing.T) {
		d.reg.RegisterAs(rival, rivalPW, "held-elsewhere.test", "Right-Code-1")
		before, transfers := d.balance(d.keyA), len(d.reg.Transactions("domain:transfer:request", ""))
		rep := d.call(1, d.keyA, "POST", "/v1/domains/transfer", map[string]any{"name": "held-elsewhere.test", "auth_code": "Wrong-Code-1", "contact": contact}, nil)
		if rep.Status >= 500 {
			t.Fatalf("a wrong auth code: %s", rep)
		}
		stayedWithRival(t, "held-elsewhere.test", "a transfer with a wrong auth code")
		if b := d.balance(d.keyA); b != before {
			t.Errorf("a transfer with a wrong auth code: balance %d → %d (answer %s)", before, b, rep)
		}
		// A domain already here, A's own or B's: refused, no charge, no
		// registry transfer.
		own := d.active(0, "mine-already.test")
		before = d.balance(d.keyA)
		for _, key := range []string{d.keyA, d.keyB} {
			rep := d.call(2, key, "POST", "/v1/domains/transfer", map[string]any{"name": "MINE-already.test.", "auth_code": "Any-Code-1", "contact": contact}, nil)
			if rep.Status < 400 || rep.Status >= 500 || strings.Contains(string(rep.Body), own.ID) && key == d.keyB {
				t.Errorf("a transfer in of a domain already here: %s, want a 4xx", rep)
			}
		}
		d.settled(d.keyA)
		if b := d.balance(d.keyA); b != before {
			t.Errorf("transfers of mine-already.test moved A's balance %d → %d", before, b)
		}
		if n := len(d.named(d.keyA, "mine-already.test")); n != 1 {
			t.Errorf("A holds mine-already.test %d times", n)
		}
		if n := len(d.reg.Transactions("domain:transfer:request", "")) - transfers; n > 1 {
			t.Errorf("%d transfers reached the registry, want at most the wrong-code one", n)
		}
	})

	t.Run("an Idempotency-Key reused with another body", func(t *testing.T) {
		before, creates := d.balance(d.keyA), creates0()
		hdr := map[string]string{"Idempotency-Key": "probe14-reuse"}
		first := d.call(0, d.keyA, "POST", "/v1/domains", domainBody("reused-key.test"), hdr)
		if first.Status != http.StatusCreated && first.Status != http.StatusAccepted {
			t.Fatalf("%s", first)
		}
		for i, b := range []map[string]any{domainBody("other-key.test"), func() map[string]any { x := domainBody("reused-key.test"); x["years"] = 2; return x }()} {
			rep := d.call(i+1, d.keyA, "POST", "/v1/domains", b, hdr)
			if rep.Status != http.StatusUnprocessableEntity {
				t.Errorf("the key with body %v: %s, want 422", b, rep)
			}
		}
		tr := d.call(2, d.keyA, "POST", "/v1/domains/transfer", map[string]any{"name": "reused-key.test", "auth_code": "Any-Code-1", "contact": contact}, hdr)
		if tr.Status < 400 || tr.Status >= 500 {
			t.Errorf("the key on a transfer: %s, want a 4xx", tr)
		}
		d.settled(d.keyA)
		if spent := before - d.balance(d.keyA); spent != yours {
			t.Errorf("one order and two reuses of its key charged %d, want %d", spent, yours)
		}
		if n := creates0() - creates; n != 1 {
			t.Errorf("%d creates at the registry, want 1", n)
		}
		if n := len(d.named(d.keyA, "other-key.test")); n != 0 {
			t.Errorf("other-key.test registered %d times under a reused key", n)
		}
	})

	t.Run("ids that are not the caller's", func(t *testing.T) {
		mine := d.named(d.keyA, "mine-already.test")
		if len(mine) != 1 {
			t.Fatalf("mine-already.test: %+v", mine)
		}
		id := mine[0].ID
		base := d.call(0, d.keyB, "GET", "/v1/domains/"+unknown(id), nil, nil)
		if base.Status != http.StatusNotFound {
			t.Fatalf("an unknown id: %s", base)
		}
		for _, p := range []string{id, strings.ToUpper(id), id + "%20", id + "%00", "..%2F" + id, url.PathEscape(id + "/"), strings.Repeat("dom_", 400), "%E2%98%83", mine[0].Name, "dom_%27%20OR%201%3D1"} {
			for _, m := range []string{"GET", "PATCH"} {
				var body any
				if m == "PATCH" {
					body = map[string]any{"auto_renew": false}
				}
				rep := d.call(1, d.keyB, m, "/v1/domains/"+p, body, nil)
				if rep.Status != http.StatusNotFound || rep.Code() != base.Code() || strings.Contains(string(rep.Body), d.accA.ID) {
					t.Errorf("B %s /v1/domains/%.40s: %s, want the 404 %s", m, p, rep, base.Code())
				}
			}
		}
		if x := d.domain(d.keyA, id); !x.AutoRenew {
			t.Errorf("B's PATCHes turned A's auto_renew off: %+v", x)
		}
	})

	t.Run("nameservers under the name being ordered", func(t *testing.T) {
		// In-bailiwick nameservers need glue the order cannot carry: a
		// 400 naming nameservers, or an order that either registers the
		// name with them or fails and refunds. Never a charge for nothing.
		before, creates := d.balance(d.keyA), creates0()
		b := domainBody("glue-self.test")
		b["nameservers"] = []string{"ns1.glue-self.test", "ns2.glue-self.test"}
		rep := d.call(1, d.keyA, "POST", "/v1/domains", b, map[string]string{"Idempotency-Key": "probe14-glue"})
		d.settled(d.keyA)
		got := d.named(d.keyA, "glue-self.test")
		r := d.reg.Domain("glue-self.test")
		switch {
		case rep.Status == http.StatusBadRequest:
			if !strings.Contains(string(rep.Body), "nameservers") || len(got) != 0 || d.balance(d.keyA) != before || creates0() != creates {
				t.Errorf("a 400 (%s) that changed something: %+v, balance %d → %d", rep, got, before, d.balance(d.keyA))
			}
		case rep.Status == http.StatusCreated || rep.Status == http.StatusAccepted:
			if len(got) != 1 {
				t.Fatalf("glue-self.test: %+v", got)
			}
			switch got[0].Status {
			case api.DomainActive:
				if r == nil || !sameSet(r.NS, got[0].Nameservers) || before-d.balance(d.keyA) != yours {
					t.Errorf("active glue-self.test %+v; the registry %+v; charged %d", got[0], r, before-d.balance(d.keyA))
				}
			case api.DomainFailed:
				if d.balance(d.keyA) != before || r != nil {
					t.Errorf("failed glue-self.test (%s) not refunded: balance %d → %d, the registry %+v", got[0].StatusReason, before, d.balance(d.keyA), r)
				}
			default:
				t.Errorf("glue-self.test: %+v", got[0])
			}
		default:
			if rep.Status >= 500 || d.balance(d.keyA) != before {
				t.Errorf("glue-self.test: %s, balance %d → %d", rep, before, d.balance(d.keyA))
			}
		}
		t.Logf("in-bailiwick nameservers: %s; the domain %+v; the registry %+v", rep, got, r)
	})

	// transferAcrossKill sends A's transfer through a follower while the
	// registry holds it 4 s, kills the leader while it is held, and sends the
	// same key again through the third coordinator until it is answered
	// (not a 5xx, not in flight); that answer is returned.
	transferAcrossKill := func(t *testing.T, body map[string]any, hdr map[string]string) framework.Reply {
		t.Helper()
		ld, f := d.leaderAndFollower()
		d.reg.DelayNextOn("domain:transfer", 1, 4*time.Second)
		done := make(chan framework.Reply, 1)
		go func() {
			r, _ := d.apis[f].Try(d.keyA, "POST", "/v1/domains/transfer", body, hdr)
			done <- r
		}()
		// Kill once the registry holds the transfer (its delay taken), not
		// after a guess at how long the call takes to reach it.
		framework.WaitFor(t, "the registry to hold the transfer", 30*time.Second, 20*time.Millisecond, func() bool {
			return d.reg.Stats().DelayNext == 0
		})
		d.c.Kill(ld)
		t.Logf("the first send's answer: %s", <-done)
		other := (ld + 2) % 3
		var last framework.Reply
		framework.WaitFor(t, "an answer to the key sent again", 45*time.Second, 500*time.Millisecond, func() bool {
			r, err := d.apis[other].Try(d.keyA, "POST", "/v1/domains/transfer", body, hdr)
			last = r
			return err == nil && r.Status < 500 && r.Code() != "idempotency_key_in_flight"
		})
		return last
	}

	// Last: it kills the leader.
	t.Run("a transfer's key sent again across a leader kill", func(t *testing.T) {
		d.reg.RegisterAs(rival, rivalPW, "moving-kill.test", "Kill-Code-1")
		before, transfers := d.balance(d.keyA), d.reg.Applied("domain:transfer:request", "moving-kill.test")
		hdr := map[string]string{"Idempotency-Key": "probe14-transfer-kill"}
		body := map[string]any{"name": "moving-kill.test", "auth_code": "Kill-Code-1", "contact": contact}
		last := transferAcrossKill(t, body, hdr)
		if last.Status != http.StatusCreated && last.Status != http.StatusAccepted {
			t.Fatalf("the key's answer: %s", last)
		}
		d.settled(d.keyA)
		got := d.named(d.keyA, "moving-kill.test")
		if len(got) != 1 || got[0].Status != api.DomainActive {
			t.Fatalf("moving-kill.test: %+v", got)
		}
		if n := d.reg.Applied("domain:transfer:request", "moving-kill.test") - transfers; n != 1 {
			t.Errorf("the registry applied %d transfers of moving-kill.test", n)
		}
		if r := d.reg.Domain("moving-kill.test"); r == nil || r.ClID != framework.EPPDClientID {
			t.Errorf("the registry's moving-kill.test: %+v", r)
		}
		if spent := before - d.balance(d.keyA); spent != yours {
			t.Errorf("one transfer sent again across a kill charged %d, want %d", spent, yours)
		}
	})

	// After the kill above: the killed coordinator back, then a refused
	// transfer across another kill.
	t.Run("a refused transfer across a leader kill is refunded once", func(t *testing.T) {
		for i := range d.c.Len() {
			if !d.c.Running(i) {
				d.c.Restart(i)
			}
		}
		d.reg.RegisterAs(rival, rivalPW, "refused-kill.test", "Right-Code-2")
		before := d.balance(d.keyA)
		hdr := map[string]string{"Idempotency-Key": "probe14-refused-kill"}
		body := map[string]any{"name": "refused-kill.test", "auth_code": "Wrong-Code-2", "contact": contact}
		last := transferAcrossKill(t, body, hdr)
		t.Logf("the key's answer: %s", last)
		stayedWithRival(t, "refused-kill.test", "a refused transfer across a kill")
		time.Sleep(2 * time.Second) // a second refund would have landed
		if b := d.balance(d.keyA); b != before {
			t.Errorf("a refused transfer across a kill: balance %d → %d, want it unchanged (charged and refunded once)", before, b)
		}
	})
}
