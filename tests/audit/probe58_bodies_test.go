package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// p58SendAsClient sends a request, and sends it again after the pause its
// Retry-After asks for (at most 5 s, as pkg/client) while the answer is a
// 503 no_leader with Retry-After (an election under way), for up to 30 s;
// any other answer, a no_leader without Retry-After included, is returned
// as it is. pkg/client sends a write again only with an Idempotency-Key
// (the first may have been applied); these bodies must all be refused, and a
// first send that made something shows in the account's lists the test
// checks at its end, so sending again hides nothing.
func p58SendAsClient(t *testing.T, ctx context.Context, base, key, method, path string, body []byte) p58Reply {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rep := p58Do(t, ctx, base, key, method, path, body, nil, false)
		after, err := strconv.Atoi(rep.header.Get("Retry-After"))
		if rep.status != 503 || rep.code() != "no_leader" || err != nil || after < 0 || !time.Now().Before(deadline) {
			return rep
		}
		t.Logf("%s: sent again after Retry-After %d s", rep, after)
		time.Sleep(time.Duration(min(max(after, 1), 5)) * time.Second)
	}
}

// TestProbe58HostileBodiesEveryCreate: README's body rules ("valid UTF-8
// (else a 400 naming the field), one object with the documented member
// names only: an unknown name is 400 unknown_field, and so is a known one in
// another case, and a name given twice is 400 duplicate_field") and
// SPEC.md's "clear 4xx on bad input", member by member, on every operation
// of the served /openapi.json that takes a body and names no resource in
// its path (tickets, webhooks, API keys, the three orders, their quotes, the
// domain transfer), and on a ticket reply and a webhook update of the
// customer's own, through all three coordinators with the customer's own
// net/http client. For each member the request body schema lists, in an
// otherwise valid body: the member with a value of another JSON type, with
// bytes that are not UTF-8 (a string, or a string in an array), in upper
// case, and given twice; plus a member the schema does not list. Each is a
// 400 in the error envelope whose message names the member (unknown_field,
// duplicate_field where README says so), and afterwards the account has
// made nothing: no order, key, ticket, reply or webhook beyond its own, and
// its webhook's description unchanged. Before, the orders' malformed,
// unknown-field and over-long bodies were checked, the hosting routes'
// members, and the rest by example only.
func TestProbe58HostileBodiesEveryCreate(t *testing.T) {
	r := newRig(t) // a registry: without one the domain routes are 404 domains_not_offered before any body
	ctx := r.ctx
	recv := newReceiver(t)
	tk := r.ticket(0, r.keyA, "p58 bodies")
	wh := r.hook(r.keyA, recv.URL, "ticket.created")
	bases := p58Bodies("p58", recv.URL)
	ids := map[string]string{"POST /tickets/{id}/reply": tk.ID, "PATCH /webhooks/{id}": wh.ID}

	// The request body schemas of /openapi.json, each member's type
	// (p59BodyOps reads them for probe59 too).
	checked, ops := 0, 0
	for _, bop := range p59BodyOps(t, r) {
		method, path, s := bop.method, bop.path, bop.schema
		name := method + " " + path
		base, ok := bases[name]
		if !ok {
			continue
		}
		if len(s.Properties) == 0 {
			t.Errorf("%s: no request body schema with members", name)
			continue
		}
		ops++
		url := "/v1" + strings.ReplaceAll(path, "{id}", ids[name])
		send := func(i int, what string, body []byte, member, code string) {
			t.Helper()
			rep := p58SendAsClient(t, ctx, r.c.URL(i), r.keyA, strings.ToUpper(method), url, body)
			rep.wantMemberRefusal(t, fmt.Sprintf("%s, %s, coordinator %d", name, what, i), member, code)
			checked++
		}
		with := func(m string, v any) []byte {
			b := map[string]any{}
			for k, x := range base {
				b[k] = x
			}
			b[m] = v
			raw, err := json.Marshal(b)
			if err != nil {
				t.Fatal(err)
			}
			return raw
		}
		k := 0
		for m, ps := range s.Properties {
			p := ps
			i := k % r.c.Len()
			k++
			wrong := map[string]any{"string": 12345, "integer": "x", "number": "x", "boolean": "x", "array": "x", "object": "x"}[p.Type]
			if wrong != nil {
				send(i, fmt.Sprintf("%s as %T", m, wrong), with(m, wrong), m, "")
			}
			bad := []byte("\"p58\xff\xfebad\"")
			switch {
			case p.Type == "string":
				send(i, m+" not UTF-8", bytes.Replace(with(m, "P58MARK"), []byte(`"P58MARK"`), bad, 1), m, "")
			case p.Type == "array" && p.Items != nil && p.Items.Type == "string":
				send(i, m+"[0] not UTF-8", bytes.Replace(with(m, []string{"P58MARK"}), []byte(`"P58MARK"`), bad, 1), m, "")
			}
			// The member in upper case (the base's own value, or one of
			// the wrong type, the member itself left out), and the member
			// twice.
			v, has := base[m]
			if !has {
				v = wrong // the name is refused before its value
			}
			up := map[string]any{}
			for x, w := range base {
				if x != m {
					up[x] = w
				}
			}
			up[strings.ToUpper(m[:1])+m[1:]] = v
			raw, _ := json.Marshal(up)
			send(i, m+" in upper case", raw, strings.ToUpper(m[:1])+m[1:], "unknown_field")
			if !has {
				continue
			}
			one, _ := json.Marshal(v)
			body := with(m, v)
			body = append(body[:len(body)-1], []byte(fmt.Sprintf(",%q:%s}", m, one))...)
			send(i, m+" twice", body, m, "duplicate_field")
		}
		send(ops%r.c.Len(), "an unknown member", with("p58_extra", "x"), "p58_extra", "unknown_field")
	}
	if ops != len(bases) {
		t.Errorf("%d operations checked, want %d (each base's)", ops, len(bases))
	}
	t.Logf("%d hostile bodies over %d operations", checked, ops)
	for list, want := range map[string]int{"/v1/tickets": 1, "/v1/webhooks": 1, "/v1/servers": 0, "/v1/hosting": 0, "/v1/domains": 0, "/v1/account/api-keys": 1} {
		var l struct {
			Data []json.RawMessage `json:"data"`
		}
		rep := p58Do(t, ctx, r.c.URL(0), r.keyA, "GET", list, nil, nil, true)
		if rep.status != 200 || json.Unmarshal(rep.body, &l) != nil || len(l.Data) != want {
			t.Errorf("after the hostile bodies, %s holds (want %d): %s", list, want, rep)
		}
	}
	var th struct {
		Messages []json.RawMessage `json:"messages"`
	}
	if rep := p58Do(t, ctx, r.c.URL(0), r.keyA, "GET", "/v1/tickets/"+tk.ID, nil, nil, true); rep.status != 200 || json.Unmarshal(rep.body, &th) != nil || len(th.Messages) != 1 {
		t.Errorf("after the hostile bodies, the ticket's thread: %s", rep)
	}
	var w struct {
		Description string `json:"description"`
	}
	if rep := p58Do(t, ctx, r.c.URL(0), r.keyA, "GET", "/v1/webhooks/"+wh.ID, nil, nil, true); rep.status != 200 || json.Unmarshal(rep.body, &w) != nil || w.Description != wh.Description {
		t.Errorf("after the hostile bodies, the webhook: %s", rep)
	}
}

