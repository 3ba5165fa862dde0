package oauthtest

import (
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"golang.org/x/oauth2"
)

// TestIdempotencyKeyPerCredential: an Idempotency-Key is remembered per
// credential (README, openapi.json's IdempotencyKey): per API key, and per
// app (its grant) for an OAuth access token. An app's retry after refreshing
// its token, with the same key and body, replays the ticket the first send
// made; the same key and body from an API key of the same account, or a
// second one, is another client's request and makes a ticket of its own,
// which that key's own retry replays.
func TestIdempotencyKeyPerCredential(t *testing.T) {
	e := start(t)
	acc, key1 := e.account("idem-scope@example.com", api.ScopeTicketsWrite, api.ScopeTicketsRead)
	k2, err := e.c.Admin(0).CreateKey(e.ctx, acc.ID, api.KeyCreateRequest{Scopes: []string{api.ScopeTicketsWrite}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.oauthConfig(e.registerDeviceClient("Idem CLI"), api.ScopeTicketsWrite)
	tok := e.deviceGrant(cfg.ClientID, acc.ID, "", api.ScopeTicketsWrite)
	req := api.TicketCreateRequest{Subject: "sent once", Message: "and retried"}
	create := func(who, cred string) string {
		t.Helper()
		tk, err := bearerT(t, e.base, cred).CreateTicket(e.ctx, req, "retry-1")
		if err != nil {
			t.Fatalf("POST /v1/tickets with Idempotency-Key retry-1 (%s): %v", who, err)
		}
		return tk.ID
	}
	app := create("the app's access token", tok.AccessToken)
	tok2, err := cfg.TokenSource(e.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
	if err != nil {
		t.Fatal(err)
	}
	if got := create("the app's refreshed token", tok2.AccessToken); got != app {
		t.Fatalf("the app's retry with its refreshed token made ticket %s; want the first send's %s replayed", got, app)
	}
	first := create("API key 1", key1)
	if first == app {
		t.Fatalf("API key 1 was answered the app's ticket %s; want a ticket of its own (the key is per credential)", app)
	}
	if got := create("API key 1 again", key1); got != first {
		t.Fatalf("API key 1's retry made ticket %s; want %s replayed", got, first)
	}
	if second := create("API key 2", k2.Key); second == first || second == app {
		t.Fatalf("API key 2 was answered ticket %s; want a ticket of its own", second)
	}
	list, err := bearerT(t, e.base, key1).Tickets(e.ctx, 1, 10)
	if err != nil || list.Total != 3 {
		t.Fatalf("the account's tickets: %+v %v; want 3 (the app's, key 1's, key 2's)", list, err)
	}
}
