package brand

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

func TestGet(t *testing.T) {
	for _, name := range []string{"", "sunucu", "SUNUCU", "444host"} {
		if _, err := Get(name); err != nil {
			t.Errorf("Get(%q): %v", name, err)
		}
	}
	if _, err := Get("acme"); err == nil || !strings.Contains(err.Error(), "sunucu, 444host") {
		t.Errorf("Get(acme) = %v, want an error naming the brands", err)
	}
	if b := Of(nil); b.Name != Sunucu || !b.IsDefault() || b.KeyPrefix != "snc_" || b.Header != "Sunucu" {
		t.Errorf("default brand %+v", b)
	}
}

// The default brand renames nothing.
func TestSunucuIsIdentity(t *testing.T) {
	b := MustGet(Sunucu)
	for _, p := range []string{"/v1/servers", "/v1/servers/ips", "/v1/servers/{id}/power/{action}", "/v1/servers/srv_1?page=2"} {
		if got := b.Path(p); got != p {
			t.Errorf("Path(%q) = %q", p, got)
		}
	}
	for _, s := range api.AllScopes {
		if b.Scope(s) != s || !b.IsScope(s) {
			t.Errorf("scope %q renamed or unknown", s)
		}
	}
	for _, e := range api.WebhookEventNames() {
		if b.Event(e) != e {
			t.Errorf("event %q renamed", e)
		}
	}
	data := json.RawMessage(`{"action":"start","serverId":"srv_1"}`)
	if got := b.EventData("server.power.changed", data); string(got) != string(data) {
		t.Errorf("EventData = %s", got)
	}
	if got := b.Text("X-Sunucu-Signature on /servers/{id}"); got != "X-Sunucu-Signature on /servers/{id}" {
		t.Errorf("Text = %q", got)
	}
}

func TestH444Renames(t *testing.T) {
	b := MustGet(H444)
	paths := map[string]string{
		"/v1/servers":                          "/v1/vps",
		"/v1/servers/ips":                      "/v1/vps/all-ips",
		"/v1/servers/{id}":                     "/v1/vps/{id}",
		"/v1/servers/{id}/ips/{ip}/ptr":        "/v1/vps/{id}/ips/{ip}/ptr",
		"/v1/servers/quote":                    "/v1/vps/quote",
		"/v1/servers/srv_servers?limit=5":      "/v1/vps/srv_servers?limit=5",
		"/v1/serversx":                         "/v1/serversx",
		"/v1/hosting/{id}":                     "/v1/hosting/{id}",
		"/v1/domains":                          "/v1/domains",
		"/v1/account/api-keys":                 "/v1/account/api-keys",
		"/admin/servers":                       "/admin/servers",
		"/v1/webhooks/{id}/deliveries/servers": "/v1/webhooks/{id}/deliveries/servers",
	}
	for from, want := range paths {
		got := b.Path(from)
		if got != want {
			t.Errorf("Path(%q) = %q, want %q", from, got, want)
		}
		if back := b.CanonicalPath(got); back != from {
			t.Errorf("CanonicalPath(%q) = %q, want %q", got, back, from)
		}
	}
	if got := b.Operation("POST /v1/servers/quote"); got != "POST /v1/vps/quote" {
		t.Errorf("Operation = %q", got)
	}
	for from, want := range map[string]string{"servers:read": "vps:read", "servers:destroy": "vps:destroy", "hosting:read": "hosting:read", "orders:write": "orders:write"} {
		if got := b.Scope(from); got != want || b.CanonicalScope(got) != from || !b.IsScope(got) {
			t.Errorf("Scope(%q) = %q", from, got)
		}
	}
	if b.IsScope("servers:read") || !IsAnyScope("servers:read") || !IsAnyScope("vps:write") || IsAnyScope("vps:nope") {
		t.Error("scope membership")
	}
	if got := b.DefaultScopes(); strings.Contains(strings.Join(got, " "), "servers") || !strings.Contains(strings.Join(got, " "), "vps:write") || strings.Contains(strings.Join(got, " "), "vps:destroy") {
		t.Errorf("DefaultScopes = %v", got)
	}
	if got := SortScopes([]string{"vps:write", "account:read", "vps:read", "nope"}); strings.Join(got, " ") != "account:read vps:read vps:write" {
		t.Errorf("SortScopes = %v", got)
	}
	for from, want := range map[string]string{"server.created": "vps.created", "server.power.changed": "vps.power.changed", "ticket.replied": "ticket.replied", "*": "*"} {
		if got := b.Event(from); got != want || b.CanonicalEvent(got) != from {
			t.Errorf("Event(%q) = %q", from, got)
		}
	}
	if got := b.OperationID("listServerIPs"); got != "listVpsIPs" {
		t.Errorf("OperationID = %q", got)
	}
	if got := b.OperationID("listServers"); got != "listVps" {
		t.Errorf("OperationID = %q", got)
	}
	got := b.EventData("server.created", json.RawMessage(`{"hostname":"web-1","ipv4":"198.51.100.3","label":"web-1","planSlug":"vps-2","serverId":"srv_1","status":"running"}`))
	if string(got) != `{"hostname":"web-1","ipv4":"198.51.100.3","label":"web-1","planSlug":"vps-2","status":"running","vpsId":"srv_1"}` {
		t.Errorf("EventData = %s", got)
	}
	// sunucu leaves out what only 444host delivers.
	got = Of(nil).EventData("server.created", json.RawMessage(`{"hostname":"web-1","ipv4":"198.51.100.3","label":"web-1","planSlug":"vps-2","serverId":"srv_1","status":"running"}`))
	if string(got) != `{"ipv4":"198.51.100.3","label":"web-1","serverId":"srv_1","status":"running"}` {
		t.Errorf("sunucu EventData = %s", got)
	}
	text := "Send X-Sunucu-Signature; keys look like snc_…; GET /servers/{id} or /v1/servers/ips needs servers:read; server.created and server.start; see sunucu.com. The server.\n/admin/servers stays."
	want := "Send X-444host-Signature; keys look like h444_…; GET /vps/{id} or /v1/vps/all-ips needs vps:read; vps.created and server.start; see 444host.com. The server.\n/admin/servers stays."
	if got := b.Text(text); got != want {
		t.Errorf("Text:\n got %q\nwant %q", got, want)
	}
}

