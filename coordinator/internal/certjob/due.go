// Package certjob is the leader's certificate job for custom domains: which
// verified domains need an ACME order now (a first certificate, a renewal at
// its renewal time, a retry after the back-off, or the takeover of an order
// whose leader died with it), within Let's Encrypt's limits.
package certjob

import (
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/certissue"
	"github.com/hostplane/hostplane/pkg/api"
)

// Reason says why a domain is due.
type Reason string

// Why a certificate is ordered.
const (
	ReasonNew      Reason = "new"      // no certificate yet
	ReasonRenew    Reason = "renew"    // the renewal time came
	ReasonRetry    Reason = "retry"    // the back-off after a failure ended
	ReasonTakeover Reason = "takeover" // an order's leader died with it
	ReasonInstall  Reason = "install"  // issued, the node has not taken it yet
)

// Order is a domain due for an order.
type Order struct {
	Domain store.CustomDomain
	Reason Reason
}

// Waiting is a domain held back by the weekly limit of its registered
// domain, until Until.
type Waiting struct {
	Domain string
	Until  time.Time
}

// Due returns the verified custom domains that need an order at now, and
// those that would but whose registered domain got CertsPerDomainPerWeek
// certificates in the last 7 days (counted from the issue times the cluster
// knows: the latest certificate of each of its names).
func Due(domains []store.CustomDomain, now time.Time) ([]Order, []Waiting) {
	return DueFor(domains, now, "")
}

// DueFor is Due for the leadership owner (Runner.Owner): an order in flight
// that another leadership started is taken over at once (its leader lost
// the lead; the order is resumed by its recorded URL, with its recorded
// key, so both finishing it still issue one certificate), an order of its
// own only past its OrderUntil.
func DueFor(domains []store.CustomDomain, now time.Time, owner string) ([]Order, []Waiting) {
	issued := map[string][]time.Time{}
	for _, d := range domains {
		if d.Cert != nil && !d.Cert.IssuedAt.IsZero() {
			reg := certissue.RegisteredDomain(d.Domain)
			issued[reg] = append(issued[reg], d.Cert.IssuedAt)
		}
	}
	var due []Order
	var waiting []Waiting
	for _, d := range domains {
		r, ok := reason(d, now, owner)
		if !ok {
			continue
		}
		if r == ReasonInstall || (r == ReasonTakeover && d.Cert.OrderURL != "") { // no new order
			due = append(due, Order{Domain: d, Reason: r})
			continue
		}
		// A takeover before the order's URL was recorded orders anew.
		if allowed, from := certissue.IssueAllowed(issued[certissue.RegisteredDomain(d.Domain)], now); !allowed {
			waiting = append(waiting, Waiting{Domain: d.Domain, Until: from})
			continue
		}
		due = append(due, Order{Domain: d, Reason: r})
	}
	return due, waiting
}

func reason(d store.CustomDomain, now time.Time, owner string) (Reason, bool) {
	if d.Status != api.CustomDomainVerified {
		return "", false
	}
	s := d.Cert
	switch {
	case s == nil:
		return ReasonNew, true
	case s.OrderID != "":
		return ReasonTakeover, !now.Before(s.OrderUntil) || (owner != "" && s.OrderOwner != owner)
	case s.Failures > 0:
		return ReasonRetry, !now.Before(s.RetryAt)
	case s.Chain == "":
		return ReasonNew, true
	case s.InstalledAt.IsZero() && !now.Before(s.RenewAt):
		return ReasonRenew, true
	case s.InstalledAt.IsZero():
		return ReasonInstall, !now.Before(s.RetryAt)
	default:
		return ReasonRenew, !now.Before(s.RenewAt)
	}
}
