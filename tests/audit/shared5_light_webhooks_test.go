package audit

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// newLightRig is three coordinators (webhooks may reach loopback receivers
// over plain HTTP) and two accounts with every scope: no registry, node or
// catalogue, for the surfaces that need none. It is the test's own: a test
// that only uses the cluster as customers would takes sharedLightRig.
func newLightRig(t *testing.T) *rig { return lightRig(t, "light") }

// lightRig is newLightRig with the accounts prefix-a@ and prefix-b@example.com
// and more `run` flags on every coordinator.
func lightRig(t *testing.T, prefix string, extra ...string) *rig {
	o := framework.ProcessOptions{N: 3, Bin: framework.Coordinator(t), RaftTimeout: framework.RaftTimeout, Webhooks: true}
	if len(extra) > 0 {
		o.Extra = func(int, *framework.CoordinatorProcess) []string { return extra }
	}
	return rigOn(t, framework.NewProcessCluster(t, o), prefix, 4*time.Minute)
}

// hit is one request a receiver got: its raw body and headers, and when.
type hit struct {
	body   []byte
	header http.Header
	at     time.Time
}

// receiver is a webhook endpoint written as a customer would write one: it
// keeps every request and answers 500 while failing is set, 204 otherwise.
type receiver struct {
	URL     string
	mu      sync.Mutex
	hits    []hit
	failing bool
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		rc.mu.Lock()
		rc.hits = append(rc.hits, hit{body: body, header: req.Header.Clone(), at: time.Now()})
		fail := rc.failing
		rc.mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	rc.URL = srv.URL + "/hook"
	return rc
}

func (rc *receiver) setFailing(f bool) {
	rc.mu.Lock()
	rc.failing = f
	rc.mu.Unlock()
}

