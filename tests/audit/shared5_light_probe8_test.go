package audit

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestProbe8OutsideIn probes, on one light cluster, through the leader and
// a follower, what a client written from the seeds, SPEC.md and
// /openapi.json alone checks that earlier probes did not: /mcp's transport
// refusals in the error envelope; a webhook redelivery that is the same
// event signed with the current secret; a compressed body refused with a
// 415 that names Content-Encoding; HEAD and OPTIONS on every route.
func TestProbe8OutsideIn(t *testing.T) {
	r := sharedLightRig(t, "light")
	f := r.follower()

	// /mcp's refusals made by the MCP transport (a method it does not
	// serve, an Accept without both types, no or an unknown session, a
	// body that is not JSON-RPC) are answered in SPEC.md's error envelope,
	// as /mcp's own refusals (401, 403, 413) and every /v1 refusal are, a
	// 405 with its Allow. Before, they were text/plain lines ("Method Not
	// Allowed", "session not found") a client's JSON decoder failed on.
	t.Run("mcp transport refusals are the error envelope", func(t *testing.T) {
		init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"probe8","version":"1"}}}`
		for _, i := range []int{0, f} {
			ep := r.c.URL(i) + "/mcp"
			for _, tc := range []struct {
				what, method, session, body string
				hdr                         map[string]string
				status                      int
			}{
				{"PUT", "PUT", "", "", nil, 405},
				{"OPTIONS", "OPTIONS", "", "", nil, 405},
				{"PATCH with a body", "PATCH", "", init, nil, 405},
				{"GET without Accept: text/event-stream", "GET", "", "", map[string]string{"Accept": "application/json"}, 400},
				{"GET without a session", "GET", "", "", map[string]string{"Accept": "text/event-stream"}, 400},
				{"GET with an unknown session", "GET", "probe8-none", "", map[string]string{"Accept": "text/event-stream"}, 404},
				{"DELETE without a session", "DELETE", "", "", nil, 400},
				{"DELETE of an unknown session", "DELETE", "probe8-none", "", nil, 404},
				{"POST with Accept: text/html", "POST", "", init, map[string]string{"Accept": "text/html"}, 400},
				{"POST in an unknown session", "POST", "probe8-none", `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, nil, 404},
				{"POST of a body that is not JSON", "POST", "", `not json`, nil, 400},
			} {
				what := fmt.Sprintf("%s /mcp on coordinator %d (%s)", tc.method, i, tc.what)
				st, hdr, body := rawMCP(t, tc.method, ep, r.keyA, tc.session, tc.body, tc.hdr, 15*time.Second)
				e, err := framework.Reply{Status: st, Body: []byte(body)}.Envelope()
				if st != tc.status || err != nil || e.Err != http.StatusText(st) || e.Message == "" || e.Code == "" ||
					!strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
					t.Errorf("%s: %d %q %.300q; want %d in the error envelope {statusCode, error, message, code}", what, st, hdr.Get("Content-Type"), body, tc.status)
				}
				if st == 405 && (hdr.Get("Allow") == "" || !strings.Contains(e.Message, hdr.Get("Allow"))) {
					t.Errorf("%s: Allow %q, message %q; want the methods /mcp serves in both", what, hdr.Get("Allow"), e.Message)
				}
				if hdr.Get("X-RateLimit-Limit") == "" {
					t.Errorf("%s: no X-RateLimit-Limit (the request is counted against the key)", what)
				}
			}
		}
	})

	// A receiver written from the seeds: an event is {id, type, created_at,
	// data} signed t=<unix>,v1=HMAC(secret, "<t>." + raw body). A redelivery
	// of a past delivery is the same event (its id, type and data: what a
	// receiver de-duplicates on), signed with the secret of the moment: after
	// a rotation the new one, never the old one (SPEC: "the old one stops at
	// once").
	t.Run("a redelivery is the same event, signed with the current secret", func(t *testing.T) {
		rc := newReceiver(t)
		var wh struct {
			ID     string `json:"id"`
			Secret string `json:"secret"`
		}
		rep := r.call(f, r.keyA, "POST", "/v1/webhooks", map[string]any{"url": rc.URL, "events": []string{"ticket.created"}, "description": "probe8"}, nil)
		if rep.Status != 201 {
			t.Fatalf("create webhook: %s", rep)
		}
		rep.Decode(t, &wh)
		var tk struct {
			ID string `json:"id"`
		}
		start := time.Now()
		r.write(f, r.keyA, "POST", "/v1/tickets", map[string]any{"subject": "probe8 hook", "message": "m", "department": "technical", "priority": "medium"}).Decode(t, &tk)
		first := rc.wait(t, "ticketId", tk.ID, start, 1, 20*time.Second)[0]
		type event struct {
			ID        string         `json:"id"`
			Type      string         `json:"type"`
			CreatedAt string         `json:"created_at"`
			Data      map[string]any `json:"data"`
		}
		var ev event
		if err := json.Unmarshal(first.body, &ev); err != nil || !strings.HasPrefix(ev.ID, "evt_") || ev.Type != "ticket.created" || ev.CreatedAt == "" {
			t.Fatalf("the delivery's body: %s (%v)", first.body, err)
		}
		if ok, ts, err := signedBy(wh.Secret, first.header.Get("X-Sunucu-Signature"), first.body); !ok || err != nil || time.Since(time.Unix(ts, 0)).Abs() > 5*time.Minute {
			t.Errorf("the delivery's signature %q does not verify with the secret shown (%v)", first.header.Get("X-Sunucu-Signature"), err)
		}
		var rot struct {
			Secret string `json:"secret"`
		}
		if rep = r.call(f, r.keyA, "POST", "/v1/webhooks/"+wh.ID+"/rotate-secret", nil, nil); rep.Status != 200 {
			t.Fatalf("rotate: %s", rep)
		}
		rep.Decode(t, &rot)
		// The delivery is recorded with its first attempt's outcome, a
		// moment after the receiver has it: redelivered once it is listed.
		dlv := first.header.Get("X-Sunucu-Delivery")
		framework.WaitFor(t, "the delivery's attempt listed", 20*time.Second, 50*time.Millisecond, func() bool {
			var dl struct {
				Data []api.WebhookAttempt `json:"data"`
			}
			r.call(f, r.keyA, "GET", "/v1/webhooks/"+wh.ID+"/deliveries", nil, nil).Decode(t, &dl)
			return slices.ContainsFunc(dl.Data, func(a api.WebhookAttempt) bool { return a.DeliveryID == dlv && a.Outcome != api.AttemptQueued })
		})
		since := time.Now()
		if rep = r.call(f, r.keyA, "POST", "/v1/webhooks/"+wh.ID+"/deliveries/"+dlv+"/redeliver", nil, nil); rep.Status != 202 {
			t.Fatalf("redeliver: %s", rep)
		}
		again := rc.wait(t, "ticketId", tk.ID, since, 1, 20*time.Second)[0]
		var ev2 event
		if err := json.Unmarshal(again.body, &ev2); err != nil || ev2.ID != ev.ID || ev2.Type != ev.Type || fmt.Sprint(ev2.Data) != fmt.Sprint(ev.Data) {
			t.Errorf("the redelivery's body %s; the first delivery's %s: want the same event id, type and data", again.body, first.body)
		}
		if again.header.Get("X-Sunucu-Event") != ev.Type {
			t.Errorf("the redelivery's X-Sunucu-Event %q, want %q", again.header.Get("X-Sunucu-Event"), ev.Type)
		}
		sig := again.header.Get("X-Sunucu-Signature")
		if ok, _, err := signedBy(rot.Secret, sig, again.body); !ok || err != nil {
			t.Errorf("the redelivery after a rotation: %q does not verify with the new secret (%v)", sig, err)
		}
		if ok, _, _ := signedBy(wh.Secret, sig, again.body); ok {
			t.Errorf("the redelivery after a rotation verifies with the rotated-away secret: %q", sig)
		}
	})

	// A body sent with a Content-Encoding the API does not decode (SPEC:
	// "JSON in and out"; nothing says a compressed body is taken) is a 415
	// naming the header, with Accept-Encoding: identity (RFC 7694), and
	// changes nothing: neither a real gzip body nor a plain body labelled
	// gzip opens a ticket. "identity" is no coding. Before, the label was
	// ignored: a plain body labelled gzip opened a ticket (201) and a gzip
	// body was a 400 "malformed JSON at byte 1".
	t.Run("a compressed body is a 415 naming Content-Encoding", func(t *testing.T) {
		body := `{"subject":"probe8 coded","message":"m"}`
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write([]byte(body))
		zw.Close()
		var before struct {
			Total int `json:"total"`
		}
		r.get(t, 0, r.keyA, "/v1/tickets", &before)
		for _, i := range []int{0, f} {
			for _, tc := range []struct {
				what, coding string
				body         []byte
			}{
				{"a gzip body", "gzip", gz.Bytes()},
				{"a plain body labelled gzip", "gzip", []byte(body)},
				{"a plain body labelled br", "br", []byte(body)},
				{"a plain body labelled identity, gzip", "identity, gzip", []byte(body)},
			} {
				rep := r.call(i, r.keyA, "POST", "/v1/tickets", tc.body, map[string]string{"Content-Type": "application/json", "Content-Encoding": tc.coding})
				if rep.Status != 415 {
					t.Errorf("%s on coordinator %d: %s (Accept-Encoding %q); want 415 unsupported_media_type naming Content-Encoding, Accept-Encoding: identity",
						tc.what, i, rep, rep.Header.Get("Accept-Encoding"))
				} else if e := rep.DecodeError(t); e.Code != "unsupported_media_type" || !strings.Contains(e.Message, "Content-Encoding") || rep.Header.Get("Accept-Encoding") != "identity" {
					t.Errorf("%s on coordinator %d: %s (Accept-Encoding %q); want 415 unsupported_media_type naming Content-Encoding, Accept-Encoding: identity",
						tc.what, i, rep, rep.Header.Get("Accept-Encoding"))
				}
			}
		}
		var after struct {
			Total int `json:"total"`
		}
		r.get(t, 0, r.keyA, "/v1/tickets", &after)
		if after.Total != before.Total {
			t.Errorf("the refused bodies opened %d tickets", after.Total-before.Total)
		}
		if rep := r.call(f, r.keyA, "POST", "/v1/tickets", body, map[string]string{"Content-Type": "application/json", "Content-Encoding": "identity"}); rep.Status != 201 {
			t.Errorf("a body labelled identity: %s; want 201", rep)
		}
	})

	// HEAD and OPTIONS on every path /openapi.json lists (ids that name
	// nothing): HEAD answers as GET does (the status and Content-Type, no
	// body; a 405 with Allow where GET is one); OPTIONS is a 405 in the error
	// envelope with that Allow (no CORS preflight on /v1); each counted
	// against the key with the X-RateLimit-* headers.
	t.Run("HEAD and OPTIONS on every route", func(t *testing.T) {
		methods := map[string][]string{}
		for _, op := range r.operations() {
			methods[op.path] = append(methods[op.path], op.method)
		}
		fill := strings.NewReplacer("{id}", "x_00000000000000000000000000", "{ip}", "192.0.2.1", "{snapshotId}", "snap_0000000000000000",
			"{action}", "reboot", "{deliveryId}", "dlv_0000000000000000")
		hc := &http.Client{Timeout: 15 * time.Second}
		send := func(method, path string) (int, http.Header, []byte) {
			return sendRaw(t, hc, method, r.c.URL(f), path, r.keyA, nil)
		}
		for p, ms := range methods {
			path := "/v1" + fill.Replace(p)
			if p == "/servers/{id}/stats" {
				path += "?stream=1"
			}
			st, hdr, body := send("HEAD", path)
			gst, ghdr, _ := send("GET", path)
			if st != gst || hdr.Get("Content-Type") != ghdr.Get("Content-Type") || len(body) != 0 {
				t.Errorf("HEAD %s: %d %q %d bytes; GET: %d %q", path, st, hdr.Get("Content-Type"), len(body), gst, ghdr.Get("Content-Type"))
			}
			if !slices.Contains(ms, "GET") && st == 405 && hdr.Get("Allow") == "" {
				t.Errorf("HEAD %s (only %v): 405 without Allow", path, ms)
			}
			if hdr.Get("X-RateLimit-Limit") == "" {
				t.Errorf("HEAD %s: no X-RateLimit-Limit", path)
			}
			st, hdr, body = send("OPTIONS", path)
			e, err := framework.Reply{Status: st, Body: body}.Envelope()
			allow := hdr.Get("Allow")
			for _, m := range ms {
				if !strings.Contains(", "+allow+",", ", "+m+",") {
					t.Errorf("OPTIONS %s: Allow %q lacks %s", path, allow, m)
				}
			}
			if st != 405 || err != nil || e.Code != "method_not_allowed" || hdr.Get("X-RateLimit-Limit") == "" {
				t.Errorf("OPTIONS %s: %d %.200s; want a 405 method_not_allowed in the error envelope", path, st, body)
			}
		}
	})

	// README: a query parameter the operation does not list, one in
	// another case, one given twice or one that does not parse is a
	// "400 invalid_query naming it": one code a client can match for every
	// query refusal, consistency= included. Before, consistency='s refusals
	// alone were invalid_parameter.
	t.Run("every query refusal is invalid_query", func(t *testing.T) {
		for _, q := range []struct{ method, query, param string }{
			{"GET", "limit=0", "limit"}, {"GET", "limit=1&limit=2", "limit"}, {"GET", "Limit=5", "Limit"}, {"GET", "status=open", "status"},
			{"GET", "consistency=strong", "consistency"}, {"GET", "consistency=stale&consistency=stale", "consistency"},
			{"POST", "consistency=stale", "consistency"},
		} {
			for _, i := range []int{0, f} {
				var body any
				if q.method == "POST" {
					body = map[string]any{"subject": "probe8 query", "message": "m"}
				}
				rep := r.call(i, r.keyA, q.method, "/v1/tickets?"+q.query, body, nil)
				if rep.Status != 400 {
					t.Errorf("%s /v1/tickets?%s on coordinator %d: %s; want 400 invalid_query naming %q", q.method, q.query, i, rep, q.param)
				} else if e := rep.DecodeError(t); e.Code != "invalid_query" || !strings.Contains(e.Message, `"`+q.param+`"`) {
					t.Errorf("%s /v1/tickets?%s on coordinator %d: %s; want 400 invalid_query naming %q", q.method, q.query, i, rep, q.param)
				}
			}
		}
	})
}
