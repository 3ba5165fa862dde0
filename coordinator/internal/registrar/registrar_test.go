package registrar

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestErrorKinds(t *testing.T) {
	err := fmt.Errorf("push: %w", &Error{Kind: KindRefused, Op: "domain:update", Object: "a.test", Code: 2304, Reason: "object status prohibits operation"})
	if !errors.Is(err, ErrRefused) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("errors.Is: refused=%v unavailable=%v", errors.Is(err, ErrRefused), errors.Is(err, ErrUnavailable))
	}
	if Transient(err) || !Definite(err) {
		t.Fatalf("refused: transient=%v definite=%v", Transient(err), Definite(err))
	}
	unk := &Error{Kind: KindUnknown, Op: "domain:create"}
	if !Transient(unk) || Definite(unk) {
		t.Fatalf("unknown: transient=%v definite=%v", Transient(unk), Definite(unk))
	}
	if Definite(errors.New("other")) || Transient(errors.New("other")) {
		t.Fatal("a non-registry error is neither definite nor transient")
	}
	if got := err.Error(); got != "push: domain:update a.test: refused (2304): object status prohibits operation" {
		t.Fatalf("message: %q", got)
	}
}

func TestValidClTRID(t *testing.T) {
	for s, ok := range map[string]bool{"ab": false, "abc": true, "dom-1/intent-2": true, "a b c": false, string(make([]byte, 65)): false} {
		if err := ValidClTRID(s); (err == nil) != ok {
			t.Errorf("ValidClTRID(%q) = %v, want ok=%v", s, err, ok)
		}
	}
}

func TestMemoryClTRIDAppliedOnce(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m := NewMemory(func() time.Time { return now }, "test")
	d, err := m.Register(ctx, RegisterRequest{ClTRID: "reg-1", Name: "Example.test", Years: 1})
	if err != nil {
		t.Fatal(err)
	}
	m.LoseNextAnswers(1)
	_, err = m.Renew(ctx, RenewRequest{ClTRID: "ren-1", Name: "example.test", Years: 2, CurrentExpiry: d.Expires})
	if KindOf(err) != KindUnknown {
		t.Fatalf("renew with lost answer: %v", err)
	}
	r, err := m.Renew(ctx, RenewRequest{ClTRID: "ren-1", Name: "example.test", Years: 2, CurrentExpiry: d.Expires})
	if err != nil {
		t.Fatalf("renew repeated: %v", err)
	}
	if want := now.AddDate(3, 0, 0); !r.Expires.Equal(want) {
		t.Fatalf("expiry after a renewal repeated: %v, want %v (applied once)", r.Expires, want)
	}
	if m.Applied() != 2 {
		t.Fatalf("applied %d commands, want 2", m.Applied())
	}
	_, err = m.Register(ctx, RegisterRequest{ClTRID: "reg-2", Name: "example.test", Years: 1})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("second registration: %v", err)
	}
	m.SetDown(true)
	if _, err := m.SetLock(ctx, LockRequest{ClTRID: "lock-1", Name: "example.test", Locked: true}); !errors.Is(err, ErrUnavailable) || !Definite(err) {
		t.Fatalf("down: %v", err)
	}
	m.SetDown(false)
	if _, err := m.SetLock(ctx, LockRequest{ClTRID: "lock-1", Name: "example.test", Locked: true}); err != nil {
		t.Fatal(err)
	}
	if info, _ := m.Info(ctx, "example.test"); !info.Locked {
		t.Fatal("lock not applied")
	}
	if res, _ := m.Check(ctx, "example.test", "free.test", "x.com"); res[0].Available || !res[1].Available || res[2].Available {
		t.Fatalf("check: %+v", res)
	}
}
