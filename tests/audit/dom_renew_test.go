package audit

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestDomainAutoRenewFromAShortWallet: an auto-renewing domain whose
// renewal comes due with an empty wallet is not renewed, charges nothing,
// never takes the wallet below zero and is told once (domain.expiring with
// the reason) however many sweeps pass; topped up before expiry, it is paid
// once and renewed once at the registry, the expiry moved a year on both
// sides and domain.renewed sent once. A domain left to expire is expired;
// turning auto-renew on then is refused rather than promising a renewal the
// renewal job will never make, and its registry settings take no change.
// A renewal the registry refuses is refunded, told with the reason, and
// made the next day: paid once, renewed once.
func TestDomainAutoRenewFromAShortWallet(t *testing.T) {
	m := newMoneyRig(t)
	d := &domRig{rig: m.rig, hooks: m.hooks}
	m.c.Credit(m.ctx, m.accA.ID, 2*domainPrice)
	auto := d.active(0, "renew-me.test")
	manual := d.active(1, "let-go.test")
	if rep := m.call(0, m.keyA, "PATCH", "/v1/domains/"+manual.ID, map[string]any{"auto_renew": false}, nil); rep.Status != http.StatusOK {
		t.Fatalf("%s", rep)
	}
	if b := m.balance(m.keyA); b != 0 {
		t.Fatalf("balance %d after two registrations", b)
	}
	exp := *auto.ExpiresAt
	regExp := m.reg.Domain("renew-me.test").ExDate
	expiring := func(id string) []map[string]any {
		var out []map[string]any
		for _, ev := range m.hooks.Deliveries(string(api.EventDomainExpiring)) {
			if ev.Data["domainId"] == id {
				out = append(out, ev.Data)
			}
		}
		return out
	}

	t.Run("due with an empty wallet", func(t *testing.T) {
		m.at(exp.AddDate(0, 0, -29))
		m.wait("renew-me.test's domain.expiring", func() bool { return len(expiring(auto.ID)) > 0 })
		// Many sweeps later: still one reminder, nothing charged.
		for range 15 {
			time.Sleep(200 * time.Millisecond)
			if b := m.balance(m.keyA); b != 0 {
				t.Fatalf("balance %d with a renewal the wallet cannot pay", b)
			}
		}
		evs := expiring(auto.ID)
		if len(evs) != 1 || evs[0]["autoRenew"] != true || !strings.Contains(strings.ToLower(fmt.Sprint(evs[0]["reason"])), "wallet") {
			t.Errorf("renew-me.test's reminders: %v, want one naming the wallet", evs)
		}
		now := d.domain(m.keyA, auto.ID)
		if now.Status != api.DomainActive || !now.ExpiresAt.Equal(exp) || d.reg.Applied("domain:renew", "renew-me.test") != 0 {
			t.Errorf("renew-me.test not paid for: %+v, %d renews at the registry", now, d.reg.Applied("domain:renew", "renew-me.test"))
		}
	})

	t.Run("topped up before expiry", func(t *testing.T) {
		m.c.Credit(m.ctx, m.accA.ID, domainPrice)
		m.wait("renew-me.test renewed", func() bool {
			now := d.domain(m.keyA, auto.ID)
			return now.ExpiresAt != nil && now.ExpiresAt.After(exp)
		})
		time.Sleep(2 * time.Second) // more sweeps
		now := d.domain(m.keyA, auto.ID)
		if !now.ExpiresAt.Equal(exp.AddDate(1, 0, 0)) && !now.ExpiresAt.Truncate(time.Second).Equal(exp.AddDate(1, 0, 0).Truncate(time.Second)) {
			t.Errorf("expiry %s after one renewal of %s", now.ExpiresAt, exp)
		}
		if r := m.reg.Domain("renew-me.test"); !r.ExDate.Equal(regExp.AddDate(1, 0, 0)) {
			t.Errorf("the registry's expiry %s after one renewal of %s", r.ExDate, regExp)
		}
		if n := d.reg.Applied("domain:renew", "renew-me.test"); n != 1 {
			t.Errorf("%d renews applied at the registry", n)
		}
		if b := m.balance(m.keyA); b != 0 {
			t.Errorf("balance %d after a renewal paid from %d", b, domainPrice)
		}
		if n := m.delivered(api.EventDomainRenewed, "domainId", auto.ID); n != 1 {
			t.Errorf("%d domain.renewed", n)
		}
	})

	t.Run("expired", func(t *testing.T) {
		m.at(manual.ExpiresAt.Add(24 * time.Hour))
		m.wait("let-go.test expired", func() bool { return d.domain(m.keyA, manual.ID).Status == api.DomainExpired })
		before := len(m.reg.Transactions("domain:update", "let-go.test"))
		for _, body := range []map[string]any{
			{"auto_renew": true},
			{"nameservers": []string{"ns3.example.net", "ns4.example.net"}},
			{"transfer_lock": true},
		} {
			if rep := m.call(0, m.keyA, "PATCH", "/v1/domains/"+manual.ID, body, nil); rep.Status != http.StatusConflict || rep.Code() == "change_pending" {
				t.Errorf("PATCH %v of an expired domain: %s, want a 409 that is not change_pending (waiting does not help)", body, rep)
			}
		}
		now := d.domain(m.keyA, manual.ID)
		if now.AutoRenew || now.Status != api.DomainExpired || m.balance(m.keyA) != 0 {
			t.Errorf("let-go.test after PATCHes: %+v, balance %d", now, m.balance(m.keyA))
		}
		if n := len(m.reg.Transactions("domain:update", "let-go.test")); n != before {
			t.Errorf("%d registry updates of an expired domain", n-before)
		}
	})

	t.Run("a renewal the registry refuses", func(t *testing.T) {
		// renew-me.test's next period: the registry refuses the renewal
		// once; it is refunded and told, and renewed the next day.
		cur := *d.domain(m.keyA, auto.ID).ExpiresAt
		m.c.Credit(m.ctx, m.accA.ID, domainPrice)
		m.reg.FailNextOn("domain:renew", 1, 2306)
		told := len(expiring(auto.ID))
		day := cur.AddDate(0, 0, -29)
		m.at(day)
		m.wait("the refused renewal told", func() bool { return len(expiring(auto.ID)) > told })
		time.Sleep(2 * time.Second) // more sweeps the same day
		if b := m.balance(m.keyA); b != domainPrice {
			t.Errorf("balance %d after a refused renewal, want %d back", b, domainPrice)
		}
		evs := expiring(auto.ID)
		if len(evs) != told+1 || !strings.Contains(fmt.Sprint(evs[len(evs)-1]["reason"]), "registry") {
			t.Errorf("reminders after a refused renewal: %v", evs[told:])
		}
		if now := d.domain(m.keyA, auto.ID); !now.ExpiresAt.Equal(cur) || now.Status != api.DomainActive {
			t.Errorf("after a refused renewal: %+v", now)
		}
		m.at(day.AddDate(0, 0, 1))
		m.wait("renewed the next day", func() bool { return d.domain(m.keyA, auto.ID).ExpiresAt.After(cur) })
		time.Sleep(time.Second)
		if b := m.balance(m.keyA); b != 0 {
			t.Errorf("balance %d after the renewal, want 0", b)
		}
		if n := d.reg.Applied("domain:renew", "renew-me.test"); n != 2 {
			t.Errorf("%d renews applied at the registry, want 2", n)
		}
		if n := m.delivered(api.EventDomainRenewed, "domainId", auto.ID); n != 2 {
			t.Errorf("%d domain.renewed, want 2", n)
		}
	})
}