// FuzzEventData: renaming never fails, is idempotent, and keeps every value.
func FuzzEventData(f *testing.F) {
	f.Add("server.created", []byte(`{"serverId":"srv_1","hostname":"h","planSlug":"p","x":[1,2]}`))
	f.Add("server.ptr.changed", []byte(`{"serverId":"s","vpsId":"v","ptr":null}`))
	f.Add("ticket.created", []byte(`[1]`))
	f.Add("server.power.changed", []byte(`{"serverId":1e400}`))
	f.Fuzz(func(t *testing.T, event string, data []byte) {
		for _, name := range Names() {
			b := MustGet(name)
			once := b.EventData(event, data)
			twice := b.EventData(b.Event(event), once)
			if string(twice) != string(b.EventData(event, once)) {
				t.Fatalf("%s: not idempotent: %s then %s", name, once, twice)
			}
			var in, out map[string]json.RawMessage
			if json.Unmarshal(data, &in) != nil || in == nil {
				if string(once) != string(data) {
					t.Fatalf("%s: non-object data changed: %q → %q", name, data, once)
				}
				continue
			}
			if err := json.Unmarshal(once, &out); err != nil {
				t.Fatalf("%s: renamed data is not an object: %s", name, once)
			}
			if len(out) > len(in) {
				t.Fatalf("%s: fields added: %s → %s", name, data, once)
			}
		}
	})
}

// FuzzPath: Path and CanonicalPath are inverse on any input the brand renamed.
func FuzzPath(f *testing.F) {
	for _, p := range []string{"/v1/servers/{id}", "/v1/servers/ips?x=1", "/v1/vps/all-ips", "/v1/", "servers", "/v1/servers"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		b := MustGet(H444)
		got := b.Path(p)
		if got != p && b.CanonicalPath(got) != p {
			t.Fatalf("CanonicalPath(Path(%q)) = %q", p, b.CanonicalPath(got))
		}
	})
}
