package framework

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// WebhookDelivery is one request a WebhookReceiver answered: the event's
// type and id from the body (the dispatcher's JSON), its data, the raw body
// and the request's headers.
type WebhookDelivery struct {
	Type   string
	ID     string
	Data   map[string]any
	Body   []byte
	Header http.Header
}

// WebhookReceiver is a loopback HTTP endpoint (plain HTTP: the cluster needs
// ProcessOptions.Webhooks) that answers every delivery 204 and keeps it; a
// delivery whose body is not JSON fails the test (answered 400). Closed when
// the test ends.
type WebhookReceiver struct {
	URL string
	srv *httptest.Server
	mu  sync.Mutex
	all []WebhookDelivery
}

// NewWebhookReceiver starts a receiver for t.
func NewWebhookReceiver(t testing.TB) *WebhookReceiver {
	r := &WebhookReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var ev struct {
			Type string         `json:"type"`
			ID   string         `json:"id"`
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("webhook delivery is not JSON: %v: %.200s", err, body)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.all = append(r.all, WebhookDelivery{Type: ev.Type, ID: ev.ID, Data: ev.Data, Body: body, Header: req.Header.Clone()})
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	r.URL = r.srv.URL
	t.Cleanup(r.srv.Close)
	return r
}

// Deliveries returns the deliveries of event type typ received so far
// (every type when typ is empty), in arrival order.
func (r *WebhookReceiver) Deliveries(typ string) []WebhookDelivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []WebhookDelivery
	for _, d := range r.all {
		if typ == "" || d.Type == typ {
			out = append(out, d)
		}
	}
	return out
}

// Wait returns the first delivery of event type typ whose data satisfies
// match, failing t (with every delivery received) when none came within.
func (r *WebhookReceiver) Wait(t testing.TB, typ string, within time.Duration, match func(data map[string]any) bool) WebhookDelivery {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, d := range r.Deliveries(typ) {
			if match(d.Data) {
				return d
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var got []string
	for _, d := range r.Deliveries("") {
		got = append(got, d.Type+" "+string(d.Body))
	}
	t.Fatalf("no %s delivery within %s; received:\n%s", typ, within, strings.Join(got, "\n"))
	return WebhookDelivery{}
}

// WebhookSignatureOK checks a delivery's signature header as SPEC.md (and the
// 444host seed) describe it, with no hostplane code: "t=<unix seconds>,v1=<hex
// HMAC-SHA256(secret, "<t>." + body)>". With maxSkew > 0 the timestamp must
// also be within maxSkew of now.
func WebhookSignatureOK(secret, header string, body []byte, maxSkew time.Duration) bool {
	var ts, v1 string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			v1 = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || v1 == "" || (maxSkew > 0 && time.Since(time.Unix(sec, 0)).Abs() > maxSkew) {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "." + string(body)))
	return hmac.Equal([]byte(hex.EncodeToString(m.Sum(nil))), []byte(v1))
}
