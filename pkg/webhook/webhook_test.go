package webhook

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"id":"evt_1","type":"ticket.created"}`)
	h := Sign("whsec_abc", now, body)
	if !strings.HasPrefix(h, "t=1800000000,v1=") {
		t.Fatalf("header %q", h)
	}
	if err := Verify("whsec_abc", h, body, 0, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		secret string
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"wrong secret", "whsec_other", h, body, now, ErrBadSignature},
		{"tampered body", "whsec_abc", h, append([]byte{}, append(body, ' ')...), now, ErrBadSignature},
		{"old", "whsec_abc", h, body, now.Add(6 * time.Minute), ErrTimestampTooOld},
		{"future", "whsec_abc", h, body, now.Add(-6 * time.Minute), ErrTimestampTooOld},
		{"no v1", "whsec_abc", "t=1800000000", body, now, ErrNoSignature},
		{"no t", "whsec_abc", "v1=" + strings.Repeat("00", 32), body, now, ErrMalformedHeader},
		{"bad hex", "whsec_abc", "t=1800000000,v1=zz", body, now, ErrMalformedHeader},
		{"empty", "whsec_abc", "", body, now, ErrMalformedHeader},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := Verify(c.secret, c.header, c.body, 0, c.now); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	// A second v1 (e.g. during a future key roll-over) is accepted if one matches.
	two := "t=1800000000,v1=" + strings.Repeat("ab", 32) + "," + strings.SplitN(h, ",", 2)[1]
	if err := Verify("whsec_abc", two, body, 0, now); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add("t=1800000000,v1=" + strings.Repeat("ab", 32))
	f.Add("t=1,v1=00,v0=zz")
	f.Add(",,,=")
	f.Add("t=-1")
	f.Fuzz(func(t *testing.T, h string) {
		p, err := ParseHeader(h)
		if err != nil {
			return
		}
		if p.Timestamp <= 0 || len(p.Signatures) == 0 {
			t.Fatalf("accepted %q as %+v", h, p)
		}
		for _, s := range p.Signatures {
			if len(s) != 32 {
				t.Fatalf("signature length %d", len(s))
			}
		}
		_ = Verify("k", h, []byte("x"), time.Hour, time.Unix(p.Timestamp, 0))
	})
}
