package audit

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// threadBytes is the size of a ticket's thread: its messages' bodies.
func threadBytes(tk api.Ticket) int {
	n := 0
	for _, m := range tk.Messages {
		n += len(m.Body)
	}
	return n
}

// TestTicketThreadIsBounded: a customer cannot grow one ticket without end.
// Every reply rewrites the whole thread in the replicated state and answers
// it whole, so a thread grown by replies of the largest size (20,000
// characters) to tens of MB slowed every other account's writes (seen: after
// 1,300 replies, 23 MB, another account's ticket create went from p50 70 ms
// to 270 ms, p90 1.9 s, and fsm.db from 55 MB to 370 MB). A customer reply
// that would take the thread's messages past 1 MiB is a 409
// ticket_thread_full that says to open a new ticket, through a follower as
// through the leader, and changes nothing, and so is one that would make it
// more than 200 messages; a thread of 50 such replies is still served; the
// operator can still answer; a new ticket takes replies.
func TestTicketThreadIsBounded(t *testing.T) {
	const limit = 1 << 20
	r := sharedLightRig(t, "r7tk")
	f := r.follower()
	big := strings.Repeat("x", 20000)
	var tk api.Ticket
	if rep := r.write(f, r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "long thread", Message: "first"}); rep.Status != 201 {
		t.Fatalf("open: %s", rep)
	} else {
		rep.Decode(t, &tk)
	}
	fits := (limit - len("first")) / len(big)
	accepted := 0
	for i := 0; i < fits+5; i++ {
		// With a key, a 503 of an election under load is sent again and the
		// reply still goes in once.
		rep := r.call(i%3, r.keyA, "POST", "/v1/tickets/"+tk.ID+"/reply", map[string]string{"body": big}, map[string]string{"Idempotency-Key": fmt.Sprintf("r7tk-reply-%d", i)})
		if rep.Status == 201 {
			accepted++
			continue
		}
		if rep.Status != 409 || rep.Code() != "ticket_thread_full" || !strings.Contains(string(rep.Body), "new ticket") {
			t.Fatalf("reply %d (thread of %d bytes): %s; want 201, or 409 ticket_thread_full saying to open a new ticket", i+1, len("first")+accepted*len(big), rep)
		}
		break
	}
	if accepted != fits {
		t.Fatalf("%d replies of %d bytes went in before a refusal; want %d (a thread of at most %d bytes)", accepted, len(big), fits, limit)
	}
	before := r.ticketGet(0, r.keyA, tk.ID)
	if len(before.Messages) != fits+1 || threadBytes(before) > limit {
		t.Fatalf("the thread holds %d messages of %d bytes; want %d of at most %d", len(before.Messages), threadBytes(before), fits+1, limit)
	}
	// Refused alike on every coordinator, a short reply too once full, and
	// nothing changes.
	for i := range r.c.Len() {
		rep := r.call(i, r.keyA, "POST", "/v1/tickets/"+tk.ID+"/reply", map[string]string{"body": strings.Repeat("y", limit-threadBytes(before)+1)}, nil)
		if rep.Status != 409 || rep.Code() != "ticket_thread_full" {
			t.Errorf("coordinator %d, a reply one byte past the limit: %s; want 409 ticket_thread_full", i, rep)
		}
	}
	if after := r.ticketGet(f, r.keyA, tk.ID); len(after.Messages) != len(before.Messages) || after.UpdatedAt != before.UpdatedAt {
		t.Errorf("refused replies changed the ticket: %d messages, updated %s → %d, %s", len(before.Messages), before.UpdatedAt, len(after.Messages), after.UpdatedAt)
	}
	// A reply that still fits goes in.
	if room := limit - threadBytes(before); room > 0 {
		if rep := r.call(f, r.keyA, "POST", "/v1/tickets/"+tk.ID+"/reply", map[string]string{"body": strings.Repeat("z", room)}, map[string]string{"Idempotency-Key": "r7tk-room"}); rep.Status != 201 {
			t.Errorf("a reply of the %d bytes left: %s; want 201", room, rep)
		}
	}
	// The operator still answers a full thread.
	ctx := r.ctx
	if _, err := r.c.AnyAlive(nil).Admin().StaffReply(ctx, tk.ID, api.StaffReplyRequest{Body: "Please open a new ticket.", StaffName: "Support"}); err != nil {
		t.Errorf("staff reply to a full thread: %v", err)
	}
	// Another ticket is not affected, and it is bounded by its number of
	// messages too (each has a fixed overhead however short its body): 200.
	var other api.Ticket
	r.write(f, r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "next", Message: "continued"}).Decode(t, &other)
	if rep := r.call(f, r.keyA, "POST", "/v1/tickets/"+other.ID+"/reply", map[string]string{"body": big}, map[string]string{"Idempotency-Key": "r7tk-other"}); rep.Status != 201 {
		t.Fatalf("reply to a new ticket: %s", rep)
	}
	const maxMessages = 200
	short := 2
	for ; short < maxMessages+5; short++ {
		// Keyed as the replies above: sent again after an election's 503.
		rep := r.call(short%3, r.keyA, "POST", "/v1/tickets/"+other.ID+"/reply", map[string]string{"body": "k"}, map[string]string{"Idempotency-Key": fmt.Sprintf("r7tk-short-%d", short)})
		if rep.Status == 201 {
			continue
		}
		if rep.Status != 409 || rep.Code() != "ticket_thread_full" || !strings.Contains(string(rep.Body), "new ticket") {
			t.Fatalf("one-byte reply to a thread of %d messages: %s; want 201, or 409 ticket_thread_full", short, rep)
		}
		break
	}
	if got := r.ticketGet(f, r.keyA, other.ID); short != maxMessages || len(got.Messages) != maxMessages {
		t.Errorf("one-byte replies were refused at a thread of %d messages, which holds %d; want %d", short, len(got.Messages), maxMessages)
	}
}
