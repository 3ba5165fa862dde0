package certjob

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

func domain(name, status string, s *store.CertState) store.CustomDomain {
	return store.CustomDomain{CustomDomain: api.CustomDomain{HostingID: "hst_" + name, Domain: name, Status: status}, Cert: s}
}

// Which domains are due: unverified never; no certificate: new; an order in
// flight only after its end (takeover); a failure only after its back-off;
// an issued certificate the node did not take: installed again (no order)
// after its back-off;
// an issued certificate at its renewal time; a registered domain with 50
// certificates in the last 7 days waits until the oldest leaves the window,
// a takeover included (a new order too), while another registered domain
// goes ahead.
func TestDue(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	cert := func(renew time.Time) *store.CertState {
		return &store.CertState{Chain: "pem", SealedKey: "v1.x", RenewAt: renew, IssuedAt: now.Add(-30 * 24 * time.Hour),
			InstalledAt: now.Add(-30 * 24 * time.Hour)}
	}
	ds := []store.CustomDomain{
		domain("pending.example.com", api.CustomDomainPendingDNS, nil),
		domain("new.example.com", api.CustomDomainVerified, nil),
		domain("flight.example.com", api.CustomDomainVerified, &store.CertState{OrderID: "o1", OrderUntil: now.Add(time.Minute)}),
		domain("dead.example.com", api.CustomDomainVerified, &store.CertState{OrderID: "o2", OrderUntil: now}),
		domain("backoff.example.com", api.CustomDomainVerified, &store.CertState{Failures: 2, RetryAt: now.Add(time.Second)}),
		domain("retry.example.com", api.CustomDomainVerified, &store.CertState{Failures: 2, RetryAt: now}),
		domain("fresh.example.com", api.CustomDomainVerified, cert(now.Add(time.Hour))),
		domain("renew.example.com", api.CustomDomainVerified, cert(now.Add(-time.Hour))),
		domain("install.example.com", api.CustomDomainVerified, &store.CertState{Chain: "pem", SealedKey: "v1.x", RenewAt: now.Add(time.Hour),
			InstallError: "node away", RetryAt: now}),
		domain("install-later.example.com", api.CustomDomainVerified, &store.CertState{Chain: "pem", SealedKey: "v1.x", RenewAt: now.Add(time.Hour),
			InstallError: "node away", RetryAt: now.Add(time.Second)}),
	}
	due, waiting := Due(ds, now)
	got := map[string]Reason{}
	for _, o := range due {
		got[o.Domain.Domain] = o.Reason
	}
	want := map[string]Reason{"new.example.com": ReasonNew, "dead.example.com": ReasonTakeover,
		"retry.example.com": ReasonRetry, "renew.example.com": ReasonRenew, "install.example.com": ReasonInstall}
	if !reflect.DeepEqual(got, want) || len(waiting) != 0 {
		t.Fatalf("due %v waiting %v, want %v", got, waiting, want)
	}

	// 50 certificates under shop.example in the last week, the oldest 6 days ago.
	var busy []store.CustomDomain
	for i := range 50 {
		s := cert(now.Add(time.Hour))
		s.IssuedAt = now.Add(-6*24*time.Hour + time.Duration(i)*time.Minute)
		busy = append(busy, domain(fmt.Sprintf("s%d.shop.example", i), api.CustomDomainVerified, s))
	}
	busy = append(busy, domain("one-more.shop.example", api.CustomDomainVerified, nil),
		domain("other.example.org", api.CustomDomainVerified, nil),
		domain("dead.shop.example", api.CustomDomainVerified, &store.CertState{OrderID: "o3", OrderUntil: now}))
	due, waiting = Due(busy, now)
	if len(due) != 1 || due[0].Domain.Domain != "other.example.org" {
		t.Fatalf("due under the weekly limit: %+v", due)
	}
	if len(waiting) != 2 || waiting[0].Domain != "one-more.shop.example" || waiting[1].Domain != "dead.shop.example" ||
		!waiting[0].Until.Equal(now.Add(24*time.Hour)) {
		t.Fatalf("waiting: %+v", waiting)
	}
}
