package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestAdminNamesAnAccountByEmail: where the operator API takes an account
// (GET /admin/accounts/{id}, the account filter of GET /admin/actions and
// GET /admin/tickets) an e-mail in any case names it as its id does; an
// e-mail no account has is a 404 (the filter's naming what was given).
func TestAdminNamesAnAccountByEmail(t *testing.T) {
	s := newSrvAPI(t)
	call := adminCall(t, s)
	code, out := call("POST", "/admin/accounts", `{"email":"ada.lovelace@example.com","name":"Ada"}`)
	var acc struct{ ID string }
	if err := json.Unmarshal([]byte(out), &acc); code != http.StatusCreated || err != nil || acc.ID == "" {
		t.Fatalf("create: %d %s", code, out)
	}
	for _, ref := range []string{acc.ID, "ada.lovelace@example.com", "Ada.Lovelace@EXAMPLE.com"} {
		if code, out := call("GET", "/admin/accounts/"+ref, ""); code != http.StatusOK || !strings.Contains(out, `"id":"`+acc.ID+`"`) {
			t.Errorf("GET /admin/accounts/%s: %d %s; want account %s", ref, code, out, acc.ID)
		}
		for _, list := range []string{"/admin/actions", "/admin/tickets"} {
			if code, out := call("GET", list+"?account="+ref, ""); code != http.StatusOK {
				t.Errorf("GET %s?account=%s: %d %s; want 200", list, ref, code, out)
			}
		}
	}
	if code, out := call("GET", "/admin/accounts/nobody@example.com", ""); code != http.StatusNotFound {
		t.Errorf("GET /admin/accounts/nobody@example.com: %d %s; want 404", code, out)
	}
	for _, list := range []string{"/admin/actions", "/admin/tickets"} {
		if code, out := call("GET", list+"?account=Nobody@example.com", ""); code != http.StatusNotFound || !strings.Contains(out, `Nobody@example.com`) {
			t.Errorf("GET %s?account=Nobody@example.com: %d %s; want a 404 naming it", list, code, out)
		}
	}
}
