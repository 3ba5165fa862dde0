package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
)

// channelRequests is the counter of requests a coordinator served from
// forwarding channels.
const channelRequests = "hostplane_forward_channel_requests_total"

// answer is one response as a client sees it.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// varying headers differ between two requests by time or count; they must be
// present in both answers or in neither.
var varying = []string{"Date", "X-Ratelimit-Remaining", "X-Ratelimit-Reset", "Retry-After"}

func (a answer) String() string {
	h := a.header.Clone()
	return fmt.Sprintf("%d %v %s", a.status, h, a.body)
}

// sameAnswer reports how got differs from want: "" when the status, every
// header (the varying ones only by presence) and the body are the same; with
// created, a 201's body may differ in its values (a new ticket each time) but
// not in its fields.
func sameAnswer(got, want answer, created bool) string {
	if got.status != want.status {
		return fmt.Sprintf("status %d, want %d", got.status, want.status)
	}
	gh, wh := got.header.Clone(), want.header.Clone()
	for _, k := range varying {
		if (gh[k] == nil) != (wh[k] == nil) {
			return fmt.Sprintf("header %s: %q, want %q", k, gh[k], wh[k])
		}
		delete(gh, k)
		delete(wh, k)
	}
	if created && got.status == 201 {
		delete(gh, "Content-Length")
		delete(wh, "Content-Length")
	}
	for k := range wh {
		if !slices.Equal(gh[k], wh[k]) {
			return fmt.Sprintf("header %s: %q, want %q", k, gh[k], wh[k])
		}
	}
	for k := range gh {
		if wh[k] == nil {
			return fmt.Sprintf("extra header %s: %q", k, gh[k])
		}
	}
	if created && got.status == 201 {
		var g, w map[string]any
		if json.Unmarshal(got.body, &g) != nil || json.Unmarshal(want.body, &w) != nil {
			return fmt.Sprintf("body not JSON: %s / %s", got.body, want.body)
		}
		if len(g) != len(w) || g["subject"] != w["subject"] {
			return fmt.Sprintf("body %s, want the fields of %s", got.body, want.body)
		}
		for k := range w {
			if _, ok := g[k]; !ok {
				return fmt.Sprintf("body %s lacks %q of %s", got.body, k, want.body)
			}
		}
		return ""
	}
	// A 429's message counts the seconds to the window's end, like its
	// Retry-After header: the same answer sent a second later says one less.
	if !bytes.Equal(retryAfterSeconds.ReplaceAll(got.body, []byte("retry after N s")), retryAfterSeconds.ReplaceAll(want.body, []byte("retry after N s"))) {
		return fmt.Sprintf("body %s, want %s", got.body, want.body)
	}
	return ""
}

// retryAfterSeconds is the time-varying part of a rate-limited answer's message.
var retryAfterSeconds = regexp.MustCompile(`retry after [0-9]+ s`)

