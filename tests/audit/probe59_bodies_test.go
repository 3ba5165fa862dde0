package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// p59Schema is a request body schema of /openapi.json, as much as a client
// generator reads of it.
type p59Schema struct {
	Ref        string                `json:"$ref"`
	Type       string                `json:"type"`
	Properties map[string]*p59Schema `json:"properties"`
	Items      *p59Schema            `json:"items"`
	MaxLength  *int                  `json:"maxLength"`
	Minimum    *float64              `json:"minimum"`
	Maximum    *float64              `json:"maximum"`
	Enum       []any                 `json:"enum"`
}

// p59BodyOp is an operation of /openapi.json that takes a JSON body.
type p59BodyOp struct {
	method, path string // path as /openapi.json writes it, without /v1
	opID         string
	schema       *p59Schema
	idem         bool // it declares the Idempotency-Key header
}

// p59BodyOps reads every operation of base's /openapi.json that takes a JSON
// request body, with its schema resolved one level ($ref of the body and of
// each member).
func p59BodyOps(t *testing.T, r *rig) []p59BodyOp {
	t.Helper()
	rep := p58Do(t, r.ctx, r.c.URL(0), "", "GET", "/openapi.json", nil, nil, true)
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if rep.status != 200 || json.Unmarshal(rep.body, &doc) != nil {
		t.Fatalf("%s", rep)
	}
	var resolve func(s *p59Schema) *p59Schema
	resolve = func(s *p59Schema) *p59Schema {
		if s == nil || s.Ref == "" {
			return s
		}
		var out p59Schema
		if err := json.Unmarshal(doc.Components.Schemas[strings.TrimPrefix(s.Ref, "#/components/schemas/")], &out); err != nil {
			t.Fatalf("%s: %v", s.Ref, err)
		}
		return resolve(&out)
	}
	idem := map[string]bool{}
	for _, op := range parseOperations(t, rep.body) {
		idem[op.method+" "+op.path] = op.idem
	}
	var out []p59BodyOp
	for path, methods := range doc.Paths {
		for method, raw := range methods {
			var op struct {
				OpID string `json:"operationId"`
				Body struct {
					Content map[string]struct {
						Schema *p59Schema `json:"schema"`
					} `json:"content"`
				} `json:"requestBody"`
			}
			if method == "parameters" || json.Unmarshal(raw, &op) != nil || op.Body.Content == nil {
				continue
			}
			s := resolve(op.Body.Content["application/json"].Schema)
			if s == nil {
				t.Errorf("%s %s: a request body without a JSON schema", method, path)
				continue
			}
			for m, p := range s.Properties {
				s.Properties[m] = resolve(p)
				s.Properties[m].Items = resolve(s.Properties[m].Items)
			}
			name := strings.ToUpper(method) + " " + path
			out = append(out, p59BodyOp{method: strings.ToUpper(method), path: path, opID: op.OpID, schema: s, idem: idem[name]})
		}
	}
	slices.SortFunc(out, func(a, b p59BodyOp) int { return strings.Compare(a.path+a.method, b.path+b.method) })
	return out
}

// p59Hostile is one hostile value of a member, and why it is.
type p59Hostile struct {
	what string
	raw  string // the member's value as JSON text, spliced in as written
}

