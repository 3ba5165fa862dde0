package httpapi

import (
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestIdempotencyKeyReusedMessage: an Idempotency-Key sent again with
// another body, or on another route, is a 422 idempotency_key_reused whose
// message is true of both cases.
func TestIdempotencyKeyReusedMessage(t *testing.T) {
	w := newWHAPI(t)
	_, key := w.account(api.ScopeTicketsWrite, api.ScopeWebhooksWrite)
	body := `{"subject":"s","message":"m"}`
	if st, out := w.do(key, "POST", "/v1/tickets", body, "Idempotency-Key", "idem-1"); st != 201 {
		t.Fatalf("first ticket: %d %v", st, out)
	}
	for _, tc := range []struct{ what, path, body string }{
		{"another body", "/v1/tickets", `{"subject":"s","message":"other"}`},
		{"another route", "/v1/webhooks", body},
	} {
		st, out := w.do(key, "POST", tc.path, tc.body, "Idempotency-Key", "idem-1")
		msg, _ := out["message"].(string)
		if st != 422 || out["code"] != "idempotency_key_reused" {
			t.Errorf("the key again with %s: %d %v, want 422 idempotency_key_reused", tc.what, st, out)
		}
		if !strings.Contains(msg, "different request (method, path or body)") {
			t.Errorf("the key again with %s: message %q does not say a different request (method, path or body)", tc.what, msg)
		}
	}
}
