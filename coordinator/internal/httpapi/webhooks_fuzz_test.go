package httpapi

import (
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/webhook"
	"github.com/hostplane/hostplane/pkg/api"
)

var webhookSeeds = []string{
	`{"url":"https://example.com/hooks","events":["*"],"description":"prod"}`,
	`{"url":"https://example.com/hooks","events":["ticket.created","ticket.created","invoice.paid"]}`,
	`{"url":"http://127.0.0.1","events":["*"]}`, `{"url":"https://10.0.0.1","events":["*"]}`,
	`{"url":"https://[::1]","events":["nope"]}`, `{"url":"","events":[]}`, `{"url":1}`, `{"events":null}`,
	`{"isActive":false}`, `{"is_active":true}`, `{"isActive":true,"is_active":false}`, `{}`, `{"url":"https://a.example/x#f"}`,
	`{"description":"\u0000"}`, `{"events":["*","ticket.created"]}`, `[`, ``, `null`,
}

func FuzzDecodeWebhookCreate(f *testing.F) {
	g := &webhook.Guard{}
	decode := func(body []byte) (api.WebhookCreateRequest, error) { return DecodeWebhookCreate(body, g) }
	fuzzDecoder(f, webhookSeeds, decode, func(t *testing.T, req api.WebhookCreateRequest) {
		if _, err := g.ParseURL(req.URL); err != nil || !strings.HasPrefix(req.URL, "https:") {
			t.Fatalf("accepted url %q", req.URL)
		}
		if len(req.Events) == 0 {
			t.Fatal("accepted no events")
		}
		for _, e := range req.Events {
			if e != "*" && !api.IsWebhookEvent(e) {
				t.Fatalf("accepted event %q", e)
			}
		}
		if len(req.Events) > 1 && req.Events[0] == "*" {
			t.Fatalf("* mixed with names: %v", req.Events)
		}
	})
}

func FuzzDecodeWebhookUpdate(f *testing.F) {
	g := &webhook.Guard{}
	decode := func(body []byte) (api.WebhookUpdateRequest, error) { return DecodeWebhookUpdate(body, g) }
	fuzzDecoder(f, webhookSeeds, decode, func(t *testing.T, req api.WebhookUpdateRequest) {
		if req.IsActiveAlt != nil {
			t.Fatal("is_active not folded into isActive")
		}
		if req.URL == nil && req.Events == nil && req.Description == nil && req.IsActive == nil {
			t.Fatal("accepted an empty change")
		}
		if req.URL != nil && !strings.HasPrefix(*req.URL, "https:") {
			t.Fatalf("accepted url %q", *req.URL)
		}
		if req.Events != nil {
			for _, e := range *req.Events {
				if e != "*" && !api.IsWebhookEvent(e) {
					t.Fatalf("accepted event %q", e)
				}
			}
		}
	})
}
