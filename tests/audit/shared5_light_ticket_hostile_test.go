package audit

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// ticketList is GET /v1/tickets (the list envelope) through coordinator i.
func (r *rig) ticketList(i int, key, query string) (tks []api.Ticket, total int) {
	r.t.Helper()
	var l struct {
		Data  []api.Ticket `json:"data"`
		Total int          `json:"total"`
	}
	r.get(r.t, i, key, "/v1/tickets"+query, &l)
	return l.Data, l.Total
}

func (r *rig) ticketGet(i int, key, id string) api.Ticket {
	r.t.Helper()
	var tk api.Ticket
	r.get(r.t, i, key, "/v1/tickets/"+id, &tk)
	return tk
}

// TestTicketHostileCustomer: what a careless or hostile customer sends as a
// ticket. Bodies the published schema refuses (empty or over-long subject
// and message, unknown priority or department, unknown fields, a body over
// 1 MiB) are 400s naming the field (413 for the size) and open nothing;
// the limits count characters as the schema does (200 two-byte characters
// are a valid subject); department and priority default to technical and
// medium. Markup, template and shell characters, right-to-left overrides
// and newlines in the message come back verbatim on create, GET, the list
// and in the signed ticket.created payload; control characters are refused
// with a 400 naming the field or kept verbatim, never altered silently.
func TestTicketHostileCustomer(t *testing.T) {
	r := sharedLightRig(t, "hook")
	f := r.follower()
	s := newSink(t, nil)
	wh := r.hook(r.keyA, s.URL, "ticket.created")
	_, before := r.ticketList(0, r.keyA, "")

	// As a customer sends (README, retry policy): a body the API refuses is
	// sent again after a leadership change's 503 (it may have been
	// applied: a client reads before writing again, and the count of
	// tickets checked after the refusals is that read); a ticket the test
	// means to open carries an Idempotency-Key, so the rig sends it again
	// and the cluster opens it once.
	refused := func(body any, hdr map[string]string) framework.Reply {
		t.Helper()
		return r.limited(f, r.send(f, r.keyA, "POST", "/v1/tickets", body, hdr, func(string, any, http.Header) bool { return true }))
	}
	keyed := func() map[string]string { return map[string]string{"Idempotency-Key": "hostile-" + rand.Text()} }

	long := func(c string, n int) string { return strings.Repeat(c, n) }
	for _, c := range []struct {
		name   string
		body   any
		status int
		field  string
	}{
		{"empty subject", map[string]any{"subject": "", "message": "m"}, 400, "subject"},
		{"blank subject", map[string]any{"subject": "   \t ", "message": "m"}, 400, "subject"},
		{"no subject", map[string]any{"message": "m"}, 400, "subject"},
		{"201-character subject", map[string]any{"subject": long("s", 201), "message": "m"}, 400, "subject"},
		{"empty message", map[string]any{"subject": "s", "message": ""}, 400, "message"},
		{"blank message", map[string]any{"subject": "s", "message": " \n\n "}, 400, "message"},
		{"20001-character message", map[string]any{"subject": "s", "message": long("m", 20001)}, 400, "message"},
		{"message as a number", map[string]any{"subject": "s", "message": 42}, 400, "message"},
		{"unknown priority", map[string]any{"subject": "s", "message": "m", "priority": "critical"}, 400, "priority"},
		{"priority with a space", map[string]any{"subject": "s", "message": "m", "priority": "high "}, 400, "priority"},
		{"unknown department", map[string]any{"subject": "s", "message": "m", "department": "legal"}, 400, "department"},
		{"department as a list", map[string]any{"subject": "s", "message": "m", "department": []string{"billing"}}, 400, "department"},
		{"a staff field", map[string]any{"subject": "s", "message": "m", "author": "staff"}, 400, "author"},
		{"a status", map[string]any{"subject": "s", "message": "m", "status": "closed"}, 400, "status"},
		{"over 1 MiB", map[string]any{"subject": "s", "message": long("x", 1<<20+10)}, 413, ""},
	} {
		rep := refused(c.body, nil)
		if rep.Status != c.status || !strings.Contains(string(rep.Body), c.field) {
			t.Errorf("%s: %s; want %d naming %q", c.name, rep, c.status, c.field)
		}
	}
	if _, after := r.ticketList(0, r.keyA, ""); after != before {
		t.Errorf("refused tickets opened %d", after-before)
	}

	// The schema's limits are characters.
	wide := map[string]any{"subject": long("ş", 200), "message": long("ğ", 20000)}
	if rep := r.call(f, r.keyA, "POST", "/v1/tickets", wide, keyed()); rep.Status != 201 {
		t.Errorf("200-character subject and 20000-character message of two-byte characters: %s; want 201 (maxLength counts characters)", rep)
	} else {
		var tk api.Ticket
		rep.Decode(t, &tk)
		if tk.Subject != wide["subject"] || tk.Department != "technical" || tk.Priority != "medium" || tk.Status != api.TicketOpen {
			t.Errorf("wide ticket: subject %d runes, department %q, priority %q, status %q", len([]rune(tk.Subject)), tk.Department, tk.Priority, tk.Status)
		}
	}
	for _, p := range []string{"low", "medium", "high", "urgent"} {
		for _, d := range []string{"technical", "billing", "sales", "general"} {
			if rep := r.call(f, r.keyA, "POST", "/v1/tickets", map[string]any{"subject": p + " " + d, "message": "m", "priority": p, "department": d}, keyed()); rep.Status != 201 ||
				!strings.Contains(string(rep.Body), `"priority":"`+p+`"`) || !strings.Contains(string(rep.Body), `"department":"`+d+`"`) {
				t.Errorf("priority %s department %s: %s", p, d, rep)
			}
		}
	}

	// Data, kept as data.
	// The subject's bidi override moved to the message: a one-line field
	// refuses bidi controls since mcp60 (a multi-line one keeps them).
	subject := `<script>alert("x")</script> & {{.Secret}} $(id) ` + "`uname`" + ` ' OR 1=1 -- ` + "gnp.exe 🚀"
	message := "<img src=x onerror=alert(1)>\n\tline two\n</textarea><!--\n" + `{"json":"inside"} \u0000 \\ "quoted"` + "\n\u2028after a line separator\n\u202egnp.exe"
	rep := r.write(f, r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: subject, Message: message, Priority: "high", Department: "billing"})
	if rep.Status != 201 {
		t.Fatalf("markup ticket: %s", rep)
	}
	if ct := rep.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	var made api.Ticket
	rep.Decode(t, &made)
	check := func(where string, tk api.Ticket, withThread bool) {
		t.Helper()
		if tk.Subject != subject {
			t.Errorf("%s: subject %q; sent %q", where, tk.Subject, subject)
		}
		if withThread && (len(tk.Messages) != 1 || tk.Messages[0].Body != message || tk.Messages[0].Author != "customer") {
			t.Errorf("%s: thread %+v; sent %q", where, tk.Messages, message)
		}
	}
	check("create answer", made, true)
	for i := range r.c.Len() {
		check(fmt.Sprintf("GET on coordinator %d", i), r.ticketGet(i, r.keyA, made.ID), true)
	}
	list, _ := r.ticketList(f, r.keyA, "?limit=200")
	found := false
	for _, tk := range list {
		if tk.ID == made.ID {
			found = true
			check("list", tk, false)
		}
	}
	if !found {
		t.Errorf("the markup ticket is not in the list")
	}
	h := s.waitAbout(t, "ticketId", made.ID, 1, 20*time.Second)[0]
	if ok, _, err := signedBy(wh.Secret, h.header.Get("X-Sunucu-Signature"), h.body); !ok || err != nil {
		t.Errorf("ticket.created with markup: signature does not verify (%v)", err)
	}
	ev := h.event(t)
	if ev.Data["subject"] != subject || ev.Data["priority"] != "high" || ev.Data["status"] != api.TicketOpen || fmt.Sprint(ev.Data["ticketNumber"]) != fmt.Sprint(made.Number) {
		t.Errorf("ticket.created data %v; want the subject %q, priority high, status open, number %d", ev.Data, subject, made.Number)
	}

	// Control characters: a 400 naming the field, or kept as sent.
	for _, c := range []struct{ field, subject, message string }{
		{"subject", "header\r\nBcc: everyone@example.com", "m"},
		{"subject", "nul\x00byte", "m"},
		{"subject", "\x1b[2J\x1b[31mred", "m"},
		{"subject", "bell\a\b\x7f", "m"},
		{"message", "s", "nul\x00byte"},
		{"message", "s", "\x1b]0;title\x07\x1b[2J"},
	} {
		rep := r.call(f, r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: c.subject, Message: c.message}, keyed())
		switch rep.Status {
		case 400:
			if !strings.Contains(string(rep.Body), c.field) {
				t.Errorf("%q/%q: %s; a 400 must name %s", c.subject, c.message, rep, c.field)
			}
		case 201:
			var tk api.Ticket
			rep.Decode(t, &tk)
			got := r.ticketGet(0, r.keyA, tk.ID)
			if got.Subject != c.subject || len(got.Messages) != 1 || got.Messages[0].Body != c.message {
				t.Errorf("%q/%q stored as %q/%+v", c.subject, c.message, got.Subject, got.Messages)
			}
		default:
			t.Errorf("%q/%q: %s; want 400 or 201", c.subject, c.message, rep)
		}
	}
	// Not JSON in the first place.
	for _, raw := range []string{`{"subject":"s","message":"m"`, `{"subject":"s","message":"m"}{}`, `subject=s&message=m`, `{"subject":"s","subject":"t","message":"m"}`} {
		hdr := keyed()
		hdr["Content-Type"] = "application/json"
		rep := refused(raw, hdr)
		if rep.Status != 400 && !(rep.Status == 201 && strings.Contains(raw, `"subject":"t"`)) {
			t.Errorf("body %q: %s; want 400", raw, rep)
		}
		if rep.Status == 201 {
			t.Logf("duplicate keys: %s", rep.Body)
		}
	}
}

