package httpapi

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/webhook"
)

// TestSeedExampleBodies: each request body the sunucu.com v1.6 developer page
// (seed 001) gives as an example is taken as written by its endpoint's
// decoder, every field of it kept, and the same body with a field misspelt
// is refused naming the misspelt field. (tests/audit's
// TestSeedSurfaceServedAsWritten sends the ticket and webhook bodies to a
// coordinator; the server, hosting and domain ones need a resource first,
// and a handler looks the resource up before it reads the body.)
func TestSeedExampleBodies(t *testing.T) {
	g := &webhook.Guard{}
	asJSON := func(v any, err error) (string, error) {
		b, _ := json.Marshal(v)
		return string(b), err
	}
	for _, tc := range []struct {
		endpoint, body string // body: seed 001, verbatim
		decode         func([]byte) (string, error)
		want           []string // what the decoded request must carry
	}{
		{"POST /v1/servers/:id/snapshots", `{ "name": "pre-upgrade", "description": "before kernel bump" }`,
			func(b []byte) (string, error) { return asJSON(DecodeSnapshotCreate(b)) }, []string{"pre-upgrade", "before kernel bump"}},
		{"POST /v1/servers/:id/reinstall", `{ "osTemplate": "ubuntu-22.04", "os": "ubuntu" }`,
			func(b []byte) (string, error) { return asJSON(DecodeReinstall(b)) }, []string{`"osTemplate":"ubuntu-22.04"`, `"os":"ubuntu"`}},
		{"PUT /v1/hosting/:id/custom-domain", `{ "domain": "example.com" }`,
			func(b []byte) (string, error) { return asJSON(DecodeCustomDomain(b)) }, []string{"example.com"}},
		{"PATCH /v1/domains/:id", `{ "auto_renew": true, "transfer_lock": true, "nameservers": ["ns1.example.com","ns2.example.com"] }`,
			func(b []byte) (string, error) { return asJSON(DecodeDomainUpdate(b)) }, []string{`"auto_renew":true`, `"transfer_lock":true`, `"ns1.example.com","ns2.example.com"`}},
		{"POST /v1/tickets", `{ "subject": "Need help", "message": "…", "department": "technical", "priority": "medium" }`,
			func(b []byte) (string, error) { return asJSON(DecodeTicketCreate(b)) }, []string{"Need help", `"…"`, `"technical"`, `"medium"`}},
		{"POST /v1/tickets/:id/reply", `{ "body": "Thanks, that worked." }`,
			func(b []byte) (string, error) { return asJSON(DecodeTicketReply(b)) }, []string{"Thanks, that worked."}},
		{"POST /v1/webhooks", `{ "url": "https://example.com/hooks", "events": ["*"], "description": "prod" }`,
			func(b []byte) (string, error) { return asJSON(DecodeWebhookCreate(b, g)) }, []string{"https://example.com/hooks", `["*"]`, `"prod"`}},
		{"PATCH /v1/webhooks/:id", `{ "url": "https://example.com/hooks", "events": ["*"], "description": "prod", "isActive": false }`,
			func(b []byte) (string, error) { return asJSON(DecodeWebhookUpdate(b, g)) }, []string{"https://example.com/hooks", `["*"]`, `"prod"`, `"isActive":false`}},
	} {
		got, err := tc.decode([]byte(tc.body))
		if err != nil {
			t.Errorf("%s %s: %v", tc.endpoint, tc.body, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s %s: decoded %s, which lacks %s", tc.endpoint, tc.body, got, w)
			}
		}
		var fields map[string]any
		if err := json.Unmarshal([]byte(tc.body), &fields); err != nil {
			t.Fatal(err)
		}
		names := make([]string, 0, len(fields))
		for f := range fields {
			names = append(names, f)
		}
		slices.Sort(names)
		for _, f := range names {
			bad := map[string]any{}
			for k, v := range fields {
				bad[k] = v
			}
			bad[f+"x"] = bad[f]
			delete(bad, f)
			b, _ := json.Marshal(bad)
			if _, err := tc.decode(b); err == nil || !strings.Contains(err.Error(), f+"x") {
				t.Errorf("%s %s: %v, want an error naming %q", tc.endpoint, b, err, f+"x")
			}
		}
	}
}
