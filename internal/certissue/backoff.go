package certissue

import (
	"slices"
	"time"

	"golang.org/x/net/publicsuffix"
)

// Let's Encrypt's limits that a cluster's orders must keep within.
const (
	// CertsPerDomainPerWeek is the new certificates per registered domain
	// (example.com for shop.example.com) in any 7 days.
	CertsPerDomainPerWeek = 50
	// FailedValidationsPerHour is the failed validations per name per hour.
	FailedValidationsPerHour = 5
)

// retryDelays is the wait after the n-th consecutive failure of a name: at
// most 4 failures fall in any hour (under the limit of 5, leaving one for a
// retry an operator asks for), then hours, then a day.
var retryDelays = []time.Duration{time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour, 4 * time.Hour, 12 * time.Hour}

// RetryAfter is when a name that failed `failures` times in a row, the last
// at last, may be tried again.
func RetryAfter(failures int, last time.Time) time.Time {
	if failures <= 0 {
		return last
	}
	if failures > len(retryDelays) {
		return last.Add(24 * time.Hour)
	}
	return last.Add(retryDelays[failures-1])
}

// ManualRetryAllowed tells whether an operator's or customer's "retry now"
// may go ahead: only while fewer than FailedValidationsPerHour-1 failures of
// the name fall in the last hour.
func ManualRetryAllowed(failedAt []time.Time, now time.Time) (bool, time.Time) {
	return underLimit(failedAt, now, time.Hour, FailedValidationsPerHour-1)
}

// RegisteredDomain is the name Let's Encrypt counts issuance under (the
// public suffix plus one label); the name itself when it has no known suffix.
func RegisteredDomain(name string) string {
	if d, err := publicsuffix.EffectiveTLDPlusOne(name); err == nil {
		return d
	}
	return name
}

// IssueAllowed tells whether one more certificate may be ordered under a
// registered domain that got certificates at issuedAt; if not, from when.
func IssueAllowed(issuedAt []time.Time, now time.Time) (bool, time.Time) {
	return underLimit(issuedAt, now, 7*24*time.Hour, CertsPerDomainPerWeek)
}

// underLimit: fewer than max events in (now-window, now]; if not, the time
// the oldest of the last max leaves the window.
func underLimit(events []time.Time, now time.Time, window time.Duration, max int) (bool, time.Time) {
	var in []time.Time
	for _, e := range events {
		if e.After(now.Add(-window)) && !e.After(now) {
			in = append(in, e)
		}
	}
	if len(in) < max {
		return true, now
	}
	slices.SortFunc(in, func(a, b time.Time) int { return a.Compare(b) })
	return false, in[len(in)-max].Add(window)
}
