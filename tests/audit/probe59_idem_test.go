package audit

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework"
)

// p59Tool calls tool with args on s, sent again after Retry-After while it
// is answered 503 for a leadership change (the calls here carry an
// idempotency_key, so the cluster runs them once: a client's rule, as on
// REST), for up to 20 s.
func p59Tool(t *testing.T, s *mcpSession, tool string, args map[string]any) toolResult {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		tr := s.call(tool, args)
		if tr.leadershipChange() == "" || time.Now().After(deadline) {
			return tr
		}
		t.Logf("%s at %s: %s: sent again", tool, s.endpoint, tr.leadershipChange())
		time.Sleep(time.Second)
	}
}

// p59Answer is a tool answer's REST body: its id, or that of its member in,
// and its error code.
func p59Answer(tr toolResult, in string) (id, code string) {
	var m map[string]any
	if json.Unmarshal([]byte(tr.text), &m) != nil {
		return "", ""
	}
	code, _ = m["code"].(string)
	return p58ID(m, in), code
}

// TestProbe59IdempotencyThroughMCPAndTransfer: README's MCP tools take the
// Idempotency-Key header as the argument idempotency_key, and "scopes, rate
// limits, idempotency, … and errors are the REST call's own"; SPEC.md's
// "the same key and body within 24 h returns the first response; the same
// key with another body is a 422". As a customer's MCP client (one session
// at each of the three coordinators, the same API key) and its REST client:
//   - create_ticket, reply_ticket, power_server: the same key and arguments
//     at another coordinator answer the first status and the same id; the
//     key with another body, or power_server's key with another action, is
//     the tool error of REST's 422 idempotency_key_reused; the same key and
//     body over REST is the replay (Idempotent-Replayed: true, the same id)
//     and another body there the 422; a key first used over REST replays
//     through MCP. One ticket, one reply, one power action made.
//   - an idempotency_key README refuses (empty, a newline, NUL, not ASCII,
//     256 characters) is the tool error of REST's 400 naming the key, and
//     makes nothing.
//   - order_server (a quote, then the order on a call with its
//     confirmation_token): confirmed with a key, then quoted and confirmed
//     again with the same key at another coordinator (where the first token
//     is unknown: tokens live where they were issued), it is the same server
//     and one charge; the key with another body and a good token is the 422
//     and charges nothing; the key over REST replays the order.
//   - POST /v1/domains/transfer (REST; probe58 left it out of its replay
//     steps): the same key and body at another coordinator is the replay
//     with the same domain, one charge and one transfer at the registry;
//     another auth code with the key is the 422, at neither.
func TestProbe59IdempotencyThroughMCPAndTransfer(t *testing.T) {
	const rival, rivalPW = "p59-rival", "p59-rival-pw"
	r := newRigWith(t, framework.EPPDOptions{TLDs: []string{"test"}, Clients: map[string]string{framework.EPPDClientID: framework.EPPDPassword, rival: rivalPW}})
	ctx := r.ctx
	r.c.Credit(ctx, r.accA.ID, 3*serverPrice+2*domainPrice)
	n := r.c.Len()
	s := make([]*mcpSession, n)
	for i := range s {
		s[i] = &mcpSession{t: t, endpoint: r.c.URL(i) + "/mcp", token: r.keyA}
		s[i].initialize()
	}
	rest := func(i int, method, path, key string, body any) p58Reply {
		t.Helper()
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		return p58Do(t, ctx, r.c.URL(i), r.keyA, method, path, raw, map[string]string{"Idempotency-Key": key}, true)
	}
	count := func(path string) int {
		t.Helper()
		var l struct {
			Data []json.RawMessage `json:"data"`
		}
		rep := p58Do(t, ctx, r.c.URL(0), r.keyA, "GET", path, nil, nil, true)
		if rep.status != 200 || json.Unmarshal(rep.body, &l) != nil {
			t.Fatalf("%s", rep)
		}
		return len(l.Data)
	}
	// first checks a tool's first answer: a success with an id.
	first := func(what string, tr toolResult, in string) (string, float64) {
		t.Helper()
		id, _ := p59Answer(tr, in)
		if tr.isError || tr.rpcErr != nil || int(tr.status)/100 != 2 || id == "" {
			t.Fatalf("%s: %.400s", what, tr.raw)
		}
		return id, tr.status
	}
	replayed := func(what string, tr toolResult, in, id string, status float64) {
		t.Helper()
		if got, _ := p59Answer(tr, in); tr.isError || tr.status != status || got != id {
			t.Errorf("%s: %.400s; want the first answer again (%v, %s)", what, tr.raw, status, id)
		}
	}
	reused := func(what string, tr toolResult) {
		t.Helper()
		if _, code := p59Answer(tr, ""); !tr.isError || tr.status != 422 || code != "idempotency_key_reused" {
			t.Errorf("%s: %.400s; want the tool error of a 422 idempotency_key_reused", what, tr.raw)
		}
	}
	restReplayed := func(what string, rep p58Reply, in, id string, status float64) {
		t.Helper()
		var m map[string]any
		if rep.status != int(status) || rep.header.Get("Idempotent-Replayed") != "true" || json.Unmarshal(rep.body, &m) != nil || p58ID(m, in) != id {
			t.Errorf("%s: %s; want the replay of the MCP call's answer (%v, %s, Idempotent-Replayed: true)", what, rep, status, id)
		}
	}
	restReused := func(what string, rep p58Reply) {
		t.Helper()
		if rep.status != 422 || rep.code() != "idempotency_key_reused" {
			t.Errorf("%s: %s; want 422 idempotency_key_reused", what, rep)
		}
	}

	t.Run("ticket", func(t *testing.T) {
		before := count("/v1/tickets")
		body := map[string]any{"subject": "p59", "message": "first"}
		args := map[string]any{"idempotency_key": "p59-ticket", "body": body}
		tk, st := first("create_ticket", p59Tool(t, s[0], "create_ticket", args), "")
		replayed("create_ticket again at another coordinator", p59Tool(t, s[1], "create_ticket", args), "", tk, st)
		reused("create_ticket, the key with another body", p59Tool(t, s[2], "create_ticket",
			map[string]any{"idempotency_key": "p59-ticket", "body": map[string]any{"subject": "p59", "message": "second"}}))
		restReplayed("POST /v1/tickets with the MCP call's key and body", rest(1, "POST", "/v1/tickets", "p59-ticket", body), "", tk, st)
		restReused("POST /v1/tickets with the MCP call's key and another body", rest(2, "POST", "/v1/tickets", "p59-ticket", map[string]any{"subject": "x", "message": "y"}))

		// A key first used over REST, then through MCP.
		rb := map[string]any{"subject": "p59 rest", "message": "over REST"}
		rep := rest(0, "POST", "/v1/tickets", "p59-rest-first", rb)
		var m map[string]any
		if rep.status != 201 || json.Unmarshal(rep.body, &m) != nil {
			t.Fatalf("%s", rep)
		}
		replayed("create_ticket with a key a REST call used, the same body", p59Tool(t, s[2], "create_ticket",
			map[string]any{"idempotency_key": "p59-rest-first", "body": rb}), "", p58ID(m, ""), 201)
		reused("create_ticket with a key a REST call used, another body", p59Tool(t, s[0], "create_ticket",
			map[string]any{"idempotency_key": "p59-rest-first", "body": body}))
		if got := count("/v1/tickets"); got != before+2 {
			t.Errorf("%d tickets after two keys' sends, %d before; want two more", got, before)
		}

		// A reply.
		rargs := map[string]any{"id": tk, "idempotency_key": "p59-reply", "body": map[string]any{"body": "again"}}
		trep := p59Tool(t, s[1], "reply_ticket", rargs)
		if trep.isError || int(trep.status)/100 != 2 {
			t.Fatalf("reply_ticket: %.400s", trep.raw)
		}
		if again := p59Tool(t, s[2], "reply_ticket", rargs); again.isError || again.status != trep.status || again.text != trep.text {
			t.Errorf("reply_ticket again at another coordinator: %.400s; want the first answer %.400s", again.raw, trep.raw)
		}
		reused("reply_ticket, the key with another body", p59Tool(t, s[0], "reply_ticket",
			map[string]any{"id": tk, "idempotency_key": "p59-reply", "body": map[string]any{"body": "other"}}))
		if rep := rest(0, "POST", "/v1/tickets/"+tk+"/reply", "p59-reply", map[string]any{"body": "again"}); rep.status != int(trep.status) || rep.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("the reply's key and body over REST: %s; want the replay", rep)
		}
		var th struct {
			Messages []json.RawMessage `json:"messages"`
		}
		if rep := p58Do(t, ctx, r.c.URL(0), r.keyA, "GET", "/v1/tickets/"+tk, nil, nil, true); rep.status != 200 || json.Unmarshal(rep.body, &th) != nil || len(th.Messages) != 2 {
			t.Errorf("the ticket after the replies: %s; want two messages (the opening and one reply)", rep)
		}
	})

	// A key README refuses (1-255 printable ASCII) is REST's 400 through
	// MCP too, naming the key, and makes nothing.
	t.Run("bad keys", func(t *testing.T) {
		before := count("/v1/tickets")
		for i, k := range []string{"", "p59\nkey", "p59\u0000", "p59 é", strings.Repeat("k", 256)} {
			tr := p59Tool(t, s[i%n], "create_ticket", map[string]any{"idempotency_key": k, "body": map[string]any{"subject": "p59 bad key", "message": "m"}})
			if !tr.isError || tr.status != 400 || !strings.Contains(tr.text, "Idempotency-Key") && !strings.Contains(tr.text, "idempotency_key") {
				t.Errorf("create_ticket with idempotency_key %.20q: %.400s; want the tool error of a 400 naming the key", k, tr.raw)
			}
		}
		if got := count("/v1/tickets"); got != before {
			t.Errorf("%d tickets after the refused keys, %d before", got, before)
		}
	})

	var srv string
	t.Run("server order and power", func(t *testing.T) {
		before := r.charged(r.keyA)
		body := serverBody("p59mcp")
		quote := func(i int, key string, body map[string]any) string {
			t.Helper()
			tr := p59Tool(t, s[i], "order_server", map[string]any{"idempotency_key": key, "body": body})
			var q struct {
				Token string `json:"confirmation_token"`
			}
			if tr.isError || json.Unmarshal([]byte(tr.text), &q) != nil || q.Token == "" {
				t.Fatalf("order_server without a token at coordinator %d: %.400s; want a quote", i, tr.raw)
			}
			return q.Token
		}
		confirm := func(i int, key string, body map[string]any, tok string) toolResult {
			return p59Tool(t, s[i], "order_server", map[string]any{"idempotency_key": key, "body": body, "confirmation_token": tok})
		}
		tok := quote(0, "p59-order", body)
		var st float64
		srv, st = first("order_server confirmed", confirm(0, "p59-order", body, tok), "server")
		// The client lost the answer; at another coordinator it quotes and
		// confirms again with its key.
		tok = quote(1, "p59-order", body)
		replayed("order_server quoted and confirmed again with the key at another coordinator", confirm(1, "p59-order", body, tok), "server", srv, st)
		other := serverBody("p59mcp2")
		tok = quote(2, "p59-order", other)
		reused("order_server, the key with another body and a good token", confirm(2, "p59-order", other, tok))
		restReplayed("POST /v1/servers with the MCP order's key and body", rest(2, "POST", "/v1/servers", "p59-order", body), "server", srv, st)
		after := r.charged(r.keyA)
		if after.servers != before.servers+1 || after.invoices != before.invoices+1 || after.balance != before.balance-serverPrice {
			t.Errorf("one order by MCP and REST with one key: %+v → %+v; want one server and one charge", before, after)
		}
		acts := "/v1/actions?resource_id=" + srv + "&limit=200"
		framework.WaitFor(t, "the server provisioned", 60*time.Second, 200*time.Millisecond, func() bool {
			var x struct {
				ActionID string `json:"action_id"`
				Status   string `json:"status"`
			}
			rep := p58Do(t, ctx, r.c.URL(0), r.keyA, "GET", "/v1/servers/"+srv, nil, nil, true)
			return rep.status == 200 && json.Unmarshal(rep.body, &x) == nil && x.ActionID == "" && x.Status == "running"
		})
		nacts := count(acts)

		// A power action: the key again, then on another action.
		pargs := map[string]any{"id": srv, "action": "reboot", "idempotency_key": "p59-power"}
		act, pst := first("power_server reboot", p59Tool(t, s[0], "power_server", pargs), "action")
		replayed("power_server reboot again at another coordinator", p59Tool(t, s[1], "power_server", pargs), "action", act, pst)
		reused("power_server stop with the reboot's key", p59Tool(t, s[2], "power_server",
			map[string]any{"id": srv, "action": "stop", "idempotency_key": "p59-power"}))
		if rep := p58Do(t, ctx, r.c.URL(1), r.keyA, "POST", "/v1/servers/"+srv+"/power/reboot", nil, map[string]string{"Idempotency-Key": "p59-power"}, true); rep.status != int(pst) || rep.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("the power call's key over REST: %s; want the replay", rep)
		}
		framework.WaitActionSuccess(t, r.apis[0].Client(r.keyA), act, 60*time.Second)
		if got := count(acts); got != nacts+1 {
			t.Errorf("the server's actions: %d after the power calls, %d before; want one more", got, nacts)
		}
	})

	t.Run("domain transfer", func(t *testing.T) {
		const name = "p59-moving.test"
		r.reg.RegisterAs(rival, rivalPW, name, "Move-Code-59")
		before := r.charged(r.keyA)
		transfers := len(r.reg.Transactions("domain:transfer:request", ""))
		body := map[string]any{"name": name, "auth_code": "Move-Code-59", "contact": contact}
		rep := rest(0, "POST", "/v1/domains/transfer", "p59-transfer", body)
		var fm map[string]any
		if rep.status/100 != 2 || json.Unmarshal(rep.body, &fm) != nil || p58ID(fm, "") == "" {
			t.Fatalf("the transfer: %s", rep)
		}
		again := rest(1, "POST", "/v1/domains/transfer", "p59-transfer", body)
		var am map[string]any
		switch {
		case again.status != rep.status || again.header.Get("Idempotent-Replayed") != "true":
			t.Errorf("the transfer again at another coordinator: %s; want the replay of %d", again, rep.status)
		case json.Unmarshal(again.body, &am) != nil || p58ID(am, "") != p58ID(fm, ""):
			t.Errorf("the transfer's replay names another domain: %s; first %s", again, rep)
		default:
			if d := p58NotIn(am, fm, ""); d != "" {
				t.Errorf("the transfer's replay says what the first did not (%s): %s; first %s", d, again, rep)
			}
		}
		restReused("the transfer's key with another auth code", rest(2, "POST", "/v1/domains/transfer", "p59-transfer",
			map[string]any{"name": name, "auth_code": "Other-Code-59", "contact": contact}))
		framework.WaitFor(t, name+" here", 60*time.Second, 200*time.Millisecond, func() bool {
			var d struct {
				Status string `json:"status"`
			}
			g := p58Do(t, ctx, r.c.URL(0), r.keyA, "GET", "/v1/domains/"+p58ID(fm, ""), nil, nil, true)
			if g.status != 200 || json.Unmarshal(g.body, &d) != nil || d.Status == "failed" {
				t.Fatalf("the transferred domain: %s", g)
			}
			return d.Status == "active"
		})
		after := r.charged(r.keyA)
		if after.domains != before.domains+1 || after.balance != before.balance-domainPrice {
			t.Errorf("one transfer sent three times with one key: %+v → %+v; want one domain and one charge", before, after)
		}
		if got := len(r.reg.Transactions("domain:transfer:request", "")) - transfers; got != 1 {
			t.Errorf("%d transfer requests reached the registry; want 1", got)
		}
	})
}
