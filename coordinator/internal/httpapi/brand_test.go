package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/brand"
)

// TestBrandOpenAPIDefaultUnchanged: the sunucu document is the checked-in
// file, byte for byte.
func TestBrandOpenAPIDefaultUnchanged(t *testing.T) {
	doc, err := BrandOpenAPI(brand.Of(nil), OpenAPI)
	if err != nil || !bytes.Equal(doc, OpenAPI) {
		t.Fatalf("sunucu document differs from openapi.json (err %v)", err)
	}
}

// TestBrandOpenAPIRenamesEveryOperation: each brand's document is valid, its
// operations are exactly the brand's route table with the same scopes, and
// every canonical operation appears once under its renamed path, with its
// operationId renamed the same way, its quote pointing at a documented
// operation, and no sunucu-only name (path segment, scope, event, payload
// field, header) left in the 444host document.
func TestBrandOpenAPIRenamesEveryOperation(t *testing.T) {
	canonical := loadDoc(t, OpenAPI)
	a := &API{}
	routes := a.allRoutes()
	for _, name := range brand.Names() {
		b := brand.MustGet(name)
		raw, err := BrandOpenAPI(b, OpenAPI)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		doc := loadDoc(t, raw)
		served := map[string]Route{}
		for _, rt := range BrandRoutes(b, routes) {
			served[rt.Method+" "+strings.TrimPrefix(rt.Path, "/v1")] = rt
		}
		documented := 0
		for path, item := range doc.Paths.Map() {
			for method, op := range item.Operations() {
				documented++
				key := method + " " + path
				rt, ok := served[key]
				if !ok {
					t.Errorf("%s: documented but not served: %s", name, key)
					continue
				}
				if scope, _ := op.Extensions["x-scope"].(string); scope != rt.Scope {
					t.Errorf("%s: %s: x-scope %q, served %q", name, key, scope, rt.Scope)
				}
				if got, want := securityOf(op), securityWant(rt); got != want {
					t.Errorf("%s: %s: security %s, served %s", name, key, got, want)
				}
				if q, _ := op.Extensions["x-quote"].(string); q != rt.Quote {
					t.Errorf("%s: %s: x-quote %q, served %q", name, key, q, rt.Quote)
				}
				// The canonical operation it came from has the renamed operationId.
				cpath := strings.TrimPrefix(b.CanonicalPath("/v1"+path), "/v1")
				citem := canonical.Paths.Value(cpath)
				if citem == nil || citem.GetOperation(method) == nil {
					t.Errorf("%s: %s has no canonical operation at %s", name, key, cpath)
					continue
				}
				if want := b.OperationID(citem.GetOperation(method).OperationID); op.OperationID != want {
					t.Errorf("%s: %s: operationId %q, want %q", name, key, op.OperationID, want)
				}
			}
		}
		if documented != len(served) || documented != len(routes) {
			t.Errorf("%s: %d documented, %d served, %d canonical routes", name, documented, len(served), len(routes))
		}
		if b.IsDefault() {
			continue
		}
		text := string(raw)
		// (REST bodies keep their field names in every brand: the all-ips
		// groups' serverId stays; event payloads are renamed, checked below.)
		for _, gone := range []string{`"/servers`, "servers:", "X-Sunucu-", "snc_", "sunucu.com"} {
			if strings.Contains(text, gone) {
				t.Errorf("%s: document still says %q", name, gone)
			}
		}
		for _, e := range api.WebhookEventNames() {
			if b.Event(e) != e && strings.Contains(text, `"`+e+`"`) {
				t.Errorf("%s: document still names event %q", name, e)
			}
		}
		var d struct {
			Events []api.WebhookEventInfo `json:"x-webhook-events"`
		}
		if err := json.Unmarshal(raw, &d); err != nil || len(d.Events) != len(api.WebhookEvents) {
			t.Fatalf("%s: x-webhook-events: %v (%d)", name, err, len(d.Events))
		}
		if e := d.Events[0]; e.Name != "vps.created" || strings.Join(e.Payload, ",") != "vpsId,status,label,hostname,planSlug,ipv4" {
			t.Errorf("%s: %+v, want the seed's vps.created payload", name, e)
		}
		for i, e := range d.Events {
			c := api.WebhookEvents[i]
			if e.Name != b.Event(c.Name) || strings.Join(e.Payload, ",") != strings.Join(b.EventFields(c.Name, c.Payload), ",") {
				t.Errorf("%s: event %+v from %+v", name, e, c)
			}
		}
	}
}

