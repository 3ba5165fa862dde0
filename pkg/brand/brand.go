// Package brand is the public dialect a hostplane coordinator speaks: one build
// serves sunucu (the default, the names the code is written in) and 444host, a
// sister brand whose API is the same operations under other names.
//
// A brand only renames. The route table, the handlers, the FSM and its events
// are written once in the canonical (sunucu) names; a Brand maps those names at
// the edges: route registration (paths), scope checks and the scope list, key
// and token prefixes, webhook event names, payload fields and headers, the
// OpenAPI document and the MCP tool names generated from it.
//
// The rename is by word, so a new route needs no brand work unless its names
// contain a renamed word: 444host renames the path segment "servers" (right
// after /v1/) to "vps", the scope resource "servers:" to "vps:", the event
// prefix "server." to "vps." and the payload field "serverId" to "vpsId";
// /v1/domains, /v1/scopes or /v1/account/api-keys stay as they are.
package brand

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/hostplane/hostplane/pkg/api"
)

// Names of the brands.
const (
	Sunucu  = "sunucu"
	H444    = "444host"
	Default = Sunucu
)

// Brand is one public dialect. The zero value and nil are not valid; use Get.
type Brand struct {
	// Name is the brand's setting value: "sunucu" or "444host".
	Name string
	// Header is the brand in the webhook header names: X-<Header>-Signature.
	Header string
	// KeyPrefix starts minted API keys ("snc_", "h444_"); OAuth tokens add
	// "at_"/"rt_" to it.
	KeyPrefix string
	// Site is the brand's public domain, used in generated documentation.
	Site string
	// KeyEnv is the environment variable the brand's documentation names for
	// the API key of a local (stdio) MCP server: SUNUCU_API_KEY,
	// H444_API_KEY. hostplane-mcp reads it when HOSTPLANE_API_KEY is unset.
	KeyEnv string

	// segments renames the path segment right after /v1/ (canonical →
	// brand); paths renames whole canonical paths first (a route whose brand
	// name is not the segment rename alone).
	segments map[string]string
	paths    map[string]string
	// scopes renames a scope's resource (the part before ':').
	scopes map[string]string
	// events renames an event name's first dotted word.
	events map[string]string
	// fields renames event payload fields.
	fields map[string]string
	// hidden lists, per canonical event, payload fields this brand does not
	// deliver (the FSM records the union of what the brands deliver).
	hidden map[string][]string
	// documented lists, per canonical event, payload fields the brand
	// delivers beyond the catalogue's list (api.WebhookEvents), for its
	// documentation.
	documented map[string][]string
	// words renames words of operationIds (camel case), in order.
	words [][2]string

	rev reverse
}

type reverse struct {
	segments, paths, scopes, events, fields map[string]string
}

var brands = map[string]*Brand{
	Sunucu: {
		Name: Sunucu, Header: "Sunucu", KeyPrefix: "snc_", Site: "sunucu.com", KeyEnv: "SUNUCU_API_KEY",
		// server.created carries hostname and planSlug for 444host; sunucu's
		// payload stays serverId, status, label and ipv4 as it always was.
		hidden: map[string][]string{"server.created": {"hostname", "planSlug"}},
	},
	H444: {
		Name: H444, Header: "444host", KeyPrefix: "h444_", Site: "444host.com", KeyEnv: "H444_API_KEY",
		segments: map[string]string{"servers": "vps"},
		paths:    map[string]string{"/v1/servers/ips": "/v1/vps/all-ips"},
		scopes:   map[string]string{"servers": "vps"},
		events:   map[string]string{"server": "vps"},
		fields:   map[string]string{"serverId": "vpsId"},
		// The seed's vps.created: vpsId, label, hostname, planSlug, status, ipv4.
		documented: map[string][]string{"server.created": {"hostname", "planSlug", "ipv4"}},
		words:      [][2]string{{"Servers", "Vps"}, {"Server", "Vps"}},
	},
}

func init() {
	for _, b := range brands {
		b.rev = reverse{invert(b.segments), invert(b.paths), invert(b.scopes), invert(b.events), invert(b.fields)}
	}
}

func invert(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}

// Names lists the brands, the default first.
func Names() []string { return []string{Sunucu, H444} }

