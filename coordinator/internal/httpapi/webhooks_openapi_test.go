package httpapi

import (
	"encoding/json"
	"reflect"
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
	if len(api.WebhookEvents) != 18 || !reflect.DeepEqual(doc.Emitted, emitted) {
		t.Fatalf("catalogue %d events, emitted %v vs %v", len(api.WebhookEvents), doc.Emitted, emitted)
	}
}
