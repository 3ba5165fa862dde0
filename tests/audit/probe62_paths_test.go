package audit

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
)

// TestProbe62HostilePathsAndQueries: a hostile client of account A, holding
// every scope, that knows B's ids (a ticket, a webhook, one of its
// deliveries, a key) and dresses them in path escapes, through the leader
// and a follower (which forwards reads to the leader as HTTP):
//   - "..%2F<B's id>", "%2e%2e%2f<B's id>", "<A's id>%2F..%2F<B's id>", B's
//     id with every character %-escaped, and such shapes reaching for
//     /admin and /internal, on every get route under an id (tickets,
//     webhooks, a webhook's deliveries, a key's usage) are 404s (400s at
//     most) in SPEC.md's error envelope, never a 5xx, and show nothing of
//     B's (its ticket's subject, its webhook's URL, its account's id and
//     email: whatever the request did not itself carry);
//   - A's own ids with an escaped NUL, space, tab, line feed or slash
//     after or before them are 404s (400s): no id is trimmed into A's;
//   - the same shapes on write routes (reply, close, PATCH, DELETE,
//     rotate-secret, redeliver, a key's revocation) are refused alike, and
//     afterwards B's and A's state, read with their own keys through each
//     of the three coordinators, is as before;
//   - a query naming limit twice with different values (limit=1&limit=1000),
//     once with its name %-escaped (limit=1&li%6Dit=1000), with a `;`
//     (which Go's parser refuses), and a name that escapes `=` are 400
//     invalid_query naming the parameter;
//   - README's limits on the request target: past 8 KiB (path or query)
//     a JSON 414 uri_too_long; a 64 KiB path or query a 414 or net/http's
//     own 431 (README's table); never a 5xx, at a follower too.
//
// Covered elsewhere and not repeated: limit 0/-1/huge/1e2/non-number and
// repeated with one value (TestProbe9QueryRules), a cursor of another
// account or list (TestProbe59CursorOfAnotherAccount), unescaped `.`/`..`
// segments (TestProbe7UncleanPathsAreJSON404s), A's own server id decorated
// on one coordinator (TestHostileInputOutsideIn).
func TestProbe62HostilePathsAndQueries(t *testing.T) {
	r := lightRig(t, "p62paths")
	ld, f := r.leaderAndFollower()
	recv := newReceiver(t)
	// A: a webhook (ticket.created) and a ticket, so the webhook has a
	// delivery; B alike, its ticket's subject a marker no answer to A may show.
	whA := r.hook(r.keyA, recv.URL+"/a", "ticket.created")
	tA := r.ticket(0, r.keyA, "p62 A's own")
	whB := r.hook(r.keyB, recv.URL+"/b-secret-hook", "ticket.created")
	tB := r.ticket(0, r.keyB, "p62 B's secret subject")
	kA, kB := r.keyID(r.keyA), r.keyID(r.keyB)
	dA, dB := p62Delivery(t, r, r.keyA, whA.ID), p62Delivery(t, r, r.keyB, whB.ID)
	markers := []string{tB.Subject, "/b-secret-hook", r.accB.ID, r.accB.Email}
	aPaths := []string{"/v1/tickets", "/v1/tickets/" + tA.ID, "/v1/webhooks", "/v1/webhooks/" + whA.ID, "/v1/account/api-keys"}
	bPaths := []string{"/v1/tickets", "/v1/tickets/" + tB.ID, "/v1/webhooks", "/v1/webhooks/" + whB.ID, "/v1/account/api-keys"}
	beforeA, beforeB := p62State(t, r, 0, r.keyA, aPaths), p62State(t, r, 0, r.keyB, bPaths)

	// Every character of id %-escaped.
	escAll := func(id string) string {
		var b strings.Builder
		for i := 0; i < len(id); i++ {
			fmt.Fprintf(&b, "%%%02X", id[i])
		}
		return b.String()
	}
	// The shapes of B's id under A's (mine) on a route.
	reaching := func(mine, theirs string) []string {
		return []string{"..%2F" + theirs, "..%2f" + theirs, "%2e%2e%2f" + theirs, "%2E%2E/" + theirs, mine + "%2F..%2F" + theirs,
			mine + "%2F%2E%2E%2F" + theirs, mine + "%2f..%2f..%2f" + theirs, escAll(theirs), theirs + "%00", theirs + "%20", "%20" + theirs,
			"%2e%2e", "..%2F..%2Fadmin%2Faccounts%2F" + r.accB.ID, "..%2F..%2F..%2Finternal%2Fforward"}
	}
	// A's own id decorated.
	decorated := func(mine string) []string {
		return []string{mine + "%00", mine + "%20", "%20" + mine, mine + "%09", mine + "%0A", mine + "%2F", mine + "+", mine + "%2F.", mine + ";x"}
	}
	type route struct{ method, tmpl, mine, theirs, body string }
	reads := []route{
		{"GET", "/v1/tickets/{}", tA.ID, tB.ID, ""},
		{"GET", "/v1/webhooks/{}", whA.ID, whB.ID, ""},
		{"GET", "/v1/webhooks/{}/deliveries", whA.ID, whB.ID, ""},
		{"GET", "/v1/webhooks/" + whA.ID + "/deliveries/{}/redeliver", dA, dB, ""}, // a read of a write route: 405 at most
		{"GET", "/v1/account/api-keys/{}/usage", kA, kB, ""},
	}
	writes := []route{
		{"POST", "/v1/tickets/{}/reply", tA.ID, tB.ID, `{"body":"p62 reply"}`},
		{"POST", "/v1/tickets/{}/close", tA.ID, tB.ID, "{}"},
		{"PATCH", "/v1/webhooks/{}", whA.ID, whB.ID, `{"description":"p62 patched"}`},
		{"POST", "/v1/webhooks/{}/rotate-secret", whA.ID, whB.ID, "{}"},
		{"POST", "/v1/webhooks/" + whA.ID + "/deliveries/{}/redeliver", dA, dB, "{}"},
		{"DELETE", "/v1/webhooks/{}", whA.ID, whB.ID, ""},
		{"DELETE", "/v1/account/api-keys/{}", kA, kB, ""},
	}
	sent := 0
	for _, i := range []int{ld, f} {
		base := r.c.URL(i)
		for _, rt := range slices.Concat(reads, writes) {
			var ids []string
			ids = append(ids, reaching(rt.mine, rt.theirs)...)
			ids = append(ids, decorated(rt.mine)...)
			for _, id := range ids {
				target := strings.Replace(rt.tmpl, "{}", id, 1)
				h := p62Key(r.keyA)
				if rt.method != "GET" {
					// Sent again after a leadership 503 (p62Do), as
					// client.Resendable allows a keyed write.
					h.Set("Idempotency-Key", fmt.Sprintf("p62-path-%d", sent))
				}
				rep := p62Do(t, r.ctx, base, rt.method, target, h, rt.body)
				sent++
				what := fmt.Sprintf("coordinator %d: %s %s", i, rt.method, target)
				p62Refused(t, what, rep, target, markers, 404, 400, 405)
			}
		}
	}
	t.Logf("%d hostile paths sent", sent)
	for i := range r.c.Len() {
		if changed := p62Changed(t, r, i, r.keyA, aPaths, beforeA); len(changed) > 0 {
			t.Errorf("coordinator %d: A's state changed by refused writes: %s", i, strings.Join(changed, "; "))
		}
		if changed := p62Changed(t, r, i, r.keyB, bPaths, beforeB); len(changed) > 0 {
			t.Errorf("coordinator %d: B's state changed by A's writes: %s", i, strings.Join(changed, "; "))
		}
	}

	// Queries: a parameter twice, by any spelling, is a 400 naming it.
	for _, i := range []int{ld, f} {
		for _, list := range []string{"/v1/tickets", "/v1/webhooks", "/v1/webhooks/" + whA.ID + "/deliveries", "/v1/account/api-keys/" + kA + "/usage", "/v1/billing/wallet/transactions"} {
			for _, q := range []struct{ query, name string }{
				{"limit=1&limit=1000", "limit"}, {"limit=1000&limit=1", "limit"}, {"limit=1&li%6Dit=1000", "limit"}, {"%6C%69%6D%69%74=1&limit=2", "limit"},
				{"limit=1;limit=1000", ""}, {"limit%3D1000", "limit=1000"}, {"limit=1&limit%00=1000", ""}, {"limit=1&%20limit=1000", ""},
			} {
				target := list + "?" + q.query
				rep := p62Do(t, r.ctx, r.c.URL(i), "GET", target, p62Key(r.keyA), "")
				what := fmt.Sprintf("coordinator %d: GET %s", i, target)
				if !p62Refused(t, what, rep, target, markers, 400) {
					continue
				}
				e, _ := rep.envelope()
				if e.Code != "invalid_query" || q.name != "" && !strings.Contains(e.Message, `"`+q.name+`"`) {
					t.Errorf("%s: %s; want 400 invalid_query naming %q", what, rep, q.name)
				}
			}
		}
	}

	// README's limits on the request target.
	long := func(n int) string { return strings.Repeat("a", n) }
	for _, i := range []int{ld, f} {
		for _, c := range []struct {
			what, target string
			json         bool // README: the JSON 414 (else net/http's 431 may answer)
		}{
			{"a 9 KiB path", "/v1/tickets/" + long(9<<10), true},
			{"a 9 KiB query", "/v1/tickets?limit=1&x=" + long(9<<10), true},
			{"a 9 KiB escaped path", "/v1/tickets/" + strings.Repeat("%2F", 3<<10), true},
			{"a 64 KiB path", "/v1/tickets/" + long(64<<10), false},
			{"a 64 KiB query", "/v1/tickets?limit=1&x=" + long(64<<10), false},
			{"a 64 KiB query of parameters", "/v1/tickets?" + strings.Repeat("a=&", 64<<10/3), false},
		} {
			rep := p62Do(t, r.ctx, r.c.URL(i), "GET", c.target, p62Key(r.keyA), "")
			what := fmt.Sprintf("coordinator %d: GET with %s", i, c.what)
			switch e, _ := rep.envelope(); {
			case rep.status == 414 && e.Code == "uri_too_long" && e.StatusCode == 414 && rep.header.Get("X-Request-Id") != "":
				t.Logf("%s: %d %s", what, rep.status, e.Message)
			case !c.json && rep.status == 431:
				t.Logf("%s: net/http's 431", what)
			default:
				t.Errorf("%s: %d %.300s; want README's JSON 414 uri_too_long%s", what, rep.status, rep.body, map[bool]string{false: " (or net/http's 431)"}[c.json])
			}
		}
		// The coordinator still answers.
		if rep := p62Do(t, r.ctx, r.c.URL(i), "GET", "/v1/tickets/"+tA.ID, p62Key(r.keyA), ""); rep.status != 200 {
			t.Errorf("coordinator %d after the long targets: %s", i, rep)
		}
	}
}

