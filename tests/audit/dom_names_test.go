package audit

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestDomainNamesInEveryForm: one name is one domain whatever form a
// customer types it in. An internationalised name is registered as its
// A-label (at the registry too) with its Unicode form shown, and
// domain.registered names the A-label; B's order of A's name as its
// A-label, its Unicode form, in capitals or with a trailing dot never makes
// a second registration and charges nothing; B's transfer of A's domain is
// refused, charges nothing and leaves A's domain as it was; the registry
// gets what the order asked (WHOIS privacy on, no nameservers given) and
// check answers hostile names with a 400 naming the parameter.
func TestDomainNamesInEveryForm(t *testing.T) {
	d := newDomRig(t)
	d.c.Credit(d.ctx, d.accA.ID, 10*domainPrice)
	d.c.Credit(d.ctx, d.accB.ID, 10*domainPrice)

	idn := d.active(0, "çay-evi.test")
	t.Run("an internationalised name", func(t *testing.T) {
		if idn.Name != "xn--ay-evi-vua.test" || idn.UnicodeName != "çay-evi.test" {
			t.Errorf("çay-evi.test: name %q, unicode_name %q", idn.Name, idn.UnicodeName)
		}
		if d.reg.Domain("xn--ay-evi-vua.test") == nil {
			t.Errorf("the registry has no xn--ay-evi-vua.test")
		}
		ev := d.hooks.Wait(t, "domain.registered", 30*time.Second, func(m map[string]any) bool { return m["domainId"] == idn.ID })
		if ev.Data["domain"] != idn.Name {
			t.Errorf("domain.registered names %v, want the A-label %s", ev.Data["domain"], idn.Name)
		}
	})

	plain := d.active(1, "plain-name.test")
	// refusedQuietly: B's request was a 4xx that shows none of A's ids.
	refusedQuietly := func(t *testing.T, what string, rep framework.Reply) {
		t.Helper()
		if rep.Status < 400 || rep.Status >= 500 {
			t.Errorf("%s: %s, want a 4xx", what, rep)
		}
		for _, a := range []string{idn.ID, plain.ID, d.accA.ID} {
			if strings.Contains(string(rep.Body), a) {
				t.Errorf("%s: the answer shows A's %s: %s", what, a, rep)
			}
		}
	}
	// bHasNothing: once B's requests settled, B holds no domain and was
	// charged nothing.
	bHasNothing := func(t *testing.T, after string) {
		t.Helper()
		d.settled(d.keyB)
		if l := d.domains(d.keyB); len(l) != 0 {
			t.Errorf("B's domains after %s: %+v", after, l)
		}
		if b := d.balance(d.keyB); b != 10*domainPrice {
			t.Errorf("B's balance %d, want %d", b, 10*domainPrice)
		}
	}
	t.Run("B's order of A's name in another form", func(t *testing.T) {
		for _, name := range []string{"xn--ay-evi-vua.test", "çay-evi.test", "ÇAY-EVİ.test", "Çay-evi.test", "PLAIN-NAME.test", "Plain-Name.Test", "plain-name.test.", "plain-name.TEST"} {
			refusedQuietly(t, fmt.Sprintf("B orders %q", name), d.call(2, d.keyB, "POST", "/v1/domains", domainBody(name), nil))
		}
		bHasNothing(t, "ordering A's names")
		if n := d.reg.Applied("domain:create", ""); n != 2 {
			t.Errorf("%d creates at the registry, want A's 2", n)
		}
	})

	t.Run("B's transfer of A's domain", func(t *testing.T) {
		for _, name := range []string{"plain-name.test", "PLAIN-NAME.test", "xn--ay-evi-vua.test"} {
			refusedQuietly(t, fmt.Sprintf("B transfers %q", name), d.call(0, d.keyB, "POST", "/v1/domains/transfer", map[string]any{"name": name, "auth_code": "Guess-1234", "contact": contact}, nil))
		}
		bHasNothing(t, "transferring A's")
		if now := d.domain(d.keyA, plain.ID); now.Status != api.DomainActive || d.reg.Domain("plain-name.test").ClID != framework.EPPDClientID {
			t.Errorf("A's plain-name.test after B's transfer: %+v", now)
		}
		if n := len(d.reg.Transactions("domain:transfer:request", "")); n != 0 {
			t.Errorf("%d transfers reached the registry", n)
		}
	})

	t.Run("the registry gets what the order asked", func(t *testing.T) {
		b := map[string]any{"name": "private.test", "years": 2, "contact": contact, "whois_privacy": true, "auto_renew": false}
		rep := d.write(0, d.keyA, "POST", "/v1/domains", b)
		if rep.Status != http.StatusCreated {
			t.Fatalf("%s", rep)
		}
		var x api.Domain
		rep.Decode(t, &x)
		r := d.reg.Domain("private.test")
		if r == nil || !r.Privacy || !x.WhoisPrivacy || x.AutoRenew || x.PeriodYears != 2 || !sameSet(r.NS, x.Nameservers) {
			t.Errorf("private.test: %+v, the registry %+v", x, r)
		}
	})

	t.Run("check answers hostile names", func(t *testing.T) {
		for _, name := range []string{"", "..", "../../admin", "a..test", strings.Repeat("a", 64) + ".test", "x.test\n", "x.test%00", "<x>.test", "-x.test", "x.notoffered", "*.test", "test", "x_y.test", "x.test/../y"} {
			rep := d.call(0, d.keyA, "GET", "/v1/domains/check?name="+url.QueryEscape(name), nil, nil)
			if rep.Status != http.StatusBadRequest || !strings.Contains(string(rep.Body), "name") {
				t.Errorf("check %q: %s, want a 400 naming name", name, rep)
			}
		}
		rep := d.call(0, d.keyA, "GET", "/v1/domains/check?name="+url.QueryEscape("PLAIN-NAME.test"), nil, nil)
		var c api.DomainCheck
		if rep.Status == http.StatusOK {
			rep.Decode(t, &c)
			if c.Available {
				t.Errorf("check of A's name in capitals: %s", rep)
			}
		} else if rep.Status != http.StatusBadRequest {
			t.Errorf("check of A's name in capitals: %s", rep)
		}
	})

	t.Run("hostile contacts are 400s that reach no registry", func(t *testing.T) {
		// (A country code of the right shape that is no country, "XX"
		// user-assigned or "YU" withdrawn, is refused as an account's
		// country is.)
		creates, contacts, before := d.reg.Applied("domain:create", ""), d.reg.Applied("contact:create", ""), d.balance(d.keyA)
		long := strings.Repeat("x", 300)
		for i, c := range []map[string]any{
			{"name": "Åda Lövelace", "street": []string{"1 St"}, "city": "Istanbul", "cc": "TR", "email": "ada@example.com"},
			{"name": "Ada", "street": []string{"1 St"}, "city": "Istanbul", "cc": "tr", "email": "ada@example.com"},
			{"name": "Ada", "street": []string{"1 St"}, "city": "Istanbul", "cc": "TUR", "email": "ada@example.com"},
			{"name": "Ada", "street": []string{"1 St"}, "city": "Istanbul", "cc": "XX", "email": "ada@example.com"},
			{"name": "Ada", "street": []string{"1 St"}, "city": "Istanbul", "cc": "YU", "email": "ada@example.com"},
			{"name": "Ada", "street": []string{"1 St"}, "city": "Istanbul", "cc": "TR", "email": "not-an-email"},
			{"name": "Ada", "street": []string{"1 St"}, "city": "Istanbul", "cc": "TR", "email": "ada@example.com\r\nBcc: x@y.z"},
			{"name": "Ada", "street": []string{"1", "2", "3", "4"}, "city": "Istanbul", "cc": "TR", "email": "ada@example.com"},
			{"name": long, "street": []string{"1 St"}, "city": "Istanbul", "cc": "TR", "email": "ada@example.com"},
			{"name": "Ada", "street": []string{long}, "city": "Istanbul", "cc": "TR", "email": "ada@example.com"},
			{"name": "", "street": []string{"1 St"}, "city": "Istanbul", "cc": "TR", "email": "ada@example.com"},
			{"name": "Ada", "street": []string{}, "city": "", "cc": "TR", "email": "ada@example.com"},
			{"name": "Ada\u0000", "street": []string{"1 St"}, "city": "Istanbul", "cc": "TR", "email": "ada@example.com"},
			{"name": "Ada", "street": []string{"1 St"}, "city": "Istanbul", "cc": "TR", "email": "ada@example.com", "voice": "call me"},
		} {
			b := domainBody("contact-probe.test")
			b["contact"] = c
			rep := d.call(0, d.keyA, "POST", "/v1/domains", b, nil)
			if rep.Status != http.StatusBadRequest || !strings.Contains(string(rep.Body), "contact") {
				t.Errorf("contact %d %v: %s, want 400 naming the contact", i, c, rep)
			}
		}
		d.settled(d.keyA)
		if d.reg.Applied("domain:create", "") != creates || d.reg.Applied("contact:create", "") != contacts || d.balance(d.keyA) != before {
			t.Errorf("hostile contacts reached the registry or the wallet: creates %d→%d, contacts %d→%d, balance %d→%d",
				creates, d.reg.Applied("domain:create", ""), contacts, d.reg.Applied("contact:create", ""), before, d.balance(d.keyA))
		}
	})

	t.Run("a quote is what the order would cost and changes nothing", func(t *testing.T) {
		creates, bal, n := d.reg.Applied("domain:create", ""), d.balance(d.keyA), len(d.domains(d.keyA))
		b := domainBody("quoted.test")
		b["years"] = 3
		var q api.DomainQuote
		rep := d.call(1, d.keyA, "POST", "/v1/domains/quote", b, nil)
		if rep.Status != http.StatusOK {
			t.Fatalf("%s", rep)
		}
		rep.Decode(t, &q)
		if !q.Available || q.Years != 3 || q.YearlyUsdCents != domainPrice || q.TotalUsdCents != 3*domainPrice || q.BalanceUsdCents != bal || q.ShortfallUsdCents != max(0, 3*domainPrice-bal) {
			t.Errorf("quote of 3 years with %d in the wallet: %+v", bal, q)
		}
		b["years"] = 10
		rep = d.call(1, d.keyA, "POST", "/v1/domains/quote", b, nil)
		rep.Decode(t, &q)
		if q.TotalUsdCents != 10*domainPrice || q.ShortfallUsdCents != max(0, 10*domainPrice-bal) {
			t.Errorf("quote of 10 years with %d in the wallet: %+v", bal, q)
		}
		rep = d.call(2, d.keyA, "POST", "/v1/domains/quote", domainBody("PLAIN-name.test"), nil)
		if rep.Status == http.StatusOK {
			rep.Decode(t, &q)
			if q.Available {
				t.Errorf("a quote of A's own name in capitals: %+v", q)
			}
		}
		rep = d.call(2, d.keyA, "GET", "/v1/domains/check?name="+url.QueryEscape("çay-evi.test"), nil, nil)
		var c api.DomainCheck
		rep.Decode(t, &c)
		if c.Available || c.Name != "xn--ay-evi-vua.test" || c.UnicodeName != "çay-evi.test" {
			t.Errorf("check of A's IDN: %s", rep)
		}
		if d.reg.Applied("domain:create", "") != creates || d.balance(d.keyA) != bal || len(d.domains(d.keyA)) != n {
			t.Errorf("quotes changed something: creates %d→%d, balance %d→%d, domains %d→%d", creates, d.reg.Applied("domain:create", ""), bal, d.balance(d.keyA), n, len(d.domains(d.keyA)))
		}
	})
}
