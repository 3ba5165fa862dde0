package httpapi

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestOpenAPIWebhookCatalogue keeps the catalogue in /openapi.json (all 16
// events, and which are emitted so far) equal to api.WebhookEvents.
func TestOpenAPIWebhookCatalogue(t *testing.T) {
	var doc struct {
		Events  []api.WebhookEventInfo `json:"x-webhook-events"`
		Emitted []string               `json:"x-webhook-events-emitted"`
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(doc.Events, api.WebhookEvents) {
		t.Fatalf("openapi.json x-webhook-events differs from api.WebhookEvents:\n%+v\n%+v", doc.Events, api.WebhookEvents)
	}
	var emitted []string
	for _, e := range api.WebhookEvents {
		if e.Emitted {
			emitted = append(emitted, e.Name)
		}
	}
	if len(api.WebhookEvents) != 21 || !reflect.DeepEqual(doc.Emitted, emitted) {
		t.Fatalf("catalogue %d events, emitted %v vs %v", len(api.WebhookEvents), doc.Emitted, emitted)
	}
}

// TestOpenAPIWebhookEventEnums: every enum of event names in /openapi.json
// (a webhook's events, a delivery's type) lists the whole catalogue, in its
// order ("*" first where subscribing to all is allowed), so a response
// naming any event validates against the document.
func TestOpenAPIWebhookEventEnums(t *testing.T) {
	var doc any
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	var names []any
	for _, e := range api.WebhookEvents {
		names = append(names, e.Name)
	}
	found := 0
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if enum, ok := v["enum"].([]any); ok && slices.Contains(enum, any(string(api.EventServerCreated))) {
				found++
				want := names
				if len(enum) > 0 && enum[0] == "*" {
					want = append([]any{"*"}, names...)
				}
				if !reflect.DeepEqual(enum, want) {
					t.Errorf("%s enum %v\nwant %v", path, enum, want)
				}
			}
			for k, c := range v {
				walk(path+"/"+k, c)
			}
		case []any:
			for i, c := range v {
				walk(fmt.Sprintf("%s/%d", path, i), c)
			}
		}
	}
	walk("#", doc)
	if found < 4 {
		t.Fatalf("%d event enums found, want at least 4 (webhook events in, out, update, a delivery's type)", found)
	}
}