// p59HostileValues are the values of a member of schema p a careless or
// hostile client sends that the API must refuse: for a string, NUL and
// other control characters (README's text rule allows only tab, CR and LF,
// and names allow none), a string one character beyond maxLength (or 100,000
// characters where none is given), a value outside its enum; for an integer,
// below its minimum (zero, negative), above its maximum, beyond int64, a
// fraction and 1e400; for an array of strings, an element with NUL, and an
// element of another type.
func p59HostileValues(p *p59Schema) []p59Hostile {
	var out []p59Hostile
	switch p.Type {
	case "string":
		out = append(out, p59Hostile{"with NUL", `"p59\u0000nul"`}, p59Hostile{"with a BEL control character", `"p59\u0007bel"`},
			p59Hostile{"with ESC", `"p59\u001b[31m"`})
		n := 100000
		if p.MaxLength != nil {
			n = *p.MaxLength + 1
		}
		out = append(out, p59Hostile{fmt.Sprintf("%d characters long", n), `"` + strings.Repeat("a", n) + `"`})
		if len(p.Enum) > 0 {
			out = append(out, p59Hostile{"outside its enum", `"p59-none-of-them"`})
		}
	case "integer":
		if p.Minimum != nil {
			out = append(out, p59Hostile{"below its minimum", fmt.Sprint(int64(*p.Minimum) - 1)}, p59Hostile{"negative", "-5"})
		}
		if p.Maximum != nil {
			out = append(out, p59Hostile{"above its maximum", fmt.Sprint(int64(*p.Maximum) + 1)})
		}
		out = append(out, p59Hostile{"beyond int64", "9223372036854775808"}, p59Hostile{"a fraction", "1.5"},
			p59Hostile{"1e400", "1e400"}, p59Hostile{"-1e400", "-1e400"})
	case "array":
		if p.Items != nil && p.Items.Type == "string" {
			out = append(out, p59Hostile{"[0] with NUL", `["p59\u0000nul"]`}, p59Hostile{"[0] a number", `[12345]`},
				p59Hostile{"[0] an object", `[{}]`})
		}
	}
	return out
}