// p58Bodies is a valid body of each operation probe58 sends its hostile
// bodies to: the creates, their quotes, the domain transfer, a ticket reply
// and a webhook update. tag (p58, p59) marks what each probe names and makes.
// probe59 starts from these and leaves probe58's kinds of hostile body out
// for them: one table, so an operation added here is covered by both once.
func p58Bodies(tag, receiverURL string) map[string]map[string]any {
	return map[string]map[string]any{
		"POST /tickets":            {"subject": "s", "message": "m"},
		"POST /tickets/{id}/reply": {"body": "b"},
		"POST /webhooks":           {"url": receiverURL + "/" + tag, "events": []string{"ticket.created"}},
		"PATCH /webhooks/{id}":     {"description": "d"},
		"POST /account/api-keys":   {"name": "n", "scopes": []string{"tickets:read"}},
		"POST /servers":            serverBody(tag + "body"),
		"POST /servers/quote":      serverBody(tag + "body"),
		"POST /hosting":            hostingBody(tag + "body"),
		"POST /hosting/quote":      hostingBody(tag + "body"),
		"POST /domains":            domainBody(tag + "-body.test"),
		"POST /domains/quote":      domainBody(tag + "-body.test"),
		"POST /domains/transfer":   {"name": tag + "-body.test", "auth_code": "Abc-12345", "contact": contact},
		// Its quote (mcp60), which takes the transfer's body and rules.
		"POST /domains/transfer/quote": {"name": tag + "-body.test", "auth_code": "Abc-12345", "contact": contact},
	}
}
