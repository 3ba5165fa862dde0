package httpapi

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestTicketThreadBounded: a customer's reply that would take a ticket's
// thread past 1 MiB of message bodies, or past 200 messages, is a 409
// ticket_thread_full that changes nothing (every reply rewrites the whole
// thread in the replicated state and answers it whole); a reply that fits
// goes in; a staff reply is not bounded. tests/audit TestTicketThreadIsBounded
// checks the same from outside, on a cluster.
func TestTicketThreadBounded(t *testing.T) {
	w := newWHAPI(t)
	acc, _ := w.account()
	_, key := w.addKey(acc, fsm.KeyCreate{Name: "many", Scopes: []string{api.ScopeTicketsRead, api.ScopeTicketsWrite}, RateLimitPerMin: 1000})
	open := func(msg string) string {
		t.Helper()
		st, out := w.do(key, "POST", "/v1/tickets", `{"subject":"s","message":"`+msg+`"}`)
		if st != 201 {
			t.Fatalf("open: %d %v", st, out)
		}
		return out["id"].(string)
	}
	reply := func(id, body string) (int, map[string]any) {
		t.Helper()
		b, _ := json.Marshal(map[string]string{"body": body})
		return w.do(key, "POST", "/v1/tickets/"+id+"/reply", string(b))
	}
	messages := func(id string) int {
		t.Helper()
		_, out := w.do(key, "GET", "/v1/tickets/"+id, "")
		return len(out["messages"].([]any))
	}

	id := open("first")
	big := strings.Repeat("x", 20000)
	fits := (maxThreadBytes - len("first")) / len(big)
	for i := range fits {
		if st, out := reply(id, big); st != 201 {
			t.Fatalf("reply %d of %d bytes: %d %v", i+1, len(big), st, out)
		}
	}
	left := maxThreadBytes - len("first") - fits*len(big)
	if st, out := reply(id, strings.Repeat("y", left+1)); st != 409 || out["code"] != "ticket_thread_full" || !strings.Contains(fmt.Sprint(out["message"]), "new ticket") {
		t.Fatalf("a reply one byte past 1 MiB: %d %v %v; want 409 ticket_thread_full", st, out["code"], out["message"])
	}
	if n := messages(id); n != fits+1 {
		t.Fatalf("after a refused reply the thread has %d messages; want %d", n, fits+1)
	}
	if st, out := reply(id, strings.Repeat("y", left)); st != 201 {
		t.Fatalf("a reply of the %d bytes left: %d %v", left, st, out)
	}
	w.apply(fsm.CmdTicketReply, fsm.TicketReply{TicketID: id, MessageID: ids.New("msg", time.Now()), Staff: true, StaffName: "S", Body: "please open a new ticket"})
	if n := messages(id); n != fits+3 {
		t.Fatalf("after a staff reply to a full thread: %d messages; want %d", n, fits+3)
	}

	other := open("second")
	for n := 1; n < maxThreadMessages; n++ {
		if st, out := reply(other, "k"); st != 201 {
			t.Fatalf("one-byte reply to a thread of %d messages: %d %v", n, st, out)
		}
	}
	if st, out := reply(other, "k"); st != 409 || out["code"] != "ticket_thread_full" {
		t.Fatalf("a reply to a thread of %d messages: %d %v %v; want 409 ticket_thread_full", maxThreadMessages, st, out["code"], out["message"])
	}
	if n := messages(other); n != maxThreadMessages {
		t.Fatalf("the thread has %d messages; want %d", n, maxThreadMessages)
	}
}