// Get returns the brand called name ("" is the default); an unknown name is
// an error naming the valid ones.
func Get(name string) (*Brand, error) {
	if name == "" {
		name = Default
	}
	if b, ok := brands[strings.ToLower(name)]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("brand %q: one of %s", name, strings.Join(Names(), ", "))
}

// MustGet is Get for names known to be valid.
func MustGet(name string) *Brand {
	b, err := Get(name)
	if err != nil {
		panic(err)
	}
	return b
}

// Of returns b, or the default brand when b is nil.
func Of(b *Brand) *Brand {
	if b == nil {
		return brands[Default]
	}
	return b
}

// IsDefault reports whether b speaks the canonical names (renames nothing).
func (b *Brand) IsDefault() bool { return Of(b).Name == Default }

// Path renames a canonical path ("/v1/servers/{id}/stats", or a concrete
// "/v1/servers/srv_1?page=2") into the brand's. Only the segment right after
// /v1/ is renamed (and whole paths the brand lists), so ids and later
// segments are never touched.
func (b *Brand) Path(p string) string { return Of(b).path(p, false) }

// CanonicalPath is the inverse of Path: a brand path to the canonical one.
func (b *Brand) CanonicalPath(p string) string { return Of(b).path(p, true) }

func (b *Brand) path(p string, toCanonical bool) string {
	paths, segs := b.paths, b.segments
	if toCanonical {
		paths, segs = b.rev.paths, b.rev.segments
	}
	if len(segs) == 0 && len(paths) == 0 {
		return p
	}
	base, query, hasQuery := strings.Cut(p, "?")
	if full, ok := paths[base]; ok {
		base = full
	} else if rest, ok := strings.CutPrefix(base, "/v1/"); ok {
		seg, tail, slash := strings.Cut(rest, "/")
		if to, ok := segs[seg]; ok {
			base = "/v1/" + to
			if slash {
				base += "/" + tail
			}
		}
	}
	if hasQuery {
		return base + "?" + query
	}
	return base
}

// Operation renames "METHOD /v1/path" (a route's Quote).
func (b *Brand) Operation(op string) string {
	m, p, ok := strings.Cut(op, " ")
	if !ok {
		return op
	}
	return m + " " + b.Path(p)
}

// Scope renames a canonical scope ("servers:read" → "vps:read").
func (b *Brand) Scope(s string) string { return rename(Of(b).scopes, s, ":") }

// CanonicalScope is the inverse of Scope.
func (b *Brand) CanonicalScope(s string) string { return rename(Of(b).rev.scopes, s, ":") }

// Scopes renames a list of canonical scopes.
func (b *Brand) Scopes(canonical []string) []string {
	out := make([]string, len(canonical))
	for i, s := range canonical {
		out[i] = b.Scope(s)
	}
	return out
}

// Event renames a canonical event name ("server.power.changed" →
// "vps.power.changed"); "*" and names without a renamed first word stay.
func (b *Brand) Event(name string) string { return rename(Of(b).events, name, ".") }

// CanonicalEvent is the inverse of Event.
func (b *Brand) CanonicalEvent(name string) string { return rename(Of(b).rev.events, name, ".") }

// Field renames an event payload field ("serverId" → "vpsId").
func (b *Brand) Field(f string) string {
	if to, ok := Of(b).fields[f]; ok {
		return to
	}
	return f
}

// EventFields renames the payload field list of a canonical event, leaving
// out the fields the brand does not deliver and adding those it documents
// beyond the catalogue's.
func (b *Brand) EventFields(event string, fields []string) []string {
	b = Of(b)
	out := make([]string, 0, len(fields))
	for _, f := range append(append([]string(nil), fields...), b.documented[event]...) {
		if !b.hides(event, f) && !slices.Contains(out, b.Field(f)) {
			out = append(out, b.Field(f))
		}
	}
	return out
}

func (b *Brand) hides(event, field string) bool {
	for _, h := range b.hidden[event] {
		if h == field {
			return true
		}
	}
	return false
}

