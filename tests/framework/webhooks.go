package framework

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// WebhookDelivery is one request a WebhookReceiver answered: the event's
// type and id from the body (the dispatcher's JSON), its data, and the raw
// body.
type WebhookDelivery struct {
	Type string
	ID   string
	Data map[string]any
	Body []byte
}

// WebhookReceiver is a loopback HTTP endpoint (plain HTTP: the cluster needs
// ProcessOptions.Webhooks) that answers every delivery 204 and keeps it.
// Closed when the test ends.
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
		_ = json.Unmarshal(body, &ev)
		r.mu.Lock()
		r.all = append(r.all, WebhookDelivery{Type: ev.Type, ID: ev.ID, Data: ev.Data, Body: body})
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