// wait returns the requests that came after since whose body's data has
// field equal to value once there are at least n, failing t when they did
// not come within.
func (rc *receiver) wait(t *testing.T, field, value string, since time.Time, n int, within time.Duration) []hit {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var out []hit
		rc.mu.Lock()
		for _, h := range rc.hits {
			var ev struct {
				Data map[string]any `json:"data"`
			}
			if h.at.After(since) && json.Unmarshal(h.body, &ev) == nil && fmt.Sprint(ev.Data[field]) == value {
				out = append(out, h)
			}
		}
		all := len(rc.hits)
		rc.mu.Unlock()
		if len(out) >= n {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries with %s=%s within %s, want %d (%d requests in all)", len(out), field, value, within, n, all)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// signedBy reports how a signature header ("t=<unix>,v1=<hex>[,v1=…]", the
// seed's scheme: HMAC-SHA256 of "<t>." + body) relates to secret: any says
// one v1 verifies with it, and t is the header's timestamp.
func signedBy(secret, header string, body []byte) (ok bool, t int64, err error) {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, found := strings.Cut(strings.TrimSpace(part), "=")
		if !found {
			return false, 0, fmt.Errorf("part %q of %q is not k=v", part, header)
		}
		switch k {
		case "t":
			if ts != "" {
				return false, 0, fmt.Errorf("two timestamps in %q", header)
			}
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	if t, err = strconv.ParseInt(ts, 10, 64); err != nil || len(sigs) == 0 {
		return false, 0, fmt.Errorf("no t or no v1 in %q", header)
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	want := hex.EncodeToString(m.Sum(nil))
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			ok = true
		}
	}
	return ok, t, nil
}

// TestWebhooksOutsideIn checks the webhook surface as a customer would,
// through followers and the leader: the secret shown once (no-store, masked
// afterwards, not in an Idempotency-Key replay), deliveries a receiver can
// verify from the seed's description alone (X-Sunucu-Signature, -Event,
// -Delivery, the body's fields), a rotated secret that signs every later
// request alone (a retry of an earlier delivery included), events ["*"],
// refused events and URLs that create nothing, and another account's
// delivery id that is a 404.
func TestWebhooksOutsideIn(t *testing.T) {
	r := sharedLightRig(t, "light")
	f := r.follower()
	rc := newReceiver(t)

	var wh api.Webhook
	create := api.WebhookCreateRequest{URL: rc.URL, Events: []string{"ticket.created"}, Description: "audit"}
	rep := r.call(f, r.keyA, "POST", "/v1/webhooks", create, map[string]string{"Idempotency-Key": "wh-audit-1"})
	if rep.Status != 201 {
		t.Fatalf("create: %s", rep)
	}
	rep.Decode(t, &wh)
	secret := wh.Secret
	if len(secret) < 32 || rep.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create answered secret %q (len %d), Cache-Control %q; want a secret and no-store", secret, len(secret), rep.Header.Get("Cache-Control"))
	}
	// Never again in the clear: GET and list on every coordinator, and a
	// replay of the create's Idempotency-Key.
	for i := range r.c.Len() {
		for _, path := range []string{"/v1/webhooks/" + wh.ID, "/v1/webhooks"} {
			got := r.call(i, r.keyA, "GET", path, nil, nil)
			if got.Status != 200 || strings.Contains(string(got.Body), secret) || !strings.Contains(string(got.Body), secret[len(secret)-4:]) {
				t.Errorf("coordinator %d: %s; want 200 with the secret masked (its last 4 characters only)", i, got)
			}
		}
	}
	if again := r.call(f, r.keyA, "POST", "/v1/webhooks", create, map[string]string{"Idempotency-Key": "wh-audit-1"}); again.Status != 201 || strings.Contains(string(again.Body), secret) || !strings.Contains(string(again.Body), wh.ID) {
		t.Errorf("replay of the create: %s; want the same webhook without its secret", again)
	}

	// B subscribes to everything: it must never hear of A's events.
	bRecv := newReceiver(t)
	var bw api.Webhook
	if rep = r.call(f, r.keyB, "POST", "/v1/webhooks", api.WebhookCreateRequest{URL: bRecv.URL, Events: []string{"*"}}, nil); rep.Status != 201 {
		t.Fatalf("B's webhook: %s", rep)
	}
	rep.Decode(t, &bw)

	// A delivery, verified as a receiver written from the seed would.
	var tk api.Ticket
	if rep = r.write(f, r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "sig one", Message: "m"}); rep.Status != 201 {
		t.Fatalf("ticket: %s", rep)
	}
	rep.Decode(t, &tk)
	h := rc.wait(t, "ticketId", tk.ID, time.Time{}, 1, 30*time.Second)[0]
	ok, ts, err := signedBy(secret, h.header.Get("X-Sunucu-Signature"), h.body)
	if err != nil || !ok {
		t.Errorf("delivery's X-Sunucu-Signature %q does not verify with the secret: %v", h.header.Get("X-Sunucu-Signature"), err)
	}
	if skew := time.Since(time.Unix(ts, 0)).Abs(); skew > 5*time.Minute {
		t.Errorf("signature timestamp %d is %s from now", ts, skew)
	}
	var ev struct {
		ID        string         `json:"id"`
		Type      string         `json:"type"`
		CreatedAt time.Time      `json:"created_at"`
		Data      map[string]any `json:"data"`
	}
	if err := json.Unmarshal(h.body, &ev); err != nil {
		t.Fatalf("delivery body: %v: %s", err, h.body)
	}
	if !strings.HasPrefix(ev.ID, "evt_") || ev.Type != "ticket.created" || ev.CreatedAt.IsZero() || h.header.Get("X-Sunucu-Event") != "ticket.created" || h.header.Get("X-Sunucu-Delivery") == "" {
		t.Errorf("delivery: headers %v body %s", h.header, h.body)
	}
	for _, k := range []string{"ticketId", "ticketNumber", "subject", "status", "priority"} {
		if _, ok := ev.Data[k]; !ok {
			t.Errorf("ticket.created data has no %s (the seed's payload): %s", k, h.body)
		}
	}

	// Rotation: a delivery that failed before the rotation is retried after
	// it, and that retry, like every later delivery, verifies with the new
	// secret only.
	rc.setFailing(true)
	var tk2 api.Ticket
	if rep = r.write(f, r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "sig two", Message: "m"}); rep.Status != 201 {
		t.Fatalf("ticket: %s", rep)
	}
	rep.Decode(t, &tk2)
	first := rc.wait(t, "ticketId", tk2.ID, time.Time{}, 1, 30*time.Second)[0]
	rot := r.call(f, r.keyA, "POST", "/v1/webhooks/"+wh.ID+"/rotate-secret", nil, nil)
	var rotated api.Webhook
	rot.Decode(t, &rotated)
	if rot.Status != 200 || len(rotated.Secret) < 32 || rotated.Secret == secret || rot.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("rotate-secret: %s (Cache-Control %q); want 200, a new secret, no-store", rot, rot.Header.Get("Cache-Control"))
	}
	// A request signed just before the rotation committed may still be on
	// its way: only those arriving 300 ms after its answer are counted.
	cutoff := time.Now().Add(300 * time.Millisecond)
	for i := range r.c.Len() {
		if got := r.call(i, r.keyA, "GET", "/v1/webhooks/"+wh.ID, nil, nil); strings.Contains(string(got.Body), rotated.Secret) || !strings.Contains(string(got.Body), rotated.Secret[len(rotated.Secret)-4:]) {
			t.Errorf("coordinator %d after rotation: %s; want the new secret masked", i, got)
		}
	}
	rc.setFailing(false)
	retries := rc.wait(t, "ticketId", tk2.ID, cutoff, 1, 60*time.Second)
	var tk3 api.Ticket
	if rep = r.write(f, r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "sig three", Message: "m"}); rep.Status != 201 {
		t.Fatalf("ticket: %s", rep)
	}
	rep.Decode(t, &tk3)
	for _, h := range append(retries, rc.wait(t, "ticketId", tk3.ID, cutoff, 1, 30*time.Second)...) {
		sig := h.header.Get("X-Sunucu-Signature")
		okNew, _, err := signedBy(rotated.Secret, sig, h.body)
		okOld, _, _ := signedBy(secret, sig, h.body)
		if err != nil || !okNew || okOld {
			t.Errorf("a request after the rotation (delivery %s): verifies with the new secret %v, with the old %v (%v); want the new only", h.header.Get("X-Sunucu-Delivery"), okNew, okOld, err)
		}
	}
	if d0, d1 := first.header.Get("X-Sunucu-Delivery"), retries[len(retries)-1].header.Get("X-Sunucu-Delivery"); d0 == "" || d0 != d1 {
		t.Errorf("X-Sunucu-Delivery of a retry %q, of its first attempt %q: want the same", d1, d0)
	}

	// Paused (isActive false): nothing is sent, a redeliver is refused;
	// resumed: the next event is.
	if rep = r.write(f, r.keyA, "PATCH", "/v1/webhooks/"+wh.ID, map[string]any{"isActive": false}); rep.Status != 200 || !strings.Contains(string(rep.Body), `"isActive":false`) {
		t.Fatalf("pause: %s", rep)
	}
	var paused api.Ticket
	r.write(f, r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "while paused", Message: "m"}).Decode(t, &paused)
	if got := r.call(f, r.keyA, "POST", "/v1/webhooks/"+wh.ID+"/deliveries/"+first.header.Get("X-Sunucu-Delivery")+"/redeliver", nil, nil); got.Status != 409 {
		t.Errorf("redeliver on a paused webhook: %s; want 409", got)
	}
	time.Sleep(3 * time.Second)
	rc.mu.Lock()
	for _, h := range rc.hits {
		if strings.Contains(string(h.body), paused.ID) {
			t.Errorf("a paused webhook was sent %s", h.body)
		}
	}
	rc.mu.Unlock()
	if rep = r.write(f, r.keyA, "PATCH", "/v1/webhooks/"+wh.ID, map[string]any{"is_active": true}); rep.Status != 200 || !strings.Contains(string(rep.Body), `"isActive":true`) {
		t.Fatalf("resume: %s", rep)
	}
	var resumed api.Ticket
	r.write(f, r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "resumed", Message: "m"}).Decode(t, &resumed)
	rc.wait(t, "ticketId", resumed.ID, time.Time{}, 1, 30*time.Second)

	// events ["*"]: every event, shown as ["*"].
	rcAll := newReceiver(t)
	var all api.Webhook
	if rep = r.call(f, r.keyA, "POST", "/v1/webhooks", api.WebhookCreateRequest{URL: rcAll.URL, Events: []string{"*"}}, nil); rep.Status != 201 {
		t.Fatalf("create [*]: %s", rep)
	}
	rep.Decode(t, &all)
	if len(all.Events) != 1 || all.Events[0] != "*" {
		t.Errorf("events of a [*] subscription: %v", all.Events)
	}
	var tk4 api.Ticket
	r.write(f, r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "star", Message: "m"}).Decode(t, &tk4)
	h = rcAll.wait(t, "ticketId", tk4.ID, time.Time{}, 1, 30*time.Second)[0]
	if ok, _, err := signedBy(all.Secret, h.header.Get("X-Sunucu-Signature"), h.body); !ok || err != nil {
		t.Errorf("[*] delivery does not verify with its own secret: %v", err)
	}

	// Refused bodies: 400 naming the field, nothing created.
	before := r.call(0, r.keyA, "GET", "/v1/webhooks", nil, nil).Body
	long := rc.URL + "?" + strings.Repeat("a", 2100)
	host := strings.TrimPrefix(rc.URL, "http://")
	for _, c := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"unknown event", map[string]any{"url": rc.URL, "events": []string{"server.exploded"}}, "events"},
		{"an event and a typo", map[string]any{"url": rc.URL, "events": []string{"ticket.created", "ticket.create"}}, "events"},
		{"no events", map[string]any{"url": rc.URL, "events": []string{}}, "events"},
		{"ftp url", map[string]any{"url": "ftp://" + host, "events": []string{"*"}}, "url"},
		{"javascript url", map[string]any{"url": "javascript:alert(1)", "events": []string{"*"}}, "url"},
		{"credentials in the url", map[string]any{"url": "http://user:pw@" + host, "events": []string{"*"}}, "url"},
		{"over-long url", map[string]any{"url": long, "events": []string{"*"}}, "url"},
		{"relative url", map[string]any{"url": "/hook", "events": []string{"*"}}, "url"},
	} {
		got := r.call(f, r.keyA, "POST", "/v1/webhooks", c.body, nil)
		if got.Status != 400 || !strings.Contains(string(got.Body), `\"`+c.field+`\"`) {
			t.Errorf("%s: %s; want 400 naming %q", c.name, got, c.field)
		}
		patch := map[string]any{c.field: c.body[c.field]}
		if got := r.call(f, r.keyA, "PATCH", "/v1/webhooks/"+wh.ID, patch, nil); got.Status != 400 || !strings.Contains(string(got.Body), `\"`+c.field+`\"`) {
			t.Errorf("PATCH %s: %s; want 400 naming %q", c.name, got, c.field)
		}
	}
	if after := r.call(0, r.keyA, "GET", "/v1/webhooks", nil, nil).Body; string(after) != string(before) {
		t.Errorf("refused bodies changed A's webhooks:\n%s\n→\n%s", before, after)
	}

	// Another account's delivery id, under a webhook of B's own.
	var dl struct {
		Data []api.WebhookAttempt `json:"data"`
	}
	r.call(0, r.keyA, "GET", "/v1/webhooks/"+wh.ID+"/deliveries", nil, nil).Decode(t, &dl)
	dl.Data = slices.DeleteFunc(dl.Data, func(a api.WebhookAttempt) bool { return a.Outcome == api.AttemptQueued })
	if len(dl.Data) == 0 {
		t.Fatal("A's webhook has no attempted deliveries")
	}
	dlv := dl.Data[0].DeliveryID
	rc.mu.Lock()
	n := len(rc.hits)
	rc.mu.Unlock()
	// Each redeliver carries an Idempotency-Key, so the rig sends it again
	// after an election's 503, as a client would.
	keyed := func() map[string]string { return map[string]string{"Idempotency-Key": "redeliver-" + rand.Text()} }
	for i := range r.c.Len() {
		if got := r.call(i, r.keyB, "POST", "/v1/webhooks/"+bw.ID+"/deliveries/"+dlv+"/redeliver", nil, keyed()); got.Status != 404 {
			t.Errorf("coordinator %d: B redelivering A's delivery under B's webhook: %s; want 404", i, got)
		}
	}
	time.Sleep(2 * time.Second)
	rc.mu.Lock()
	if len(rc.hits) != n {
		t.Errorf("A's receiver got %d requests after B's redeliveries", len(rc.hits)-n)
	}
	rc.mu.Unlock()
	// A's own redeliver of it works (the id was a real one).
	if got := r.call(f, r.keyA, "POST", "/v1/webhooks/"+wh.ID+"/deliveries/"+dlv+"/redeliver", nil, keyed()); got.Status != 202 {
		t.Errorf("A redelivering its own delivery: %s", got)
	}
	bRecv.mu.Lock()
	defer bRecv.mu.Unlock()
	for _, h := range bRecv.hits {
		t.Errorf("B's [*] webhook received one of A's events: %s", h.body)
	}
}