// EventData renames the JSON object data of a canonical event: fields
// renamed, hidden fields left out. Data that needs no change, or is not an
// object, is returned as it is (the same bytes).
func (b *Brand) EventData(event string, data json.RawMessage) json.RawMessage {
	b = Of(b)
	if len(b.fields) == 0 && len(b.hidden[event]) == 0 {
		return data
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		return data
	}
	changed := false
	out := make(map[string]json.RawMessage, len(m))
	for k, v := range m {
		if b.hides(event, k) {
			changed = true
			continue
		}
		nk := b.Field(k)
		if nk != k {
			if _, clash := m[nk]; clash {
				return data // already in this brand's names
			}
			changed = true
		}
		out[nk] = v
	}
	if !changed {
		return data
	}
	raw, err := json.Marshal(out)
	if err != nil {
		return data
	}
	return raw
}

// OperationID renames the words of a camel-case operationId
// ("listServerIPs" → "listVpsIPs").
func (b *Brand) OperationID(id string) string {
	for _, w := range Of(b).words {
		id = strings.ReplaceAll(id, w[0], w[1])
	}
	return id
}

// Text renames the canonical names a piece of documentation mentions: the
// renamed paths (a "/servers" segment at the start of a path, after "/v1"
// or after a space, quote, backtick or parenthesis), scopes, catalogue
// event names, the webhook header brand, the key prefix and the site.
// Payload field names in prose are left alone (REST bodies keep theirs).
func (b *Brand) Text(s string) string {
	b = Of(b)
	if b.IsDefault() {
		return s
	}
	def := brands[Default]
	var pairs []string
	for from, to := range b.scopes {
		pairs = append(pairs, from+":", to+":")
	}
	for _, e := range api.WebhookEventNames() {
		if to := b.Event(e); to != e {
			pairs = append(pairs, e, to)
		}
	}
	pairs = append(pairs, "X-"+def.Header+"-", "X-"+b.Header+"-", def.KeyPrefix, b.KeyPrefix, def.Site, b.Site)
	s = strings.NewReplacer(pairs...).Replace(s)
	for from, to := range b.paths {
		s = replacePath(s, strings.TrimPrefix(from, "/v1"), strings.TrimPrefix(to, "/v1"))
	}
	for from, to := range b.segments {
		s = replacePath(s, "/"+from, "/"+to)
	}
	return s
}

// replacePath replaces from (a path start such as "/servers") where it starts
// a public path: followed by a non-word character or the end, preceded by
// "/v1", the start, or a space, quote, backtick or parenthesis.
func replacePath(s, from, to string) string {
	var out strings.Builder
	for {
		i := strings.Index(s, from)
		if i < 0 {
			out.WriteString(s)
			return out.String()
		}
		end := i + len(from)
		after := end == len(s) || !wordByte(s[end])
		before := i == 0 || strings.HasSuffix(s[:i], "/v1") || strings.ContainsRune(" \t\n\"'`(", rune(s[i-1]))
		out.WriteString(s[:i])
		if after && before {
			out.WriteString(to)
		} else {
			out.WriteString(from)
		}
		s = s[end:]
	}
}

func wordByte(c byte) bool {
	return c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// rename maps the first sep-separated word of s through m.
func rename(m map[string]string, s, sep string) string {
	if len(m) == 0 {
		return s
	}
	head, tail, ok := strings.Cut(s, sep)
	if !ok {
		return s
	}
	if to, found := m[head]; found {
		return to + sep + tail
	}
	return s
}

// AllScopes is every scope in the brand's names, in api.AllScopes order.
func (b *Brand) AllScopes() []string { return b.Scopes(api.AllScopes) }

// DefaultScopes is api.DefaultScopes in the brand's names.
func (b *Brand) DefaultScopes() []string { return b.Scopes(api.DefaultScopes()) }

// IsScope reports whether s is a scope of this brand.
func (b *Brand) IsScope(s string) bool {
	c := b.CanonicalScope(s)
	return b.Scope(c) == s && api.IsScope(c)
}

// IsAnyScope reports whether s is a scope of some brand.
func IsAnyScope(s string) bool {
	for _, b := range brands {
		if b.IsScope(s) {
			return true
		}
	}
	return false
}

// SortScopes returns the scopes of in (any brand's names) in api.AllScopes
// order, without duplicates; unknown names are left out.
func SortScopes(in []string) []string {
	out := []string{}
	for _, c := range api.AllScopes {
		for _, name := range Names() {
			s := brands[name].Scope(c)
			if slices.Contains(in, s) && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}