// TestTicketLifecycleWithStaff: a customer's ticket and the operator's
// replies through hostplanectl on any coordinator. A staff reply shows in the
// thread as staff with the name given, sets the ticket answered and fires
// ticket.replied with the seed's payload (ticketId, ticketNumber, subject,
// status), signed; the customer's own replies do not fire it. Close is
// idempotent (a second close changes nothing); a reply re-opens a closed
// ticket. Replies the schema refuses are 400s; an Idempotency-Key on a reply
// posts it once. Staff replies and status changes to unknown tickets, or with
// no body or an unknown status, fail with a message and a non-zero exit. The
// list pages newest first, without threads.
func TestTicketLifecycleWithStaff(t *testing.T) {
	r := hookRig(t)
	f := r.follower()
	s := newSink(t, nil)
	wh := r.hook(r.keyA, s.URL, "ticket.replied")
	tk := r.ticket(f, r.keyA, "my server is down")

	reply := func(i int, id, body string, hdr map[string]string) api.Ticket {
		t.Helper()
		rep := r.call(i, r.keyA, "POST", "/v1/tickets/"+id+"/reply", map[string]string{"body": body}, hdr)
		if rep.Status != 200 && rep.Status != 201 {
			t.Fatalf("reply: %s", rep)
		}
		var out api.Ticket
		rep.Decode(t, &out)
		return out
	}
	got := reply(f, tk.ID, "any news?", nil)
	if len(got.Messages) != 2 || got.Messages[1].Author != "customer" || got.Status == api.TicketClosed {
		t.Errorf("after a customer reply: %+v", got)
	}

	// The operator answers on a coordinator that is not the one the
	// customer used.
	staff := ctl(t, r.c.Nodes[(f+1)%3], "ticket", "reply", tk.ID, "--as", "Ayşe from Support", "--body", "We are on it <b>now</b>.")
	if staff.code != 0 {
		t.Fatalf("%s", staff)
	}
	h := s.waitAbout(t, "ticketId", tk.ID, 1, 20*time.Second)[0]
	ev := h.event(t)
	if ev.Type != "ticket.replied" || h.header.Get("X-Sunucu-Event") != "ticket.replied" {
		t.Errorf("staff reply fired %s (%s)", ev.Type, h.header.Get("X-Sunucu-Event"))
	}
	if ok, _, err := signedBy(wh.Secret, h.header.Get("X-Sunucu-Signature"), h.body); !ok || err != nil {
		t.Errorf("ticket.replied signature does not verify: %v", err)
	}
	if ev.Data["ticketId"] != tk.ID || fmt.Sprint(ev.Data["ticketNumber"]) != fmt.Sprint(tk.Number) || ev.Data["subject"] != tk.Subject || ev.Data["status"] != "answered" {
		t.Errorf("ticket.replied data %v; want ticketId %s ticketNumber %d subject %q status answered", ev.Data, tk.ID, tk.Number, tk.Subject)
	}
	got = r.ticketGet(f, r.keyA, tk.ID)
	if got.Status != "answered" || len(got.Messages) != 3 || got.Messages[2].Author != "staff" || got.Messages[2].StaffName != "Ayşe from Support" || got.Messages[2].Body != "We are on it <b>now</b>." {
		t.Errorf("after the staff reply: %+v", got)
	}

	// The customer's replies never fire ticket.replied.
	reply(f, tk.ID, "thanks", nil)
	time.Sleep(2 * time.Second)
	if n := len(s.about("ticketId", tk.ID)); n != 1 {
		t.Errorf("%d ticket.replied deliveries after one staff reply and two customer replies", n)
	}

	// Close, twice; then a reply re-opens.
	var closed [2]api.Ticket
	for i := range 2 {
		rep := r.call((f+i)%3, r.keyA, "POST", "/v1/tickets/"+tk.ID+"/close", nil, nil)
		if rep.Status != 200 {
			t.Fatalf("close %d: %s", i+1, rep)
		}
		rep.Decode(t, &closed[i])
		if closed[i].Status != api.TicketClosed {
			t.Errorf("close %d: status %s", i+1, closed[i].Status)
		}
	}
	if len(closed[1].Messages) != len(closed[0].Messages) || !closed[1].UpdatedAt.Equal(closed[0].UpdatedAt) {
		t.Errorf("a second close changed the ticket: %d→%d messages, updated %s→%s", len(closed[0].Messages), len(closed[1].Messages), closed[0].UpdatedAt, closed[1].UpdatedAt)
	}
	got = reply(f, tk.ID, "it is down again", nil)
	if got.Status == api.TicketClosed || len(got.Messages) != 5 {
		t.Errorf("a reply to a closed ticket: status %s, %d messages; want it re-opened", got.Status, len(got.Messages))
	}
	// The operator can answer a closed ticket too; the customer hears of it.
	r.call(f, r.keyA, "POST", "/v1/tickets/"+tk.ID+"/close", nil, nil)
	if run := ctl(t, r.c.Nodes[f], "ticket", "reply", tk.ID, "--body", "Fixed; closing."); run.code != 0 {
		t.Errorf("%s", run)
	}
	s.waitAbout(t, "ticketId", tk.ID, 2, 20*time.Second)

	// Replies the schema refuses.
	for _, c := range []struct {
		name string
		body any
	}{
		{"empty", map[string]any{"body": ""}},
		{"blank", map[string]any{"body": " \n "}},
		{"missing", map[string]any{}},
		{"20001 characters", map[string]any{"body": strings.Repeat("r", 20001)}},
		{"unknown field", map[string]any{"body": "x", "author": "staff"}},
		{"a number", map[string]any{"body": 7}},
	} {
		if rep := r.call(f, r.keyA, "POST", "/v1/tickets/"+tk.ID+"/reply", c.body, nil); rep.Status != 400 {
			t.Errorf("reply %s: %s; want 400", c.name, rep)
		}
	}
	n := len(r.ticketGet(0, r.keyA, tk.ID).Messages)
	hdr := map[string]string{"Idempotency-Key": "reply-once"}
	for i := range 3 {
		reply(i, tk.ID, "only once", hdr)
	}
	if got := r.ticketGet(0, r.keyA, tk.ID); len(got.Messages) != n+1 {
		t.Errorf("three replies with one Idempotency-Key: %d messages added; want 1", len(got.Messages)-n)
	}
	for _, id := range []string{unknown(tk.ID), "../" + tk.ID, tk.ID + "x", "tkt_" + strings.Repeat("0", 300)} {
		for _, op := range []string{"reply", "close"} {
			rep := r.call(f, r.keyA, "POST", "/v1/tickets/"+id+"/"+op, map[string]string{"body": "x"}, nil)
			if rep.Status != 404 && rep.Status != 400 {
				t.Errorf("%s on %q: %s; want 404 (or 400)", op, id, rep)
			}
		}
	}

	// The operator's mistakes.
	for _, args := range [][]string{
		{"ticket", "reply", unknown(tk.ID), "--body", "x"},
		{"ticket", "reply", tk.ID, "--body", ""},
		{"ticket", "reply", tk.ID},
		{"ticket", "status", tk.ID, "bogus"},
		{"ticket", "status", unknown(tk.ID), "on_hold"},
	} {
		run := ctl(t, r.c.Nodes[0], args...)
		if run.code == 0 || strings.TrimSpace(run.stderr) == "" || strings.Contains(run.stderr, "panic") {
			t.Errorf("%s; want a non-zero exit with a message", run)
		}
	}
	if run := ctl(t, r.c.Nodes[0], "ticket", "status", tk.ID, "on_hold"); run.code != 0 {
		t.Errorf("%s", run)
	} else if got := r.ticketGet(f, r.keyA, tk.ID); got.Status != "on_hold" {
		t.Errorf("after status on_hold: %s", got.Status)
	}
	if m := r.ticketGet(0, r.keyA, tk.ID).Messages; m[len(m)-1].Author != "customer" || m[len(m)-1].Body != "only once" {
		t.Errorf("the operator's refused commands changed the thread: last message %+v", m[len(m)-1])
	}

	// Paging: 25 tickets of B's, newest first, 10 a page, no threads.
	for i := 1; i <= 25; i++ {
		r.ticket(i%3, r.keyB, fmt.Sprintf("b%02d", i))
	}
	seen := map[string]bool{}
	var prev int64 = 1 << 62
	for page, want := range []int{10, 10, 5, 0} {
		l, total := r.ticketList(f, r.keyB, fmt.Sprintf("?limit=10&page=%d", page+1))
		if len(l) != want || total != 25 {
			t.Errorf("page %d: %d tickets, total %d; want %d of 25", page+1, len(l), total, want)
		}
		for _, tk := range l {
			if seen[tk.ID] || tk.Number >= prev || len(tk.Messages) != 0 {
				t.Errorf("page %d: ticket %d %s (seen %v, previous number %d, %d messages); want newest first, once, no thread", page+1, tk.Number, tk.Subject, seen[tk.ID], prev, len(tk.Messages))
			}
			seen[tk.ID], prev = true, tk.Number
		}
	}
	if raw := r.call(f, r.keyB, "GET", "/v1/tickets?limit=10", nil, nil); !json.Valid(raw.Body) || strings.Contains(string(raw.Body), tk.ID) {
		t.Errorf("B's list: %s", raw)
	}

	// The operator's queue, on a coordinator that does not lead: every
	// account's tickets, by status and by account (id or email), A's with
	// its thread; close from the CLI is what the customer sees.
	queue := func(args ...string) (api.AdminTicketList, ctlRun) {
		t.Helper()
		run := ctl(t, r.c.Nodes[f], append([]string{"--json", "ticket", "list"}, args...)...)
		var l api.AdminTicketList
		if run.code != 0 || json.Unmarshal([]byte(run.stdout), &l) != nil {
			t.Fatalf("%s", run)
		}
		return l, run
	}
	if l, _ := queue(); l.Total != 26 || len(l.Data) != 26 || l.Data[0].Subject != "b25" || l.Data[25].ID != tk.ID || l.Data[25].AccountID != r.accA.ID {
		t.Errorf("the whole queue: %d of %d, first %q, last %s of %s; want 26, b25 first, A's ticket last", len(l.Data), l.Total, l.Data[0].Subject, l.Data[25].ID, l.Data[25].AccountID)
	}
	if l, _ := queue("--status", "on_hold"); l.Total != 1 || l.Data[0].ID != tk.ID || l.Data[0].AccountID != r.accA.ID {
		t.Errorf("--status on_hold: %+v", l)
	}
	if l, _ := queue("--account", "hook-b@example.com", "--status", "open", "--limit", "3"); l.Total != 25 || len(l.Data) != 3 || l.Data[0].AccountID != r.accB.ID {
		t.Errorf("--account B's email --status open --limit 3: %d of %d", len(l.Data), l.Total)
	}
	show := ctl(t, r.c.Nodes[f], "ticket", "show", tk.ID)
	if show.code != 0 || !containsAll(show.stdout, tk.ID, r.accA.ID, "my server is down", "on_hold", "staff (Ayşe from Support)", "We are on it <b>now</b>.", "only once") {
		t.Errorf("%s", show)
	}
	if run := ctl(t, r.c.Nodes[f], "ticket", "close", tk.ID); run.code != 0 || r.ticketGet(0, r.keyA, tk.ID).Status != api.TicketClosed {
		t.Errorf("%s; the customer sees %s", run, r.ticketGet(0, r.keyA, tk.ID).Status)
	}
	for flag, args := range map[string][]string{
		"--status":  {"ticket", "list", "--status", "waiting"},
		"--limit":   {"ticket", "list", "--limit", "0"},
		"account":   {"ticket", "list", "--account", "nobody@example.com"},
		"not found": {"ticket", "show", unknown(tk.ID)},
	} {
		if run := ctl(t, r.c.Nodes[f], args...); run.code == 0 || !strings.Contains(run.stderr, flag) {
			t.Errorf("%s; want a non-zero exit naming %s", run, flag)
		}
	}
}
