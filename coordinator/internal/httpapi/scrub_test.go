package httpapi

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
)

// TestScrubPlacementNamesNoNode: a customer's order refused for capacity —
// by placement, or by the order's command when the node filled up in between
// (fsm.NoCapacityError, however wrapped) — is a 409 no_capacity naming no
// node; the node and its reason go to the log. Other errors pass unchanged.
func TestScrubPlacementNamesNoNode(t *testing.T) {
	var logged bytes.Buffer
	a := &API{log: slog.New(slog.NewTextHandler(&logged, nil))}
	rq := &request{id: "req_1", caller: &caller{accountID: "acc_1"}}
	for name, err := range map[string]error{
		"placement": errf(http.StatusConflict, "no_capacity", "no node has room: hv-secret-7: cordoned"),
		"at apply":  fmt.Errorf("apply: %w", &fsm.NoCapacityError{NodeID: "hv-secret-7", Why: "RAM 2048 MiB of 1024 free"}),
	} {
		logged.Reset()
		ae, _ := toAPIError(a.scrubPlacement(rq, err))
		if ae.StatusCode != http.StatusConflict || ae.Code != "no_capacity" || strings.Contains(ae.Message, "hv-secret-7") {
			t.Errorf("%s: %d %s %q, want 409 no_capacity naming no node", name, ae.StatusCode, ae.Code, ae.Message)
		}
		if !strings.Contains(logged.String(), "hv-secret-7") || !strings.Contains(logged.String(), "req_1") {
			t.Errorf("%s: log %q, want the node's reason with the request id", name, logged.String())
		}
	}
	other := fmt.Errorf("apply: %w", fsm.ErrInsufficientFunds)
	if got := a.scrubPlacement(rq, other); got != other {
		t.Errorf("another error became %v", got)
	}
	if got := a.scrubPlacement(rq, nil); got != nil {
		t.Errorf("nil became %v", got)
	}
}
