package epp

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/registrar"
	"github.com/hostplane/hostplane/internal/eppxml"
)

// TestPeriodRefusedBeforeSending: create and renew refuse a period outside
// 1-10 years, and a bad ClTRID before that, without a session to the
// registry (the client here has none, so anything sent would fail otherwise).
func TestPeriodRefusedBeforeSending(t *testing.T) {
	c := &Client{}
	ctx := context.Background()
	expiry := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	calls := map[string]func(clTRID string, years int) error{
		"domain:create": func(id string, y int) error {
			_, err := c.Register(ctx, registrar.RegisterRequest{ClTRID: id, Name: "shop.test", Years: y})
			return err
		},
		"domain:renew": func(id string, y int) error {
			_, err := c.Renew(ctx, registrar.RenewRequest{ClTRID: id, Name: "shop.test", Years: y, CurrentExpiry: expiry})
			return err
		},
	}
	for op, call := range calls {
		for _, tc := range []struct {
			clTRID string
			years  int
			code   int
			reason string
		}{
			{"period-1", 0, eppxml.CodeValueRange, "years must be 1-10, got 0"},
			{"period-2", 11, eppxml.CodeValueRange, "years must be 1-10, got 11"},
			{"x", 11, eppxml.CodeParamMissing, "cl_trid: must be 3-64 characters"},
		} {
			var re *registrar.Error
			err := call(tc.clTRID, tc.years)
			if !errors.As(err, &re) || re.Kind != registrar.KindRefused || re.Code != tc.code || re.Op != op ||
				re.Object != "shop.test" || !strings.Contains(re.Reason, tc.reason) || !strings.HasSuffix(re.Reason, "(checked before sending)") {
				t.Errorf("%s cl_trid %q years %d: got %#v, want a refusal %d %q", op, tc.clTRID, tc.years, err, tc.code, tc.reason)
			}
		}
	}
}
