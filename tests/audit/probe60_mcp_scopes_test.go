package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// p60Answer is one tools/call as a client written from README's MCP
// section sees it: the HTTP status and headers, and either the JSON body of
// a refusal (HTTP status not 200) or the tool result (isError, the REST
// status in _meta["hostplane/status"] and the text, the REST body).
type p60Answer struct {
	http    int
	header  http.Header
	body    string // a refusal's body (HTTP status not 200)
	rpcErr  map[string]any
	isError bool
	status  int
	text    string
}

func (a p60Answer) String() string {
	if a.http != 200 {
		return fmt.Sprintf("HTTP %d %.300s", a.http, a.body)
	}
	if a.rpcErr != nil {
		return fmt.Sprintf("JSON-RPC error %v", a.rpcErr)
	}
	return fmt.Sprintf("tool result isError=%v status %d %.300s", a.isError, a.status, a.text)
}

// p60Call sends tools/call of name with args on m's session, the client's
// own request (not mcpSession.call, which keeps no refusal's body).
func p60Call(t *testing.T, m *mcpSession, name string, args map[string]any) p60Answer {
	t.Helper()
	m.id++
	raw, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": m.id, "method": "tools/call", "params": map[string]any{"name": name, "arguments": args}})
	req, _ := http.NewRequest("POST", m.endpoint, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(framework.MCPHeaders(req, m.token, m.session, "2025-06-18"))
	if err != nil {
		t.Fatalf("tools/call %s: %v", name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	a := p60Answer{http: resp.StatusCode, header: resp.Header}
	if resp.StatusCode != 200 {
		a.body = string(body)
		return a
	}
	body = sseLast(resp, body)
	var out struct {
		Error  map[string]any `json:"error"`
		Result struct {
			IsError bool `json:"isError"`
			Meta    struct {
				Status int `json:"hostplane/status"`
			} `json:"_meta"`
			Content []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"content"`
		} `json:"result"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("tools/call %s: %v: %.300s", name, err, body)
	}
	a.rpcErr, a.isError, a.status = out.Error, out.Result.IsError, out.Result.Meta.Status
	for _, c := range out.Result.Content {
		if c.Type == "text" {
			a.text += c.Text
		}
	}
	return a
}

// p60Tool is a tool tools/list shows and the operation of /openapi.json it
// is (its name the operationId in snake_case, README).
type p60Tool struct {
	name  string
	op    openAPIOp
	props map[string]json.RawMessage // its inputSchema's properties
	path  []string                   // its path parameters, in order ({id} first)
}

var p60PathParam = regexp.MustCompile(`\{([^}]+)\}`)

// p60Snake is README's tool name of an operationId: snake_case, an acronym
// one word (listServerIPs → list_server_ips, listOSTemplates →
// list_os_templates).
func p60Snake(id string) string {
	var words []string
	start := 0
	up := func(i int) bool { return id[i] >= 'A' && id[i] <= 'Z' }
	for i := 1; i < len(id); i++ {
		switch {
		case up(i) && !up(i-1):
			// a word starts after a lower-case letter or digit
		case up(i) && i+1 < len(id) && !up(i+1) && up(i-1) && !(id[i+1] == 's' && (i+2 == len(id) || up(i+2))):
			// OSTemplates: T starts a word (IPs' s is a plural)
		default:
			continue
		}
		words = append(words, id[start:i])
		start = i
	}
	words = append(words, id[start:])
	return strings.ToLower(strings.Join(words, "_"))
}

// p60Tools lists every tool m's tools/list shows (following nextCursor)
// and matches each to its operation in ops; a tool that is no operation
// fails t naming it.
func p60Tools(t *testing.T, m *mcpSession, ops []openAPIOp) []p60Tool {
	t.Helper()
	byName := map[string]openAPIOp{}
	for _, op := range ops {
		byName[p60Snake(op.OperationID)] = op
	}
	var out []p60Tool
	for cursor := ""; ; {
		params := map[string]any{}
		if cursor != "" {
			params["cursor"] = cursor
		}
		resp, res := m.post("tools/list", params, false)
		if resp.StatusCode != 200 {
			t.Fatalf("tools/list: %d", resp.StatusCode)
		}
		var l struct {
			Result struct {
				Tools []struct {
					Name        string `json:"name"`
					InputSchema struct {
						Properties map[string]json.RawMessage `json:"properties"`
					} `json:"inputSchema"`
				} `json:"tools"`
				NextCursor string `json:"nextCursor"`
			} `json:"result"`
		}
		raw, _ := json.Marshal(res)
		if err := json.Unmarshal(raw, &l); err != nil {
			t.Fatalf("tools/list: %v: %.300s", err, raw)
		}
		for _, tl := range l.Result.Tools {
			op, ok := byName[tl.Name]
			if !ok {
				t.Errorf("tools/list shows %s, which is no operation of /openapi.json: its scope is not known to this test", tl.Name)
				continue
			}
			p := p60Tool{name: tl.Name, op: op, props: tl.InputSchema.Properties}
			for _, m := range p60PathParam.FindAllStringSubmatch(op.path, -1) {
				p.path = append(p.path, m[1])
				if _, ok := p.props[m[1]]; !ok {
					t.Errorf("tool %s (%s %s) has no argument %s for its path parameter", tl.Name, op.method, op.path, m[1])
				}
			}
			out = append(out, p)
		}
		if cursor = l.Result.NextCursor; cursor == "" {
			break
		}
	}
	return out
}

// p60Owned is what account A holds, by the path parameter that names it:
// {id} by the path's collection, the others by name.
type p60Owned struct {
	byCollection map[string]string // "/servers/" → A's server id, …
	byParam      map[string]string // "snapshotId" → A's snapshot, "ip", "deliveryId", "action"
}

// args are tool's arguments naming A's resources (nil when a path
// parameter names nothing this test knows: an error naming the tool), and
// the path parameter that names the resource, {id}'s value.
func (o p60Owned) args(t *testing.T, tool p60Tool) (map[string]any, string) {
	t.Helper()
	args := map[string]any{}
	var main string
	for _, p := range tool.path {
		var v string
		if p == "id" {
			for prefix, id := range o.byCollection {
				if strings.HasPrefix(tool.op.path, prefix+"{id}") {
					v = id
				}
			}
			main = v
		} else {
			v = o.byParam[p]
		}
		if v == "" {
			t.Errorf("tool %s (%s %s): no resource of A for {%s}; this test must learn it", tool.name, tool.op.method, tool.op.path, p)
			return nil, ""
		}
		args[p] = v
	}
	if _, ok := tool.props["body"]; ok {
		b := bodiesUnderIDs[tool.op.method+" "+tool.op.path]
		if b == nil {
			b = map[string]any{}
		}
		args["body"] = b
	}
	return args, main
}

// p60Volatile are members of a read that change without a write of the
// account: when a key or app was last used and how often (README: a
// refused call counts against the key as a /v1 request does).
var p60Volatile = regexp.MustCompile(`"(last_used[a-z_]*|lastUsed[A-Za-z]*|use_count|request_id)":("[^"]*"|null|[0-9]+),?`)

// p60State is what A's reads answer (the status and body; a 404 is an
// answer: A's hosting has no custom domain) through coordinator 0, path by path,
// with p60Volatile left out.
func p60State(t *testing.T, r *rig, paths []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range paths {
		rep := p58Do(t, r.ctx, r.c.URL(0), r.keyA, "GET", p, nil, nil, true)
		if rep.status != 200 && rep.status != 404 {
			t.Fatalf("A's %s", rep)
		}
		out[p] = fmt.Sprint(rep.status, " ", p60Volatile.ReplaceAllString(string(rep.body), ""))
	}
	return out
}

// p60Settled waits until two reads of A's state a second apart agree (the
// orders' provisioning, the registry's answer and the webhook deliveries
// done) and returns it.
func p60Settled(t *testing.T, r *rig, paths []string) map[string]string {
	t.Helper()
	var last map[string]string
	framework.WaitFor(t, "A's state settled", 90*time.Second, time.Second, func() bool {
		now := p60State(t, r, paths)
		same := last != nil && fmt.Sprint(now) == fmt.Sprint(last)
		last = now
		return same
	})
	return last
}

// p60Changed names the reads of A whose answer differs from before.
func p60Changed(t *testing.T, r *rig, paths []string, before map[string]string) []string {
	t.Helper()
	now := p60State(t, r, paths)
	var out []string
	for _, p := range paths {
		if now[p] != before[p] {
			out = append(out, fmt.Sprintf("%s: %.600s → %.600s", p, before[p], now[p]))
		}
	}
	return out
}

// TestProbe60MCPToolScopesAndAccounts: every tool the MCP server lists
// (tools/list for a key holding every scope; a tool's scope is its
// operation's x-scope in /openapi.json, so a new tool is covered, and a
// tool that is no operation fails naming it), called as a client written
// from README's MCP section, through a follower, on an account that holds
// one of everything (a server with a snapshot, hosting, a domain, a ticket,
// a webhook with a delivery, an invoice, an action, a connected app, keys):
//   - (a) with an API key of A holding every scope /v1/scopes lists but the
//     tool's (and its x-alt-scope), and with an OAuth access token of A
//     granted account:read only, each with A's own ids: README's
//     insufficient-scope refusal, HTTP 403 with WWW-Authenticate
//     `Bearer error="insufficient_scope", scope="… <the tool's scope>"` and
//     resource_metadata, and a missing_scope error body naming the scope;
//     the token's account:read tools are not refused for scope;
//   - (b) with B's key (every scope), each tool that takes an id given A's:
//     the tool error of a 404, the same code and message (but for the id)
//     as for an id that names nothing, showing none of A's ids;
//     list_actions with A's server as resource_id is the 404 of an unknown
//     resource_id;
//   - afterwards A's reads through /v1 (every list and item above) answer
//     what they did before.
func TestProbe60MCPToolScopesAndAccounts(t *testing.T) {
	// A rival registrar holds p60-body.test (p58Bodies' transfer), so that
	// transfer_domain's quote, which asks the registry, gets to the key.
	const rival, rivalPW = "p60-rival", "p60-rival-pw"
	r := newRigWith(t, framework.EPPDOptions{TLDs: []string{"test"}, Clients: map[string]string{framework.EPPDClientID: framework.EPPDPassword, rival: rivalPW}},
		"--public-url", "https://api.audit.example", "--rate-limit", "100000", "--ip-rate-limit", "1000000")
	r.reg.RegisterAs(rival, rivalPW, "p60-body.test", "Abc-12345")
	ctx := r.ctx
	r.c.Credit(ctx, r.accA.ID, 10*serverPrice)
	own := r.buy()
	// A snapshot of A's server.
	r.accepted(t, "A's snapshot", r.keyA, r.write(0, r.keyA, "POST", "/v1/servers/"+own.server+"/snapshots", map[string]any{"name": "p60"}), 60*time.Second)
	var snaps struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	r.get(t, 0, r.keyA, "/v1/servers/"+own.server+"/snapshots", &snaps)
	if len(snaps.Data) == 0 {
		t.Fatalf("A's server has no snapshot after its create succeeded")
	}
	// A connected app (account:read), whose token is (a)'s OAuth client.
	_, _, _, connect := oauthAppOn(t, r)
	access, _ := connect(r.keyA)
	var apps api.ConnectedAppList
	r.get(t, 0, r.keyA, "/v1/account/connected-apps", &apps)
	if len(apps.Data) != 1 {
		t.Fatalf("A's connected apps: %+v", apps.Data)
	}
	o := p60Owned{
		byCollection: map[string]string{"/servers/": own.server, "/hosting/": own.hosting, "/domains/": own.domain, "/actions/": own.action,
			"/billing/invoices/": own.invoice, "/webhooks/": own.webhook, "/tickets/": own.ticket,
			"/account/api-keys/": r.keyID(r.keyA), "/account/connected-apps/": apps.Data[0].ID},
		byParam: map[string]string{"snapshotId": snaps.Data[0].ID, "ip": own.serverIP, "deliveryId": own.delivery, "action": "reboot", "name": own.host},
	}
	aIDs := []string{own.server, own.hosting, own.domain, own.action, own.invoice, own.webhook, own.ticket, own.delivery, snaps.Data[0].ID, apps.Data[0].ID, r.keyID(r.keyA)}

	// The scopes, as /v1/scopes lists them (no key).
	var sl struct {
		Data []struct {
			Scope string `json:"scope"`
		} `json:"data"`
	}
	if rep := p58Do(t, ctx, r.c.URL(0), "", "GET", "/v1/scopes", nil, nil, true); rep.status != 200 || json.Unmarshal(rep.body, &sl) != nil || len(sl.Data) < 10 {
		t.Fatalf("%s", rep)
	}
	var scopes []string
	for _, s := range sl.Data {
		scopes = append(scopes, s.Scope)
	}

	f := r.follower()
	ep := r.c.URL(f) + "/mcp"
	ops := p58Ops(t, ctx, r.c.URL(0))
	full := &mcpSession{t: t, endpoint: ep, token: r.keyA}
	full.initialize()
	tools := p60Tools(t, full, ops)
	if len(tools) < 60 {
		t.Fatalf("tools/list for a key with every scope shows %d tools; want the whole API", len(tools))
	}
	sort.Slice(tools, func(i, j int) bool { return tools[i].name < tools[j].name })

	// The keys of (a), made before A's state is read.
	without := map[string]*mcpSession{}
	for _, tl := range tools {
		if tl.op.Scope == "" || without[tl.op.Scope+" "+tl.op.AltScope] != nil {
			continue
		}
		rest := slices.DeleteFunc(slices.Clone(scopes), func(s string) bool { return s == tl.op.Scope || s == tl.op.AltScope })
		k := r.keyOfA(t, api.KeyCreateRequest{Name: strings.TrimSpace("p60 without " + tl.op.Scope + " " + tl.op.AltScope), Scopes: rest})
		m := &mcpSession{t: t, endpoint: ep, token: k}
		m.initialize()
		without[tl.op.Scope+" "+tl.op.AltScope] = m
	}
	oauth := &mcpSession{t: t, endpoint: r.c.URL((f+1)%r.c.Len()) + "/mcp", token: access}
	oauth.initialize()
	bs := &mcpSession{t: t, endpoint: ep, token: r.keyB}
	bs.initialize()

	reads := []string{"/v1/account", "/v1/account/api-keys", "/v1/account/connected-apps", "/v1/servers", "/v1/servers/ips", "/v1/hosting", "/v1/domains",
		"/v1/tickets", "/v1/webhooks", "/v1/billing/wallet", "/v1/billing/wallet/transactions", "/v1/billing/invoices", "/v1/actions?limit=200",
		"/v1/servers/" + own.server, "/v1/servers/" + own.server + "/snapshots", "/v1/servers/" + own.server + "/ips", "/v1/hosting/" + own.hosting,
		"/v1/hosting/" + own.hosting + "/custom-domain", "/v1/domains/" + own.domain, "/v1/tickets/" + own.ticket, "/v1/webhooks/" + own.webhook,
		"/v1/billing/invoices/" + own.invoice, "/v1/actions/" + own.action}
	before := p60Settled(t, r, reads)

	// insufficient checks a refusal of tool for scope.
	insufficient := func(t *testing.T, what string, tl p60Tool, a p60Answer) {
		t.Helper()
		var e api.Error
		wa := a.header.Get("WWW-Authenticate")
		m := regexp.MustCompile(`scope="([^"]*)"`).FindStringSubmatch(wa)
		switch {
		case a.http != 403:
			t.Errorf("%s: %s; want HTTP 403 insufficient_scope", what, a)
		case !strings.HasPrefix(wa, "Bearer ") || !strings.Contains(wa, `error="insufficient_scope"`) || !strings.Contains(wa, "resource_metadata=") || m == nil ||
			!slices.Contains(strings.Fields(m[1]), tl.op.Scope):
			t.Errorf("%s: WWW-Authenticate %q; want Bearer error=\"insufficient_scope\", scope naming %s, resource_metadata", what, wa, tl.op.Scope)
		case json.Unmarshal([]byte(a.body), &e) != nil || e.StatusCode != 403 || e.Code != "missing_scope" || !strings.Contains(e.Message, tl.op.Scope):
			t.Errorf("%s: body %.300s; want the error body 403 missing_scope naming %s", what, a.body, tl.op.Scope)
		}
	}

	t.Run("scope", func(t *testing.T) {
		refused, admitted := 0, 0
		for _, tl := range tools {
			if tl.op.Scope == "" {
				continue // served without a key (list_scopes)
			}
			args, _ := o.args(t, tl)
			if args == nil {
				continue
			}
			insufficient(t, fmt.Sprintf("%s with a key lacking %s %s", tl.name, tl.op.Scope, tl.op.AltScope), tl, p60Call(t, without[tl.op.Scope+" "+tl.op.AltScope], tl.name, args))
			refused++
			a := p60Call(t, oauth, tl.name, args)
			if tl.op.Scope == "account:read" || tl.op.AltScope == "account:read" {
				if a.http == 403 || a.http == 401 || a.status == 403 || a.status == 401 {
					t.Errorf("%s with an OAuth token granted account:read: %s; want it served", tl.name, a)
				}
				admitted++
				continue
			}
			insufficient(t, tl.name+" with an OAuth token granted account:read", tl, a)
			refused++
		}
		t.Logf("%d tools: %d calls refused for scope, %d admitted", len(tools), refused, admitted)
	})

	t.Run("another account's ids", func(t *testing.T) {
		crossed := 0
		for _, tl := range tools {
			if len(tl.path) == 0 || tl.op.Scope == "" {
				continue
			}
			args, main := o.args(t, tl)
			if args == nil {
				continue
			}
			if main == "" {
				t.Errorf("tool %s (%s): no {id}", tl.name, tl.op.path)
				continue
			}
			none := map[string]any{}
			for k, v := range args {
				none[k] = v
			}
			none["id"] = unknown(main)
			mine, unk := p60Call(t, bs, tl.name, args), p60Call(t, bs, tl.name, none)
			switch {
			case mine.http != 200 || !mine.isError || mine.status != 404:
				t.Errorf("B's %s with A's %s: %s; want the tool error of a 404", tl.name, main, mine)
			case unk.http != 200 || !sameError(mine.text, unk.text, main):
				t.Errorf("B's %s: A's %s answered %s; an id naming nothing %s (an answer tells them apart)", tl.name, main, mine, unk)
			}
			for _, id := range aIDs {
				if id != main && strings.Contains(mine.text, id) {
					t.Errorf("B's %s with A's %s shows A's %s: %s", tl.name, main, id, mine)
				}
			}
			crossed++
		}
		// An id in the query: list_actions of A's server (README: a
		// resource_id that is none of the account's is a 404, the same as
		// one naming nothing).
		mine := p60Call(t, bs, "list_actions", map[string]any{"resource_id": own.server})
		unk := p60Call(t, bs, "list_actions", map[string]any{"resource_id": unknown(own.server)})
		if mine.http != 200 || !mine.isError || mine.status != 404 || unk.http != 200 || !sameError(mine.text, unk.text, own.server) {
			t.Errorf("B's list_actions with A's server as resource_id: %s; with an unknown one: %s; want the same 404", mine, unk)
		}
		t.Logf("%d tools called with A's ids by B", crossed)
	})

	// README's Idempotency-Key (1-255 printable ASCII) through MCP on
	// every tool whose operation declares the header: A's own call with
	// its ids and a body the operation accepts, and a key README refuses,
	// is the tool error of REST's 400 naming the key (an order's: when its
	// quote is confirmed), and does nothing (the check of A's state below:
	// a terminate_server or an order that went ahead would show).
	t.Run("refused idempotency keys", func(t *testing.T) {
		bad := []string{"", "p60\nkey", "p60\u0000", "p60 é", strings.Repeat("k", 256)}
		bodies := p58Bodies("p60", "https://hooks.example.com")
		n, quoted := 0, 0
		for _, tl := range tools {
			if _, ok := tl.props["idempotency_key"]; !ok {
				if tl.op.idem {
					t.Errorf("tool %s: %s %s declares Idempotency-Key, the tool takes no idempotency_key", tl.name, tl.op.method, tl.op.path)
				}
				continue
			}
			args, _ := o.args(t, tl)
			if args == nil {
				continue
			}
			if b := bodies[tl.op.method+" "+tl.op.path]; b != nil {
				args["body"] = b
			}
			k := bad[n%len(bad)]
			n++
			args["idempotency_key"] = k
			a := p60Call(t, full, tl.name, args)
			var q struct {
				Token string `json:"confirmation_token"`
			}
			if !a.isError && json.Unmarshal([]byte(a.text), &q) == nil && q.Token != "" {
				// An order's first call is a quote (README: nothing is
				// dispatched); the key is refused when it is confirmed.
				args["confirmation_token"] = q.Token
				a = p60Call(t, full, tl.name, args)
				quoted++
			}
			if a.http != 200 || !a.isError || a.status != 400 || !strings.Contains(a.text, "Idempotency-Key") && !strings.Contains(a.text, "idempotency_key") {
				t.Errorf("A's %s with idempotency_key %.20q: %s; want the tool error of a 400 naming the key", tl.name, k, a)
			}
		}
		t.Logf("%d tools called with a refused idempotency_key (%d of them quoted first)", n, quoted)
	})

	if ch := p60Changed(t, r, reads, before); len(ch) > 0 {
		t.Errorf("A's state changed by calls that were all refused:\n%s", strings.Join(ch, "\n"))
	}
}
