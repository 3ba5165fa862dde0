package audit

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework"
)

// p58Step is one write of TestProbe58IdempotencyEveryOperation: sent with
// an Idempotency-Key of its own, then again with the same key and body, then
// with the same key and another request (another body, or the same body on
// another route of the same kind).
type p58Step struct {
	name         string
	method, path string
	body         any
	otherPath    string // "" path
	otherBody    any    // nil body
	count        string // a list that holds one more item after the step ("" none: the action list of its resource)
	resource     string // the resource whose actions the step starts ("" none)
	then         func(first map[string]any)
}

// TestProbe58IdempotencyEveryOperation: SPEC.md's "Idempotency-Key on …
// every other POST that creates: the same key and body within 24 h returns
// the first response; the same key with another body is a 422" on every
// operation whose /openapi.json declares the header, with real resources of
// a customer's (a ticket, its reply, a webhook and a redelivery, an API key,
// a server with its snapshot, revert, power, reinstall and termination, a
// hosting account with its PHP version, suspension, custom domain and
// deletion, a domain and its update), each request of a step at another of
// the three coordinators: the first is answered 2xx; the same key and body
// is the first answer again (Idempotent-Replayed: true, the same status,
// nothing in it that the first did not say, and the resource's id) and
// makes nothing more; the same key with another body, or the same body on
// another route, is a 422 idempotency_key_reused in the error envelope that
// makes nothing. Before, the replay and the 422 were checked only for
// ticket and snapshot creation, the three orders, a domain's update and
// three hosting routes. Every operation that declares the header is in a
// step (checked against the served /openapi.json), but the domain transfer
// (probe14_domains_test.go checks its 422).
func TestProbe58IdempotencyEveryOperation(t *testing.T) {
	r := newRig(t, "--registrar-epp-host-objects") // a domain's child name servers (glue63)
	ctx := r.ctx
	r.c.Credit(ctx, r.accA.ID, 10*(serverPrice+hostingPrice+domainPrice))
	key := r.keyA
	n := r.c.Len()
	recv := framework.NewWebhookReceiver(t)

	get := func(path string, v any) {
		t.Helper()
		rep := p58Do(t, ctx, r.c.URL(0), key, "GET", path, nil, nil, true)
		if rep.status != 200 || json.Unmarshal(rep.body, v) != nil {
			t.Fatalf("%s", rep)
		}
	}
	total := func(path string) int {
		t.Helper()
		var l struct {
			Data []json.RawMessage `json:"data"`
		}
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		rep := p58Do(t, ctx, r.c.URL(0), key, "GET", path+sep+"limit=200", nil, nil, true)
		if rep.status == 400 && rep.code() == "invalid_query" { // a list that takes no limit
			rep = p58Do(t, ctx, r.c.URL(0), key, "GET", path, nil, nil, true)
		}
		if rep.status != 200 || json.Unmarshal(rep.body, &l) != nil {
			t.Fatalf("%s", rep)
		}
		return len(l.Data)
	}
	settle := func(what, action string) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			var a struct {
				Status string `json:"status"`
			}
			get("/v1/actions/"+action, &a)
			switch {
			case a.Status == "success":
				return
			case a.Status == "error" || a.Status == "failed" || a.Status == "canceled":
				t.Fatalf("%s: action %s ended %s", what, action, a.Status)
			case time.Now().After(deadline):
				t.Fatalf("%s: action %s still %s after 90 s", what, action, a.Status)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	var tk, wh, srv, snap, host, dom, delivery string
	steps := []p58Step{
		{name: "webhook", method: "POST", path: "/v1/webhooks", body: map[string]any{"url": recv.URL + "/hook", "events": []string{"*"}},
			otherBody: map[string]any{"url": recv.URL + "/hook", "events": []string{"ticket.created"}}, count: "/v1/webhooks",
			then: func(m map[string]any) { wh, _ = m["id"].(string) }},
		{name: "ticket", method: "POST", path: "/v1/tickets", body: map[string]any{"subject": "p58", "message": "first"},
			otherBody: map[string]any{"subject": "p58", "message": "second"}, count: "/v1/tickets",
			then: func(m map[string]any) { tk, _ = m["id"].(string) }},
		{name: "ticket reply", method: "POST", path: "/v1/tickets/{tk}/reply", body: map[string]any{"body": "again"},
			otherBody: map[string]any{"body": "other"}},
		{name: "api key", method: "POST", path: "/v1/account/api-keys", body: map[string]any{"name": "p58", "scopes": []string{"tickets:read"}},
			otherBody: map[string]any{"name": "p58", "scopes": []string{"tickets:write"}}, count: "/v1/account/api-keys"},
		{name: "redelivery", method: "POST", path: "/v1/webhooks/{wh}/deliveries/{delivery}/redeliver", otherBody: map[string]any{}},
		{name: "server order", method: "POST", path: "/v1/servers", body: serverBody("p58srv"), otherBody: serverBody("p58other"), count: "/v1/servers",
			then: func(m map[string]any) { srv = p58ID(m, "server") }},
		{name: "power", method: "POST", path: "/v1/servers/{srv}/power/reboot", otherPath: "/v1/servers/{srv}/power/stop", resource: "{srv}"},
		{name: "snapshot", method: "POST", path: "/v1/servers/{srv}/snapshots", body: map[string]any{"name": "s1"},
			otherBody: map[string]any{"name": "s2"}, resource: "{srv}", then: func(m map[string]any) { snap = p58ID(m, "snapshot") }},
		{name: "revert", method: "POST", path: "/v1/servers/{srv}/snapshots/{snap}/revert", body: map[string]any{},
			otherPath: "/v1/servers/{srv}/snapshots", otherBody: map[string]any{"name": "s1"}, resource: "{srv}"},
		{name: "snapshot delete", method: "DELETE", path: "/v1/servers/{srv}/snapshots/{snap}", otherPath: "/v1/servers/{srv}", resource: "{srv}"},
		{name: "reinstall", method: "POST", path: "/v1/servers/{srv}/reinstall", body: map[string]any{"osTemplate": "base", "os": "base"},
			otherBody: map[string]any{"osTemplate": "base", "os": "other"}, resource: "{srv}"},
		{name: "hosting order", method: "POST", path: "/v1/hosting", body: hostingBody("p58web"), otherBody: hostingBody("p58oth"), count: "/v1/hosting",
			then: func(m map[string]any) { host = p58ID(m, "hosting") }},
		{name: "php", method: "PUT", path: "/v1/hosting/{host}/php", body: map[string]any{"php_version": "8.2"},
			otherBody: map[string]any{"php_version": "8.3"}, resource: "{host}"},
		{name: "suspend", method: "POST", path: "/v1/hosting/{host}/suspend", body: map[string]any{}, otherPath: "/v1/hosting/{host}/unsuspend", resource: "{host}"},
		{name: "unsuspend", method: "POST", path: "/v1/hosting/{host}/unsuspend", body: map[string]any{}, otherPath: "/v1/hosting/{host}/suspend", resource: "{host}"},
		{name: "custom domain", method: "PUT", path: "/v1/hosting/{host}/custom-domain", body: map[string]any{"domain": "www.p58-idem.example"},
			otherBody: map[string]any{"domain": "www.p58-other.example"}},
		{name: "custom domain delete", method: "DELETE", path: "/v1/hosting/{host}/custom-domain", otherPath: "/v1/hosting/{host}"},
		{name: "domain order", method: "POST", path: "/v1/domains", body: domainBody("p58-idem.test"), otherBody: domainBody("p58-other.test"), count: "/v1/domains",
			then: func(m map[string]any) { dom, _ = m["id"].(string) }},
		{name: "domain update", method: "PATCH", path: "/v1/domains/{dom}", body: map[string]any{"auto_renew": false},
			otherBody: map[string]any{"auto_renew": true}},
		{name: "domain host", method: "PUT", path: "/v1/domains/{dom}/hosts/ns1.p58-idem.test", body: map[string]any{"addresses": []string{"8.8.8.8"}},
			otherBody: map[string]any{"addresses": []string{"8.8.4.4"}}, then: func(map[string]any) {
				framework.WaitFor(t, "the child name server applied", 30*time.Second, 200*time.Millisecond, func() bool {
					var d struct {
						Hosts []any `json:"hosts"`
					}
					get("/v1/domains/"+dom, &d)
					return len(d.Hosts) == 1
				})
			}},
		{name: "domain host delete", method: "DELETE", path: "/v1/domains/{dom}/hosts/ns1.p58-idem.test", otherPath: "/v1/domains/{dom}/hosts/ns2.p58-idem.test"},
		{name: "hosting delete", method: "DELETE", path: "/v1/hosting/{host}", otherPath: "/v1/hosting/{host}/custom-domain", resource: "{host}"},
		{name: "server terminate", method: "DELETE", path: "/v1/servers/{srv}", otherPath: "/v1/servers/{srv}/snapshots/{snap}", resource: "{srv}"},
	}
	fill := func(s string) string {
		return strings.NewReplacer("{tk}", tk, "{wh}", wh, "{srv}", srv, "{snap}", snap, "{host}", host, "{dom}", dom, "{delivery}", delivery).Replace(s)
	}

	// Every operation that declares the header is a step's (or the transfer).
	covered := map[string]bool{"POST /domains/transfer": true}
	for _, s := range steps {
		tmpl := strings.NewReplacer("{tk}", "{id}", "{wh}", "{id}", "{srv}", "{id}", "{host}", "{id}", "{dom}", "{id}", "{snap}", "{snapshotId}",
			"{delivery}", "{deliveryId}", "/power/reboot", "/power/{action}", "ns1.p58-idem.test", "{name}").Replace(strings.TrimPrefix(s.path, "/v1"))
		covered[s.method+" "+tmpl] = true
	}
	for _, op := range p58Ops(t, ctx, r.c.URL(0)) {
		if op.idem && !covered[op.method+" "+op.path] {
			t.Errorf("%s %s declares Idempotency-Key but no step sends it", op.method, op.path)
		}
	}

	encode := func(v any) []byte {
		if v == nil {
			return nil
		}
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	for k, s := range steps {
		if s.name == "redelivery" {
			framework.WaitFor(t, "a delivery of the webhook", 30*time.Second, 200*time.Millisecond, func() bool {
				var l struct {
					Data []struct {
						DeliveryID string `json:"delivery_id"`
						Outcome    string `json:"outcome"`
					} `json:"data"`
				}
				get("/v1/webhooks/"+wh+"/deliveries", &l)
				for _, d := range l.Data {
					if d.Outcome != "queued" { // attempted: it can be redelivered
						delivery = d.DeliveryID
					}
				}
				return delivery != ""
			})
		}
		path := fill(s.path)
		countPath := s.count
		if s.resource != "" {
			countPath = "/v1/actions?resource_id=" + fill(s.resource)
		}
		before := -1
		if countPath != "" {
			before = total(countPath)
		}
		hdr := map[string]string{"Idempotency-Key": fmt.Sprintf("p58-%d-%s", k, strings.ReplaceAll(s.name, " ", "-"))}
		at := []int{k % n, (k + 1) % n, (k + 2) % n}
		what := func(i int, which string) string {
			return fmt.Sprintf("%s (%s %s), %s at coordinator %d", s.name, s.method, s.path, which, at[i])
		}
		first := p58Do(t, ctx, r.c.URL(at[0]), key, s.method, path, encode(s.body), hdr, true)
		if first.status == 204 && s.method == "DELETE" {
			first.body = []byte(`{}`) // a deletion answered with no content
		}
		if first.status/100 != 2 {
			t.Fatalf("%s: %s", what(0, "the first send"), first)
		}
		var fm map[string]any
		if err := json.Unmarshal(first.body, &fm); err != nil {
			t.Fatalf("%s: %s: %v", what(0, "the first send"), first, err)
		}
		if s.then != nil {
			s.then(fm)
		}
		again := p58Do(t, ctx, r.c.URL(at[1]), key, s.method, path, encode(s.body), hdr, true)
		if again.status == 204 && len(again.body) == 0 {
			again.body = []byte(`{}`)
		}
		var am map[string]any
		switch {
		case again.status != first.status:
			t.Errorf("%s: %s; the first was %d", what(1, "the same key and body"), again, first.status)
		case again.header.Get("Idempotent-Replayed") != "true":
			t.Errorf("%s: %s: no Idempotent-Replayed: true", what(1, "the same key and body"), again)
		case json.Unmarshal(again.body, &am) != nil:
			t.Errorf("%s: %s: not JSON", what(1, "the same key and body"), again)
		default:
			if d := p58NotIn(am, fm, ""); d != "" {
				t.Errorf("%s: the replay says what the first did not (%s): replay %s; first %s", what(1, "the same key and body"), d, again.body, first.body)
			}
			if p58ID(am, "") != p58ID(fm, "") || p58ID(fm, "action") != p58ID(am, "action") {
				t.Errorf("%s: the replay names another resource or action: replay %.300s; first %.300s", what(1, "the same key and body"), again.body, first.body)
			}
		}
		oPath, oBody := path, s.body
		if s.otherPath != "" {
			oPath = fill(s.otherPath)
		}
		if s.otherBody != nil {
			oBody = s.otherBody
		}
		other := p58Do(t, ctx, r.c.URL(at[2]), key, s.method, oPath, encode(oBody), hdr, true)
		if other.status != 422 || other.code() != "idempotency_key_reused" {
			t.Errorf("%s: %s; want 422 idempotency_key_reused", what(2, "the same key with another request"), other)
		} else if e := other.envelopeErr(); e != "" {
			t.Errorf("%s: %s: %s", what(2, "the same key with another request"), e, other)
		}
		if a := p58ID(fm, "action"); a != "" {
			settle(s.name, a)
		}
		if countPath != "" {
			if after := total(countPath); after != before+1 {
				t.Errorf("%s: %s holds %d items after the three sends, %d before; want one more", s.name, countPath, after, before)
			}
		}
		if s.name == "ticket reply" {
			var th struct {
				Messages []json.RawMessage `json:"messages"`
			}
			get("/v1/tickets/"+tk, &th)
			if len(th.Messages) != 2 {
				t.Errorf("ticket reply: the thread holds %d messages after the three sends; want 2 (the opening and one reply)", len(th.Messages))
			}
		}
	}
}

// p58ID is m's "id", or that of its member named in.
func p58ID(m map[string]any, in string) string {
	if in != "" {
		m, _ = m[in].(map[string]any)
	}
	id, _ := m["id"].(string)
	return id
}

// p58NotIn names a member of got (at path) that first does not hold with an
// equal value; "" when got says nothing first did not.
func p58NotIn(got, first any, path string) string {
	g, ok := got.(map[string]any)
	if !ok {
		// A secret the first answer showed once is masked in the replay
		// (README): its last characters, not more.
		if gs, ok := got.(string); ok && strings.Contains(gs, "•") {
			fs, _ := first.(string)
			tail := gs[strings.LastIndex(gs, "•")+len("•"):]
			if tail == "" || len(tail) > 4 || !strings.HasSuffix(fs, tail) {
				return path
			}
			return ""
		}
		if !reflect.DeepEqual(got, first) {
			return path
		}
		return ""
	}
	f, ok := first.(map[string]any)
	if !ok {
		return path
	}
	keys := make([]string, 0, len(g))
	for k := range g {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fv, ok := f[k]
		if !ok {
			return path + "." + k
		}
		if d := p58NotIn(g[k], fv, path+"."+k); d != "" {
			return d
		}
	}
	return ""
}
