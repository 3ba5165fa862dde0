package framework_test

import (
	"testing"

	"github.com/hostplane/hostplane/tests/framework"
)

// HonoursIdempotencyKey reads the Idempotency-Key header parameter of an
// operation, by reference or inline, on the operation or its path; an
// operation without it, and a path the document lacks, do not honour one.
func TestHonoursIdempotencyKey(t *testing.T) {
	doc := []byte(`{"openapi":"3.0.3","info":{"title":"t","version":"1"},
	"components":{"parameters":{"IdempotencyKey":{"name":"Idempotency-Key","in":"header","schema":{"type":"string"}}}},
	"paths":{
	 "/webhooks":{"post":{"parameters":[{"$ref":"#/components/parameters/IdempotencyKey"}],"responses":{"201":{"description":"made"}}},
	              "get":{"responses":{"200":{"description":"list"}}}},
	 "/webhooks/{id}":{"parameters":[{"name":"id","in":"path","required":true,"schema":{"type":"string"}}],
	              "patch":{"responses":{"200":{"description":"changed"}}},
	              "delete":{"parameters":[{"name":"idempotency-key","in":"header","schema":{"type":"string"}}],"responses":{"202":{"description":"going"}}}},
	 "/tickets":{"parameters":[{"$ref":"#/components/parameters/IdempotencyKey"}],"post":{"responses":{"201":{"description":"made"}}}}}}`)
	a := framework.NewAPI(t, "http://127.0.0.1:1", doc)
	for _, c := range []struct {
		method, path string
		want         bool
	}{
		{"POST", "/v1/webhooks", true},
		{"GET", "/v1/webhooks", false},
		{"PATCH", "/v1/webhooks/wh_1", false},
		{"DELETE", "/v1/webhooks/wh_1", true},
		{"POST", "/v1/tickets", true},
		{"POST", "/v1/nothing", false},
		{"PUT", "/v1/webhooks", false},
	} {
		if got := a.HonoursIdempotencyKey(c.method, c.path); got != c.want {
			t.Errorf("%s %s: honours an Idempotency-Key %v, want %v", c.method, c.path, got, c.want)
		}
	}
}