// keyCluster is three coordinator processes (framework.RaftTimeout) and
// the key of an account of email with every scope, created within the
// given time.
func keyCluster(t *testing.T, email string, within time.Duration) (*framework.ProcessCluster, string) {
	t.Helper()
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 3, Bin: framework.Coordinator(t), RaftTimeout: framework.RaftTimeout})
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	_, key, err := c.NewAccount(ctx, email, api.AllScopes...)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

// TestWebhookTargetsOutsideIn: where a webhook may point. With the
// coordinators' defaults (https only, no private addresses), every spelling
// of a loopback, private, link-local or metadata address is a 400 naming
// "url" and creates nothing; with private addresses allowed for development
// (--webhook-allow-private) metadata addresses stay refused; a receiver's
// redirect is never followed (SPEC.md): the delivery fails and the
// redirect's target gets nothing.
func TestWebhookTargetsOutsideIn(t *testing.T) {
	c, key := keyCluster(t, "targets@example.com", 2*time.Minute)
	strict := framework.NewAPI(t, c.URL(1), nil)
	metadata := []string{
		"https://169.254.169.254/latest/meta-data/", "https://[::ffff:169.254.169.254]/", "https://[::ffff:a9fe:a9fe]/",
		"https://[fd00:ec2::254]/", "https://169.254.170.2/v2/credentials", "https://100.100.100.200/", "https://0.0.0.0/",
		"https://2852039166/", "https://0xa9fea9fe/", "https://0251.0376.0251.0376/", "https://169.254.169.254./",
	}
	private := []string{
		"https://127.0.0.1/", "https://127.1/", "https://2130706433/", "https://0x7f000001/", "https://017700000001/",
		"https://localhost/", "https://LOCALHOST./", "https://[::1]/", "https://[::ffff:127.0.0.1]/", "https://[0:0:0:0:0:ffff:7f00:1]/",
		"https://10.0.0.1/", "https://172.16.0.1/", "https://192.168.1.1/", "https://100.64.0.1/", "https://[fd00::1]/",
		"https://[fe80::1]/", "https://169.254.1.1/", "http://example.com/",
	}
	for _, u := range append(slices.Clone(metadata), private...) {
		rep := strict.Call(key, "POST", "/v1/webhooks", map[string]any{"url": u, "events": []string{"*"}}, nil)
		if rep.Status != 400 || !strings.Contains(string(rep.Body), `\"url\"`) {
			t.Errorf("default coordinators, url %s: %s; want 400 naming url", u, rep)
		}
	}
	var list struct {
		Total int `json:"total"`
	}
	strict.Call(key, "GET", "/v1/webhooks", nil, nil).Decode(t, &list)
	if list.Total != 0 {
		t.Errorf("%d webhooks after refused URLs", list.Total)
	}

	// Development flags: loopback allowed, metadata never.
	r := sharedLightRig(t, "light")
	for _, u := range metadata {
		u = strings.Replace(u, "https://", "http://", 1)
		if rep := r.call(0, r.keyA, "POST", "/v1/webhooks", map[string]any{"url": u, "events": []string{"*"}}, nil); rep.Status != 400 || !strings.Contains(string(rep.Body), `\"url\"`) {
			t.Errorf("--webhook-allow-private, url %s: %s; want 400 naming url", u, rep)
		}
	}
	target := newReceiver(t)
	redirecting := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusTemporaryRedirect))
	defer redirecting.Close()
	var wh api.Webhook
	rep := r.call(0, r.keyA, "POST", "/v1/webhooks", api.WebhookCreateRequest{URL: redirecting.URL + "/hook", Events: []string{"ticket.created"}}, nil)
	if rep.Status != 201 {
		t.Fatalf("webhook: %s", rep)
	}
	rep.Decode(t, &wh)
	r.write(0, r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: "redirect", Message: "m"})
	var attempts []api.WebhookAttempt
	framework.WaitFor(t, "an attempt at the redirecting receiver", 30*time.Second, 100*time.Millisecond, func() bool {
		var dl struct {
			Data []api.WebhookAttempt `json:"data"`
		}
		r.call(0, r.keyA, "GET", "/v1/webhooks/"+wh.ID+"/deliveries", nil, nil).Decode(t, &dl)
		attempts = slices.DeleteFunc(dl.Data, func(a api.WebhookAttempt) bool { return a.Outcome == api.AttemptQueued })
		return len(attempts) > 0
	})
	if a := attempts[0]; a.StatusCode != http.StatusTemporaryRedirect || a.Outcome == "succeeded" || a.DeliveryStatus == api.DeliverySucceeded {
		t.Errorf("attempt at a receiver answering 307: %+v; want a failed attempt recording 307", a)
	}
	time.Sleep(2 * time.Second)
	target.mu.Lock()
	defer target.mu.Unlock()
	if len(target.hits) != 0 {
		t.Errorf("the redirect's target got %d requests; redirects must not be followed", len(target.hits))
	}
}