// TestProbe59HostileBodiesOnSubRoutes: README's body rules and SPEC.md's
// "clear 4xx on bad input" on every operation of the served /openapi.json
// that takes a JSON body, through the three coordinators with a customer's
// own net/http client, on real resources of the customer's (a server with
// an address and a snapshot, a hosting account, a domain, a ticket, a
// webhook). probe58's TestProbe58HostileBodiesEveryCreate sent, member by
// member, a value of another JSON type, bytes that are not UTF-8, the name
// in another case and twice, and an unknown member to the creates (and a
// ticket reply and a webhook update); here the same go to every other
// operation with a body (the routes under /servers/{id}, /hosting/{id},
// /domains/{id}), and every operation with a body, creates included, gets
// the values a careless client sends (p59HostileValues: control
// characters, over-long strings, values outside an enum or a range, numbers
// beyond int64 or JSON's doubles, fractions for integers, bad array
// elements). Each is a 400 in the error envelope whose message names the
// member, and afterwards nothing of the account's has changed: its lists,
// its balance, each resource's settings and the actions of its server and
// hosting account. An operation with a body this test has no base body for
// fails it, so a new one is covered when it is added. Through MCP, each
// operation's tool with an unknown member, and with NUL in each string
// member, is the tool error of that 400 (README: the REST body's rules). Each request carries
// an Idempotency-Key where the operation honours one and is sent again
// after a 503 no_leader (a client's rule), so an election does not fail it.
func TestProbe59HostileBodiesOnSubRoutes(t *testing.T) {
	r := newRig(t)
	ctx := r.ctx
	r.c.Credit(ctx, r.accA.ID, 5*(serverPrice+hostingPrice+domainPrice))
	// An address pool, so the server has an address whose PTR the
	// customer may set (without one the PTR route is a 404 for the address
	// before any body is read).
	adm := r.c.AnyAlive(nil).Admin()
	pool := api.IPPoolCreateRequest{Name: "p59", CIDR: "198.51.100.0/28", Gateway: "198.51.100.1"}
	setUp(ctx, t, "pool p59", adm.IPPools, func(x api.IPPool) bool { return x.Name == pool.Name },
		func(ctx context.Context) (api.IPPool, error) { return adm.CreateIPPool(ctx, pool) })
	o := r.buy()
	if o.serverIP == "192.0.2.10" {
		t.Fatalf("the server has no address from the pool")
	}
	// The hosting account and the domain settled, and a snapshot to revert
	// to, so that nothing changes in the background while the test looks.
	var hosted struct {
		ActionID string `json:"action_id"`
		Status   string `json:"status"`
	}
	framework.WaitFor(t, "the hosting account active", 60*time.Second, 200*time.Millisecond, func() bool {
		r.get(t, 0, r.keyA, "/v1/hosting/"+o.hosting, &hosted)
		return hosted.ActionID == "" && hosted.Status == "active"
	})
	framework.WaitFor(t, "the domain active", 60*time.Second, 200*time.Millisecond, func() bool {
		var d struct {
			Status string `json:"status"`
		}
		r.get(t, 0, r.keyA, "/v1/domains/"+o.domain, &d)
		return d.Status == "active"
	})
	rep := r.write(0, r.keyA, "POST", "/v1/servers/"+o.server+"/snapshots", map[string]any{"name": "p59"})
	acc := r.accepted(t, "a snapshot", r.keyA, rep, 60*time.Second)
	var snap struct {
		Snapshot struct {
			ID string `json:"id"`
		} `json:"snapshot"`
	}
	rep.Decode(t, &snap)
	if snap.Snapshot.ID == "" {
		t.Fatalf("the snapshot's answer names no snapshot: %s (action %s)", rep, acc.Action.ID)
	}
	recv := newReceiver(t)

	// A valid body of each operation: a hostile value replaces one member.
	// The creates are probe58's bodies, which got probe58's first four kinds
	// of hostile body there already.
	bases := p58Bodies("p59", recv.URL)
	creates := slices.Collect(maps.Keys(bases))
	maps.Copy(bases, map[string]map[string]any{
		"PATCH /domains/{id}":                              {"auto_renew": true},
		"PUT /domains/{id}/hosts/{name}":                   {"addresses": []string{"8.8.8.8"}},
		"PUT /hosting/{id}/custom-domain":                  {"domain": "www.p59-body.example"},
		"POST /hosting/{id}/password-reset":                {"target": "both"},
		"PUT /hosting/{id}/php":                            {"php_version": "8.3"},
		"POST /hosting/{id}/suspend":                       {},
		"POST /hosting/{id}/unsuspend":                     {},
		"POST /servers/{id}/console":                       {},
		"PUT /servers/{id}/ips/{ip}/ptr":                   {"hostname": "p59.example.com"},
		"PATCH /servers/{id}/label":                        {"label": "p59-label"},
		"POST /servers/{id}/password-reset":                {},
		"POST /servers/{id}/power/{action}":                {"force": false, "grace_seconds": 30},
		"POST /servers/{id}/reinstall":                     {"osTemplate": "base"},
		"POST /servers/{id}/snapshots":                     {"name": "p59-other"},
		"POST /servers/{id}/snapshots/{snapshotId}/revert": {},
	})
	bases0 := maps.Clone(bases)
	fill := func(path string) string {
		id := o.server
		switch {
		case strings.HasPrefix(path, "/tickets/"):
			id = o.ticket
		case strings.HasPrefix(path, "/webhooks/"):
			id = o.webhook
		case strings.HasPrefix(path, "/hosting/"):
			id = o.hosting
		case strings.HasPrefix(path, "/domains/"):
			id = o.domain
		}
		return "/v1" + strings.NewReplacer("{id}", id, "{ip}", o.serverIP, "{snapshotId}", snap.Snapshot.ID, "{action}", "reboot", "{name}", o.host).Replace(path)
	}

	// What the account holds and how its resources are set: the same after
	// every refusal.
	state := func() string {
		t.Helper()
		var b strings.Builder
		pick := func(path string, fields ...string) {
			var m map[string]json.RawMessage
			rep := p58Do(t, ctx, r.c.URL(0), r.keyA, "GET", path, nil, nil, true)
			if rep.status != 200 || json.Unmarshal(rep.body, &m) != nil {
				t.Fatalf("%s", rep)
			}
			for _, f := range fields {
				fmt.Fprintf(&b, "%s %s=%s\n", path, f, m[f])
			}
		}
		count := func(path string) {
			var l struct {
				Data []json.RawMessage `json:"data"`
			}
			rep := p58Do(t, ctx, r.c.URL(0), r.keyA, "GET", path, nil, nil, true)
			if rep.status != 200 || json.Unmarshal(rep.body, &l) != nil {
				t.Fatalf("%s", rep)
			}
			fmt.Fprintf(&b, "%s holds %d\n", path, len(l.Data))
		}
		for _, l := range []string{"/v1/tickets", "/v1/webhooks", "/v1/servers", "/v1/hosting", "/v1/domains", "/v1/account/api-keys",
			"/v1/servers/" + o.server + "/snapshots", "/v1/billing/invoices?limit=200", "/v1/billing/wallet/transactions?limit=200",
			"/v1/actions?resource_id=" + o.server + "&limit=200", "/v1/actions?resource_id=" + o.hosting + "&limit=200"} {
			count(l)
		}
		pick("/v1/billing/wallet", "balance_usd_cents")
		pick("/v1/servers/"+o.server, "label", "hostname", "status", "ips")
		pick("/v1/hosting/"+o.hosting, "status", "php_version", "custom_domain")
		pick("/v1/domains/"+o.domain, "status", "nameservers", "auto_renew", "transfer_lock", "whois_privacy")
		pick("/v1/tickets/"+o.ticket, "status", "messages")
		pick("/v1/webhooks/"+o.webhook, "url", "events", "description", "is_active")
		return b.String()
	}
	before := state()

	ops := p59BodyOps(t, r)
	checked, n := 0, 0
	for _, op := range ops {
		name := op.method + " " + op.path
		base, ok := bases[name]
		if !ok {
			t.Errorf("%s takes a body this test has no base body for: add one", name)
			continue
		}
		delete(bases, name)
		url := fill(op.path)
		send := func(what string, body []byte, member, code string) {
			t.Helper()
			i := n % r.c.Len()
			n++
			var hdr map[string]string
			if op.idem {
				hdr = map[string]string{"Idempotency-Key": fmt.Sprintf("p59-%d-%d", n, rand.Int64())}
			}
			rep := p58Do(t, ctx, r.c.URL(i), r.keyA, op.method, url, body, hdr, true)
			rep.wantMemberRefusal(t, fmt.Sprintf("%s, %s, coordinator %d", name, what, i), member, code)
			checked++
		}
		// with is base with member m's value the JSON text raw (m
		// left out when raw is ""), then extra appended as written.
		with := func(m, raw, extra string) []byte {
			var b bytes.Buffer
			b.WriteString("{")
			keys := make([]string, 0, len(base))
			for k := range base {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			sep := ""
			for _, k := range keys {
				if k == m {
					continue
				}
				v, err := json.Marshal(base[k])
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&b, "%s%q:%s", sep, k, v)
				sep = ","
			}
			if raw != "" {
				fmt.Fprintf(&b, "%s%q:%s", sep, m, raw)
				sep = ","
			}
			if extra != "" {
				b.WriteString(sep + extra)
			}
			b.WriteString("}")
			return b.Bytes()
		}
		members := make([]string, 0, len(op.schema.Properties))
		for m := range op.schema.Properties {
			members = append(members, m)
		}
		slices.Sort(members)
		for _, m := range members {
			p := op.schema.Properties[m]
			for _, h := range p59HostileValues(p) {
				send(m+" "+h.what, with(m, h.raw, ""), m, "")
			}
			if slices.Contains(creates, name) {
				continue // probe58's kinds, sent there
			}
			wrong := map[string]string{"string": "12345", "integer": `"x"`, "number": `"x"`, "boolean": `"x"`, "array": `"x"`, "object": `"x"`}[p.Type]
			if wrong != "" {
				send(m+" as "+wrong, with(m, wrong, ""), m, "")
			}
			if p.Type == "string" {
				send(m+" not UTF-8", with(m, "\"p59\xff\xfebad\"", ""), m, "")
			}
			v, has := base[m]
			value := wrong
			if has {
				raw, _ := json.Marshal(v)
				value = string(raw)
			}
			up := strings.ToUpper(m[:1]) + m[1:]
			send(m+" in upper case", with(m, "", fmt.Sprintf("%q:%s", up, value)), up, "unknown_field")
			if has {
				send(m+" twice", with(m, value, fmt.Sprintf("%q:%s", m, value)), m, "duplicate_field")
			}
		}
		if !slices.Contains(creates, name) {
			send("an unknown member", with("", "", `"p59_extra":"x"`), "p59_extra", "unknown_field")
			send("an unknown member with NUL in its name", with("", "", `"p59\u0000x":1`), "p59", "unknown_field")
		}
	}
	for name := range bases {
		t.Errorf("%s: /openapi.json lists no such operation with a body (a stale base here)", name)
	}

	// Through MCP (README: a tool's body is "handed to the operation as
	// sent: the REST body's rules and errors"), each operation's tool with
	// an unknown member and, per string member, one with NUL: the tool
	// error of the 400 naming the member. (An order's tool quotes first:
	// the quote's 400; the domain transfer has its quote since mcp60, so
	// the token-then-confirm path below is for an order without one.)
	mcp := &mcpSession{t: t, endpoint: r.c.URL(1) + "/mcp", token: r.keyA}
	mcp.initialize()
	_, listed := mcp.post("tools/list", map[string]any{}, false)
	var tl struct {
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	if raw, _ := json.Marshal(listed["result"]); json.Unmarshal(raw, &tl) != nil || len(tl.Tools) == 0 {
		t.Fatalf("tools/list: %v", listed)
	}
	tools := map[string]string{} // operationId, lower case: the tool
	for _, x := range tl.Tools {
		tools[strings.ReplaceAll(x.Name, "_", "")] = x.Name
	}
	params := map[string]string{"ip": o.serverIP, "snapshotId": snap.Snapshot.ID, "action": "reboot", "name": o.host}
	for _, op := range ops {
		tool, ok := tools[strings.ToLower(op.opID)]
		if !ok {
			t.Errorf("%s %s: no tool for operation %s in tools/list", op.method, op.path, op.opID)
			continue
		}
		base := bases0[op.method+" "+op.path]
		args := func(m string, v any) map[string]any {
			a := map[string]any{}
			for _, seg := range strings.Split(op.path, "/") {
				if p, ok := strings.CutPrefix(seg, "{"); ok {
					p = strings.TrimSuffix(p, "}")
					a[p] = params[p]
					if p == "id" {
						a[p] = strings.Split(strings.TrimPrefix(fill(op.path), "/v1/"), "/")[1]
					}
				}
			}
			if op.idem {
				a["idempotency_key"] = fmt.Sprintf("p59-mcp-%d", rand.Int64())
			}
			b := map[string]any{}
			for k, x := range base {
				b[k] = x
			}
			b[m] = v
			a["body"] = b
			return a
		}
		try := func(what, member string, a map[string]any) {
			t.Helper()
			tr := p59Tool(t, mcp, tool, a)
			var q struct {
				Token string `json:"confirmation_token"`
			}
			if !tr.isError && json.Unmarshal([]byte(tr.text), &q) == nil && q.Token != "" {
				// An order without a quote operation (the domain
				// transfer's, before mcp60) issues its token before any body rule:
				// the confirmation must then be the 400 (and charge
				// nothing: the state check below).
				a["confirmation_token"] = q.Token
				t.Logf("%s, %s: a confirmation_token before the body's refusal; confirming it", tool, what)
				tr = p59Tool(t, mcp, tool, a)
			}
			var e p58Envelope
			if !tr.isError || tr.status != 400 || json.Unmarshal([]byte(tr.text), &e) != nil || !strings.Contains(e.Message, member) {
				t.Errorf("%s (%s %s) through MCP, %s: %.400s; want the tool error of a 400 naming %s", tool, op.method, op.path, what, tr.raw, member)
			}
			checked++
		}
		try("an unknown member", "p59_extra", args("p59_extra", "x"))
		for m, p := range op.schema.Properties {
			if p.Type == "string" {
				try(m+" with NUL", m, args(m, "p59\x00nul"))
			}
		}
	}
	t.Logf("%d hostile bodies over %d operations", checked, len(ops))
	if after := state(); after != before {
		t.Errorf("the refused bodies changed the account:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
