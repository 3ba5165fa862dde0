package domainreg

import (
	"testing"
	"time"
)

// TestExtendedTakesTheRegistrysExpiryElseComputesIt: a registration's or
// renewal's outcome carries the expiry the registry answered, in UTC, and
// from plus the years when it answered none.
func TestExtendedTakesTheRegistrysExpiryElseComputesIt(t *testing.T) {
	from := time.Date(2026, 2, 28, 10, 0, 0, 0, time.UTC)
	answered := time.Date(2029, 3, 1, 13, 0, 0, 0, time.FixedZone("+03", 3*3600))
	if o := extended(answered, from, 3); !o.ok || o.expires == nil || !o.expires.Equal(answered) || o.expires.Location() != time.UTC {
		t.Fatalf("answered expiry: %+v %v", o, o.expires)
	}
	want := time.Date(2028, 2, 28, 10, 0, 0, 0, time.UTC)
	if o := extended(time.Time{}, from, 2); !o.ok || o.expires == nil || !o.expires.Equal(want) {
		t.Fatalf("no answered expiry: %+v %v, want %v", o, o.expires, want)
	}
}
