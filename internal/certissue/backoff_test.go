package certissue

import (
	"crypto/x509"
	"testing"
	"time"
)

// TestRetryStaysUnderFailedValidationLimit: failing on every attempt, no
// hour ever holds more than 4 failures of a name (Let's Encrypt allows 5),
// and the waits grow to a day.
func TestRetryStaysUnderFailedValidationLimit(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var fails []time.Time
	at := t0
	for n := 1; n <= 12; n++ {
		fails = append(fails, at)
		at = RetryAfter(n, at)
	}
	for _, f := range fails {
		in := 0
		for _, g := range fails {
			if !g.Before(f) && g.Before(f.Add(time.Hour)) {
				in++
			}
		}
		if in >= FailedValidationsPerHour {
			t.Fatalf("%d failures in the hour from %v", in, f)
		}
	}
	if d := RetryAfter(20, t0).Sub(t0); d != 24*time.Hour {
		t.Fatalf("wait after 20 failures %v", d)
	}
	if RetryAfter(0, t0) != t0 {
		t.Fatal("no failure, no wait")
	}
	// A manual retry is refused once 4 failures fall in the last hour, and
	// allowed when the oldest of them leaves it.
	recent := []time.Time{t0, t0.Add(time.Minute), t0.Add(11 * time.Minute), t0.Add(41 * time.Minute)}
	if ok, _ := ManualRetryAllowed(recent[:3], t0.Add(42*time.Minute)); !ok {
		t.Fatal("3 failures in the hour refused a retry")
	}
	ok, from := ManualRetryAllowed(recent, t0.Add(42*time.Minute))
	if ok || !from.Equal(t0.Add(time.Hour)) {
		t.Fatalf("4 failures: allowed=%v from %v", ok, from)
	}
}

func TestIssueAllowedPerRegisteredDomain(t *testing.T) {
	now := time.Date(2026, 1, 8, 0, 0, 0, 0, time.UTC)
	var issued []time.Time
	for i := range CertsPerDomainPerWeek {
		issued = append(issued, now.Add(-time.Duration(i+1)*time.Hour))
	}
	ok, from := IssueAllowed(issued, now)
	if ok || !from.Equal(now.Add(-50*time.Hour).Add(7*24*time.Hour)) {
		t.Fatalf("50 in a week: allowed=%v from %v", ok, from)
	}
	if ok, _ := IssueAllowed(issued[:49], now); !ok {
		t.Fatal("49 in a week refused")
	}
	old := append(issued[:49:49], now.Add(-8*24*time.Hour))
	if ok, _ := IssueAllowed(old, now); !ok {
		t.Fatal("one older than a week counted")
	}
	for name, want := range map[string]string{"shop.example.com": "example.com", "a.b.example.co.uk": "example.co.uk", "example.com": "example.com", "x.example.test": "example.test"} {
		if got := RegisteredDomain(name); got != want {
			t.Errorf("RegisteredDomain(%s) = %s, want %s", name, got, want)
		}
	}
}

func TestFallback(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ninety := &x509.Certificate{NotBefore: t0, NotAfter: t0.Add(90 * 24 * time.Hour)}
	if got := Fallback(ninety); !got.Equal(t0.Add(60 * 24 * time.Hour)) {
		t.Fatalf("90-day certificate renewed at %v", got)
	}
	six := &x509.Certificate{NotBefore: t0, NotAfter: t0.Add(6 * 24 * time.Hour)}
	if got := Fallback(six); !got.Equal(t0.Add(4 * 24 * time.Hour)) {
		t.Fatalf("6-day certificate renewed at %v", got)
	}
}
