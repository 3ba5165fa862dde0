package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/pkg/api"
)

// patchChangesNothing sends the PATCH method path body that leaves the
// record at get as it is, and checks from the API that the answer is the
// record as GET shows it before and after (updated_at included) and that
// no command was applied for it.
func patchChangesNothing(t *testing.T, s *srvAPI, key, path, get, body string, hdr ...string) {
	t.Helper()
	before := s.call(key, "GET", get, "")
	if before.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", get, before.status, before.body)
	}
	time.Sleep(2 * time.Millisecond) // an updated_at moved by the PATCH would differ
	applied := s.node.FSM.AppliedIndex()
	r := s.call(key, "PATCH", path, body, hdr...)
	if r.status != http.StatusOK || !sameJSON(r.body, before.body) {
		t.Errorf("PATCH %s %s that changes nothing: %d %s, want 200 and the record as it was: %s", path, body, r.status, r.body, before.body)
	}
	if after := s.call(key, "GET", get, ""); !sameJSON(after.body, before.body) {
		t.Errorf("PATCH %s %s that changes nothing changed the record: %s, was %s", path, body, after.body, before.body)
	}
	if got := s.node.FSM.AppliedIndex(); got != applied {
		t.Errorf("PATCH %s %s that changes nothing applied %d command(s)", path, body, got-applied)
	}
}

// patchChanges sends a PATCH that changes the record and checks that it
// still commits: the answer differs from GET's before, and a command was
// applied.
func patchChanges(t *testing.T, s *srvAPI, key, path, get, body string) {
	t.Helper()
	before := s.call(key, "GET", get, "")
	time.Sleep(2 * time.Millisecond)
	applied := s.node.FSM.AppliedIndex()
	if r := s.call(key, "PATCH", path, body); r.status != http.StatusOK || sameJSON(r.body, before.body) || s.node.FSM.AppliedIndex() == applied {
		t.Errorf("PATCH %s %s that changes the record: %d %s (before %s), applied index %d → %d", path, body, r.status, r.body, before.body, applied, s.node.FSM.AppliedIndex())
	}
}

func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}

// TestWebhookPatchThatChangesNothing: a webhook PATCH giving fields as they
// are answers
// the subscription as it is, updated_at unmoved, and commits nothing;
// before, it moved updated_at and wrote a Raft entry. A PATCH that changes
// a field (the events' order too: it is the record's) still does.
func TestWebhookPatchThatChangesNothing(t *testing.T) {
	s := newSrvAPI(t)
	_, key := s.account(api.ScopeWebhooksRead, api.ScopeWebhooksWrite)
	st, created := s.do(key, "POST", "/v1/webhooks", `{"url":"https://hooks.example.com/a","events":["ticket.created","invoice.paid"],"description":"prod"}`)
	if st != http.StatusCreated {
		t.Fatalf("create: %d %v", st, created)
	}
	path := "/v1/webhooks/" + created["id"].(string)
	for _, body := range []string{
		`{"url":"https://hooks.example.com/a","events":["ticket.created","invoice.paid"],"description":"prod","isActive":true}`,
		`{"description":"prod"}`,
		`{"is_active":true}`,
	} {
		patchChangesNothing(t, s, key, path, path, body)
	}
	patchChanges(t, s, key, path, path, `{"events":["invoice.paid","ticket.created"]}`)
	patchChanges(t, s, key, path, path, `{"description":"staging"}`)
	patchChanges(t, s, key, path, path, `{"isActive":false}`)
	patchChangesNothing(t, s, key, path, path, `{"isActive":false,"description":"staging"}`)
}

// TestServerLabelThatChangesNothing: PATCH /v1/servers/{id}/label with the
// label the server has answers it as it is and commits nothing; a new
// label still commits.
func TestServerLabelThatChangesNothing(t *testing.T) {
	s, _, key, id := newServerOwner(t)
	base := "/v1/servers/" + id
	patchChanges(t, s, key, base+"/label", base, `{"label":"db primary"}`)
	patchChangesNothing(t, s, key, base+"/label", base, `{"label":"db primary"}`)
}

// TestDomainPatchThatChangesNothing: a domain PATCH giving its settings as
// they are answers the domain as it is, with nothing sent to the registry
// and nothing committed; with an Idempotency-Key it answers the same and
// its replay too. A change still commits.
func TestDomainPatchThatChangesNothing(t *testing.T) {
	s, reg := domainAPI(t)
	acc, key := s.account(api.ScopeDomainsRead, api.ScopeDomainsWrite, api.ScopeOrdersWrite)
	s.apply(fsm.CmdWalletCredit, fsm.WalletCredit{TxID: "wtx_dep", AccountID: acc, AmountUsdCents: 2500})
	r := s.call(key, "POST", "/v1/domains", `{"name":"ada.test","nameservers":["ns1.example.net","ns2.example.net"],`+testContact+`}`)
	if r.status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	path := "/v1/domains/" + r.m["id"].(string)
	applied := reg.Applied()
	same := `{"nameservers":["ns1.example.net","ns2.example.net"],"auto_renew":` + toJSON(r.m["auto_renew"]) + `,"transfer_lock":` + toJSON(r.m["transfer_lock"]) + `}`
	patchChangesNothing(t, s, key, path, path, same)
	before := s.call(key, "GET", path, "")
	for range 2 {
		if r := s.call(key, "PATCH", path, same, "Idempotency-Key", "same-1"); r.status != http.StatusOK || !sameJSON(r.body, before.body) {
			t.Errorf("PATCH that changes nothing, with an Idempotency-Key: %d %s, want the domain as it is: %s", r.status, r.body, before.body)
		}
	}
	if reg.Applied() != applied {
		t.Errorf("a PATCH that changes nothing went to the registry (%d → %d)", applied, reg.Applied())
	}
	patchChanges(t, s, key, path, path, `{"auto_renew":`+toJSON(r.m["auto_renew"] != true)+`}`)
	// Why the keyed no-op still commits its entry (the answer's record): its
	// replay after that change answers the first answer and is not run
	// again, which would set auto_renew back.
	changed := s.call(key, "GET", path, "")
	if rp := s.call(key, "PATCH", path, same, "Idempotency-Key", "same-1"); rp.status != http.StatusOK || !sameJSON(rp.body, before.body) || rp.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the keyed no-op PATCH replayed after a change: %d %s (Idempotent-Replayed %q), want its first answer replayed: %s",
			rp.status, rp.body, rp.header.Get("Idempotent-Replayed"), before.body)
	}
	if now := s.call(key, "GET", path, ""); !sameJSON(now.body, changed.body) {
		t.Errorf("the replay of a keyed no-op PATCH changed the domain: %s, was %s", now.body, changed.body)
	}
}