// TestBrandOpenAPISeed444host: the 444host document has the operations the
// 444host seed lists (API v1.4) under its paths and scopes.
func TestBrandOpenAPISeed444host(t *testing.T) {
	raw, err := BrandOpenAPI(brand.MustGet(brand.H444), OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	doc := loadDoc(t, raw)
	seed := []struct{ method, path, scope string }{
		{"GET", "/account", "account:read"},
		{"GET", "/products", "account:read"},
		{"POST", "/vps", "orders:write"},
		{"GET", "/vps", "vps:read"},
		{"GET", "/vps/{id}", "vps:read"},
		{"GET", "/vps/{id}/stats", "vps:read"},
		{"GET", "/vps/{id}/ips", "vps:read"},
		{"GET", "/vps/all-ips", "vps:read"},
		{"POST", "/vps/{id}/power/{action}", "vps:write"},
		{"PATCH", "/vps/{id}/label", "vps:write"},
		{"PUT", "/vps/{id}/ips/{ip}/ptr", "vps:write"},
		{"DELETE", "/vps/{id}/ips/{ip}/ptr", "vps:write"},
		{"POST", "/vps/{id}/reinstall", "vps:destroy"},
		{"DELETE", "/vps/{id}", "vps:destroy"},
		{"GET", "/hosting", "hosting:read"},
		{"GET", "/hosting/{id}", "hosting:read"},
		{"POST", "/hosting/{id}/suspend", "hosting:write"},
		{"POST", "/hosting/{id}/unsuspend", "hosting:write"},
		{"DELETE", "/hosting/{id}", "hosting:destroy"},
		{"PUT", "/hosting/{id}/php", "hosting:write"},
		{"POST", "/hosting/{id}/ssl/retry", "hosting:write"},
		{"GET", "/billing/invoices", "billing:read"},
		{"GET", "/billing/invoices/{id}", "billing:read"},
		{"GET", "/billing/wallet", "billing:read"},
		{"GET", "/billing/wallet/transactions", "billing:read"},
		{"GET", "/tickets", "tickets:read"},
		{"GET", "/tickets/{id}", "tickets:read"},
		{"POST", "/tickets", "tickets:write"},
		{"POST", "/tickets/{id}/reply", "tickets:write"},
		{"POST", "/tickets/{id}/close", "tickets:write"},
		{"GET", "/webhooks", "webhooks:read"},
		{"POST", "/webhooks", "webhooks:write"},
		{"GET", "/webhooks/{id}", "webhooks:read"},
		{"PATCH", "/webhooks/{id}", "webhooks:write"},
		{"DELETE", "/webhooks/{id}", "webhooks:write"},
		{"POST", "/webhooks/{id}/rotate-secret", "webhooks:write"},
		{"GET", "/webhooks/{id}/deliveries", "webhooks:read"},
		{"POST", "/webhooks/{id}/deliveries/{deliveryId}/redeliver", "webhooks:write"},
	}
	for _, s := range seed {
		item := doc.Paths.Value(s.path)
		if item == nil || item.GetOperation(s.method) == nil {
			t.Errorf("444host seed operation %s /v1%s is not in the document", s.method, s.path)
			continue
		}
		if scope, _ := item.GetOperation(s.method).Extensions["x-scope"].(string); scope != s.scope {
			t.Errorf("%s /v1%s: scope %q, seed says %q", s.method, s.path, scope, s.scope)
		}
	}
	for _, old := range []string{"/servers", "/servers/{id}", "/servers/ips"} {
		if doc.Paths.Value(old) != nil {
			t.Errorf("444host document still has %s", old)
		}
	}
}

func loadDoc(t *testing.T, raw []byte) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatalf("document does not parse: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("not a valid OpenAPI 3 document: %v", err)
	}
	return doc
}