// TestForwardChannelAnswersAsTheProxy: a follower forwards writes to the
// leader over its forwarding channel, and every answer a client gets from it
// (created, replayed, every refusal: authentication, scope, type, body,
// idempotency, rate limit, method, route) is the one the proxy gives and the
// one the leader gives itself: same status, headers and body bytes (the
// request id is the client's). An Upgrade header (without Connection: upgrade,
// so the proxy drops it as hop-by-hop and answers as for any write) sends the
// request through the proxy, which is how both are reached from one follower;
// the leader's channel counter tells them apart. (Until d985afd a query with a
// '%' escape did that; queries are now checked against the operation's
// parameters, so any query on these writes is a 400 whichever way it went.)
func TestForwardChannelAnswersAsTheProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := testcluster.New(t, 3, testcluster.WithRateLimit(1_000_000))
	_, key := c.NewAccount("chan@example.com")
	_, readOnly := c.NewAccount("chan-ro@example.com", api.ScopeTicketsRead)
	acc, _ := c.NewAccount("chan-limited@example.com")
	limited := map[string]string{} // one key per way, 1 request a minute
	for _, way := range []string{"leader", "channel", "proxy"} {
		c.Retry503(func() error {
			k, err := c.Admin(c.WaitLeader(10*time.Second)).CreateKey(context.Background(), acc.ID, api.KeyCreateRequest{Name: way, RateLimitPerMin: 1})
			limited[way] = k.Key
			return err
		})
	}
	hc := &http.Client{Timeout: 20 * time.Second}
	type req struct {
		method, path, key, ctype, idem, body string
		headers                              map[string]string
	}
	send := func(node int, viaProxy bool, rid string, q req) answer {
		t.Helper()
		r, _ := http.NewRequest(q.method, c.URL(node)+q.path, strings.NewReader(q.body))
		r.Header.Set("X-Request-Id", rid)
		if viaProxy {
			r.Header.Set("Upgrade", "x-via-proxy")
		}
		if q.key != "" {
			r.Header.Set("Authorization", "Bearer "+q.key)
		}
		if q.ctype != "" {
			r.Header.Set("Content-Type", q.ctype)
		}
		if q.idem != "" {
			r.Header.Set("Idempotency-Key", q.idem)
		}
		for k, v := range q.headers {
			r.Header.Set(k, v)
		}
		resp, err := hc.Do(r)
		if err != nil {
			t.Fatalf("%s %s on node %d: %v", q.method, q.path, node, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return answer{resp.StatusCode, resp.Header, b}
	}
	const ticket = `{"subject":"chan","message":"m","priority":"low"}`
	huge := `{"subject":"chan","message":"` + strings.Repeat("x", httpapi.MaxBodyBytes) + `"}`
	cases := []struct {
		name    string
		q       req
		created bool
		perWay  func(way string, q req) req
	}{
		{name: "created", q: req{method: "POST", path: "/v1/tickets", key: key, ctype: "application/json", body: ticket}, created: true},
		{name: "created, odd headers", q: req{method: "POST", path: "/v1/tickets", key: key, body: ticket,
			headers: map[string]string{"Connection": "keep-alive, X-Drop", "X-Drop": "1", "X-Forwarded-For": "203.0.113.9", "Te": "trailers"}}, created: true},
		{name: "replayed", q: req{method: "POST", path: "/v1/tickets", key: key, ctype: "application/json", idem: "chan-replay", body: ticket}},
		{name: "idempotency mismatch", q: req{method: "POST", path: "/v1/tickets", key: key, ctype: "application/json", idem: "chan-replay", body: `{"subject":"other","message":"m"}`}},
		{name: "bad idempotency key", q: req{method: "POST", path: "/v1/tickets", key: key, idem: strings.Repeat("k", 300), body: ticket}},
		{name: "no key", q: req{method: "POST", path: "/v1/tickets", ctype: "application/json", body: ticket}},
		{name: "unknown key", q: req{method: "POST", path: "/v1/tickets", key: "snc_" + strings.Repeat("0", 40), body: ticket}},
		{name: "missing scope", q: req{method: "POST", path: "/v1/tickets", key: readOnly, body: ticket}},
		{name: "not JSON", q: req{method: "POST", path: "/v1/tickets", key: key, ctype: "text/plain", body: ticket}},
		{name: "bad JSON", q: req{method: "POST", path: "/v1/tickets", key: key, body: `{"subject":`}},
		{name: "invalid UTF-8", q: req{method: "POST", path: "/v1/tickets", key: key, body: "{\"subject\":\"a\xff\",\"message\":\"m\"}"}},
		{name: "missing field", q: req{method: "POST", path: "/v1/tickets", key: key, body: `{"message":"m"}`}},
		{name: "no such ticket", q: req{method: "POST", path: "/v1/tickets/tkt_nope/reply", key: key, body: `{"message":"m"}`}},
		{name: "method not allowed", q: req{method: "PUT", path: "/v1/tickets", key: key, body: ticket}},
		{name: "no such route", q: req{method: "POST", path: "/v1/nothing-here", key: key, body: ticket}},
		// A follower cannot read these bodies; the leader answers them after
		// the key, its rate limit and its scope, as it does its own.
		{name: "body too large", q: req{method: "POST", path: "/v1/tickets", key: key, body: huge}},
		{name: "body too large, no key", q: req{method: "POST", path: "/v1/tickets", body: huge}},
		{name: "body too large, unknown key", q: req{method: "POST", path: "/v1/tickets", key: "snc_" + strings.Repeat("0", 40), body: huge}},
		{name: "body too large, missing scope", q: req{method: "POST", path: "/v1/tickets", key: readOnly, body: huge}},
		{name: "body too large, told it is unread", q: req{method: "POST", path: "/v1/tickets", key: key, body: huge,
			headers: map[string]string{"X-Hostplane-Body-Unread": "timeout"}}},
		{name: "claims an unread body", q: req{method: "POST", path: "/v1/tickets", key: key, ctype: "application/json", body: `{"message":"m"}`,
			headers: map[string]string{"X-Hostplane-Body-Unread": "too_large"}}},
		{name: "rate limited", q: req{method: "POST", path: "/v1/tickets", ctype: "application/json", body: `{"message":"m"}`},
			perWay: func(way string, q req) req { q.key = limited[way]; return q }},
	}
	for round := 1; ; round++ {
		ld := c.WaitLeader(leaderWait)
		f := (ld + 1) % 3
		before := counter(t, c, ld, channelRequests)
		// The replayed case replays a key first used on the leader.
		if a := send(ld, false, "req_chan_first", cases[2].q); a.status != 201 {
			t.Fatalf("first use of the idempotency key: %s", a)
		}
		sent := 0
		failed := false
		for i, tc := range cases {
			ways := map[string]answer{}
			for _, way := range []string{"leader", "channel", "proxy"} {
				node, viaProxy := f, false
				switch way {
				case "leader":
					node = ld
				case "proxy":
					viaProxy = true
				}
				q := tc.q
				if tc.perWay != nil {
					// Spend the key's one request of the minute the same way.
					q = tc.perWay(way, q)
					send(node, viaProxy, "req_chan_spend", q)
					if way == "channel" {
						sent++
					}
				}
				ways[way] = send(node, viaProxy, fmt.Sprintf("req_chan_%d_%d", round, i), q)
				if way == "channel" {
					sent++
				}
			}
			if ways["proxy"].status == 503 || ways["channel"].status == 503 || ways["leader"].status == 503 {
				failed = true // leadership moved: the round is run again
				break
			}
			if d := sameAnswer(ways["channel"], ways["proxy"], tc.created); d != "" {
				t.Errorf("%s: through the channel %s; the proxy answered %s", tc.name, d, ways["proxy"])
			}
			if d := sameAnswer(ways["channel"], ways["leader"], tc.created); d != "" {
				t.Errorf("%s: through the channel %s; the leader answered %s", tc.name, d, ways["leader"])
			}
		}
		if (failed || c.Leader() != ld) && round < 3 {
			t.Logf("round %d: the leader changed; again on the new leader", round)
			continue
		}
		if grew := counter(t, c, ld, channelRequests) - before; grew != sent {
			t.Errorf("the leader served %d requests from forwarding channels, want the %d sent through the follower without an Upgrade header", grew, sent)
		}
		break
	}
}