// p62Delivery waits for a delivery of key's webhook id to have settled
// (attempted and answered: succeeded or failed, not queued or pending a
// retry) and returns its id. A delivery still queued when a test takes
// the account's state would change it afterwards on its own (ci-F, stop
// 63: "queued" before B's writes, "succeeded" after).
func p62Delivery(t *testing.T, r *rig, key, id string) string {
	t.Helper()
	var last []api.WebhookAttempt
	deadline := time.Now().Add(30 * time.Second)
	for {
		var l struct {
			Data []api.WebhookAttempt `json:"data"`
		}
		r.get(t, 0, key, "/v1/webhooks/"+id+"/deliveries", &l)
		if len(l.Data) > 0 && (l.Data[0].DeliveryStatus == api.DeliverySucceeded || l.Data[0].DeliveryStatus == api.DeliveryFailed) {
			return l.Data[0].DeliveryID
		}
		if last = l.Data; time.Now().After(deadline) {
			t.Fatalf("no settled delivery of webhook %s within 30 s: %+v", id, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// p62Key is key as a Bearer Authorization header.
func p62Key(key string) http.Header {
	return http.Header{"Authorization": {"Bearer " + key}}
}

// p62Refused checks rep, the answer to target, is one of the statuses
// want in SPEC.md's error envelope with the X-RateLimit-* headers, never a
// 5xx, and shows none of markers the target did not itself carry; it says
// whether rep passed.
func p62Refused(t *testing.T, what string, rep p58Reply, target string, markers []string, want ...int) bool {
	t.Helper()
	ok := true
	if !slices.Contains(want, rep.status) {
		t.Errorf("%s: %s; want one of %v", what, rep, want)
		ok = false
	} else if e := rep.envelopeErr(); e != "" {
		t.Errorf("%s: %s: %s", what, e, rep)
		ok = false
	}
	for _, m := range markers {
		if !strings.Contains(target, m) && strings.Contains(string(rep.body), m) {
			t.Errorf("%s: the answer shows another account's %q: %s", what, m, rep)
			ok = false
		}
	}
	return ok
}

// p62Do sends method target (a path and query sent as written, escapes
// kept) to base with the headers hdr (each value its own header line, as
// given) and body (JSON; "" none), as a client that does not follow
// redirects; a 503 of a leadership change (no_leader, leader_unreachable,
// read_unconfirmed) is sent again for up to 20 s when client.Resendable
// allows it (a GET or HEAD, or a write with an Idempotency-Key: a
// leader_unreachable write may have been applied), else returned.
func p62Do(t testing.TB, ctx context.Context, base, method, target string, hdr http.Header, body string) p58Reply {
	t.Helper()
	hc := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	path, query, _ := strings.Cut(target, "?")
	deadline := time.Now().Add(20 * time.Second)
	for {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, base+"/", rd)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque, req.URL.RawQuery = path, query
		for k, vs := range hdr {
			req.Header[k] = slices.Clone(vs)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		t0 := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %.200s: %v", method, target, err)
		}
		if d := time.Since(t0); d > time.Second {
			t.Logf("SLOW %s %.120s: %s %d", method, target, d, resp.StatusCode)
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s %.200s: %v", method, target, err)
		}
		rep := p58Reply{status: resp.StatusCode, header: resp.Header, body: raw, what: fmt.Sprintf("%s %.200s", method, target)}
		if rep.status == 503 && slices.Contains([]string{"no_leader", "leader_unreachable", "read_unconfirmed"}, rep.code()) &&
			client.Resendable(method, nil, req.Header) && time.Now().Before(deadline) {
			t.Logf("%s: sent again", rep)
			time.Sleep(time.Second)
			continue
		}
		return rep
	}
}

// p62State is what key's reads of paths answer through coordinator i (the
// status and body, p60Volatile left out).
func p62State(t *testing.T, r *rig, i int, key string, paths []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range paths {
		rep := p62Do(t, r.ctx, r.c.URL(i), "GET", p, p62Key(key), "")
		out[p] = fmt.Sprint(rep.status, " ", p60Volatile.ReplaceAllString(string(rep.body), ""))
	}
	return out
}

// p62Changed names the reads whose answer through coordinator i differs
// from before.
func p62Changed(t *testing.T, r *rig, i int, key string, paths []string, before map[string]string) []string {
	t.Helper()
	now := p62State(t, r, i, key, paths)
	var out []string
	for _, p := range paths {
		if now[p] != before[p] {
			out = append(out, fmt.Sprintf("%s: %.400s → %.400s", p, before[p], now[p]))
		}
	}
	return out
}
