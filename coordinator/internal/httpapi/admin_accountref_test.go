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

// TestAdminAccountEmailFoldsASCIIOnly: an account's e-mail is unique in any
// ASCII case, and the operator names it in any ASCII case (accountRef,
// validate.LowerASCII). An e-mail with a non-ASCII capital, which the
// e-mail index would lower-case by Unicode rules (U+212A KELVIN SIGN as
// "k", Ä as ä) where the operator's reference does not, is refused (400
// naming email), not taken for another account's (409) nor made an account
// the operator cannot name by its e-mail. Before, the first was a 409 and
// the second was created but not found by its own e-mail.
func TestAdminAccountEmailFoldsASCIIOnly(t *testing.T) {
	s := newSrvAPI(t)
	call := adminCall(t, s)
	for _, email := range []string{"kda@example.com", "äda@example.com"} {
		if code, out := call("POST", "/admin/accounts", `{"email":"`+email+`"}`); code != http.StatusCreated {
			t.Fatalf("create %s: %d %s", email, code, out)
		}
		if code, out := call("GET", "/admin/accounts/"+email, ""); code != http.StatusOK {
			t.Errorf("GET /admin/accounts/%s: %d %s", email, code, out)
		}
	}
	if code, out := call("POST", "/admin/accounts", `{"email":"KDA@Example.com"}`); code != http.StatusConflict {
		t.Errorf("create KDA@Example.com beside kda@example.com: %d %s, want 409", code, out)
	}
	for _, email := range []string{"\u212Ada@example.com", "Äda@example.com", "Öz@example.com", "ada@BÜCHER.example"} {
		code, out := call("POST", "/admin/accounts", `{"email":"`+email+`"}`)
		if code != http.StatusBadRequest || !strings.Contains(out, `field \"email\"`) {
			t.Errorf("create %s: %d %s, want 400 naming email", email, code, out)
		}
	}
}

// TestAdminAccountEmailComposedOnly: "josé@" with é precomposed (U+00E9,
// NFC) and as e with a combining acute accent (U+0301, NFD) print alike but
// are different bytes, which the e-mail index keys: the second spelling was
// a second account the operator's typed (composed) reference does not find.
// It is refused (400 naming email), nothing created; the composed one is
// created and found by its e-mail.
func TestAdminAccountEmailComposedOnly(t *testing.T) {
	s := newSrvAPI(t)
	call := adminCall(t, s)
	if code, out := call("POST", "/admin/accounts", `{"email":"jos\u00e9@example.com"}`); code != http.StatusCreated {
		t.Fatalf("create josé@ (composed): %d %s", code, out)
	}
	code, out := call("POST", "/admin/accounts", `{"email":"jose\u0301@example.com"}`)
	if code != http.StatusBadRequest || !strings.Contains(out, `field \"email\"`) {
		t.Fatalf("create jose\u0301@ (decomposed) beside josé@: %d %s, want 400 naming email", code, out)
	}
	if code, out := call("GET", "/admin/accounts/jos%C3%A9@example.com", ""); code != http.StatusOK || !strings.Contains(out, `"email":"josé@example.com"`) {
		t.Errorf("GET /admin/accounts/josé@example.com: %d %s", code, out)
	}
	if code, out := call("GET", "/admin/accounts/jose%CC%81@example.com", ""); code != http.StatusNotFound {
		t.Errorf("GET the decomposed spelling: %d %s, want 404 (no such account was made)", code, out)
	}
}
