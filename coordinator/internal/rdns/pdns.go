package rdns

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client speaks PowerDNS Authoritative's HTTP API (/api/v1, PowerDNS 4.x).
// The API key is sent in X-API-Key only; it never appears in an error.
type Client struct {
	// BaseURL is the webserver's URL, e.g. http://127.0.0.1:8081.
	BaseURL string
	// ServerID is the PowerDNS server id in the API's paths ("localhost").
	ServerID string
	Key      string
	HTTP     *http.Client
	// Account is the PowerDNS account of the zones this cluster manages
	// (--pdns-account); clusters that share one PowerDNS each need their
	// own (OwnedZones). Empty: the zones carry no account, Sync leaves a
	// zone's account alone and OwnedZones lists nothing.
	Account string
}

// MaxZoneBody is the largest zone document read from PowerDNS (a /16 full of
// PTRs is about 10 MB).
const MaxZoneBody = 64 << 20

// ErrNoZone is returned by Client.Zone when PowerDNS does not have the zone.
var ErrNoZone = errors.New("zone not found in PowerDNS")

// APIError is a non-2xx answer of the PowerDNS API.
type APIError struct {
	Op     string
	Status int
	Msg    string // PowerDNS's "error" text, shortened
}

func (e *APIError) Error() string {
	return fmt.Sprintf("powerdns %s: HTTP %d: %s", e.Op, e.Status, e.Msg)
}

// Record is one record of an rrset.
type Record struct {
	Content  string `json:"content"`
	Disabled bool   `json:"disabled"`
}

// RRSet is an rrset as the API shows and changes it. ChangeType is set only
// in a PATCH (REPLACE or DELETE).
type RRSet struct {
	Name       string   `json:"name"`
	Type       string   `json:"type"`
	TTL        int      `json:"ttl,omitempty"`
	ChangeType string   `json:"changetype,omitempty"`
	Records    []Record `json:"records"`
}

// ZoneData is the part of GET /zones/{zone} the reconciler reads.
type ZoneData struct {
	Name    string  `json:"name"`
	Kind    string  `json:"kind"`
	Account string  `json:"account"`
	RRSets  []RRSet `json:"rrsets"`
}

// ValidAccount checks a PowerDNS account name a cluster marks its zones
// with: 1 to 40 letters, digits, '.', '_' and '-'.
func ValidAccount(a string) error {
	if a == "" || len(a) > 40 {
		return fmt.Errorf("account %q: 1 to 40 characters", a)
	}
	for _, r := range a {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("account %q: letters, digits, '.', '_' and '-' only", a)
		}
	}
	return nil
}

// DecodeZone parses a zone document from the API. Every rrset must have a
// name and a type; anything else PowerDNS adds is ignored.
func DecodeZone(body []byte) (ZoneData, error) {
	var z ZoneData
	if len(body) > MaxZoneBody {
		return z, fmt.Errorf("powerdns zone document larger than %d bytes", MaxZoneBody)
	}
	if err := json.Unmarshal(body, &z); err != nil {
		return ZoneData{}, fmt.Errorf("powerdns zone document: %w", err)
	}
	if z.Name == "" {
		return ZoneData{}, errors.New("powerdns zone document has no name")
	}
	for i, rr := range z.RRSets {
		if rr.Name == "" || rr.Type == "" {
			return ZoneData{}, fmt.Errorf("powerdns zone document: rrset %d has no name or type", i)
		}
	}
	return z, nil
}

func (c *Client) zoneURL(zone string) string {
	u := strings.TrimSuffix(c.BaseURL, "/") + "/api/v1/servers/" + url.PathEscape(c.ServerID) + "/zones"
	if zone != "" {
		u += "/" + url.PathEscape(zone)
	}
	return u
}

func (c *Client) do(ctx context.Context, op, method, u string, body any) ([]byte, int, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, 0, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, 0, fmt.Errorf("powerdns %s: %w", op, err)
	}
	req.Header.Set("X-API-Key", c.Key)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		// url.Error holds the URL (no key) and the cause.
		return nil, 0, fmt.Errorf("powerdns %s: %w", op, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxZoneBody+1))
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("powerdns %s: read answer: %w", op, err)
	}
	if resp.StatusCode/100 != 2 {
		return raw, resp.StatusCode, &APIError{Op: op, Status: resp.StatusCode, Msg: apiMessage(raw)}
	}
	return raw, resp.StatusCode, nil
}

// apiMessage extracts PowerDNS's {"error": "..."} text, at most 200 bytes.
func apiMessage(raw []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(raw))
	if json.Unmarshal(raw, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return strings.ToValidUTF8(msg, "?")
}

// Zone reads a zone with its rrsets; ErrNoZone when PowerDNS has none by
// that name.
func (c *Client) Zone(ctx context.Context, zone string) (ZoneData, error) {
	raw, status, err := c.do(ctx, "get zone "+zone, http.MethodGet, c.zoneURL(zone), nil)
	if err != nil {
		// 4.x answers 404 for an unknown zone (older versions 422 "Could
		// not find domain").
		if status == http.StatusNotFound || status == http.StatusUnprocessableEntity && strings.Contains(string(raw), "Could not find domain") {
			return ZoneData{}, ErrNoZone
		}
		return ZoneData{}, err
	}
	return DecodeZone(raw)
}

// CreateZone creates a Native zone with the given name servers, of the
// client's account (Client.Account); PowerDNS adds the SOA from its
// default-soa-content.
func (c *Client) CreateZone(ctx context.Context, zone string, nameservers []string) error {
	body := map[string]any{"name": zone, "kind": "Native", "nameservers": nameservers}
	if c.Account != "" {
		body["account"] = c.Account
	}
	_, _, err := c.do(ctx, "create zone "+zone, http.MethodPost, c.zoneURL(""), body)
	return err
}

// Own sets a zone's account to the client's (Client.Account): a zone
// mapped before zones carried it, or made by hand and then mapped.
func (c *Client) Own(ctx context.Context, zone string) error {
	_, _, err := c.do(ctx, "set account of zone "+zone, http.MethodPut, c.zoneURL(zone), map[string]any{"account": c.Account})
	return err
}

// OwnedZones lists the reverse zones (in-addr.arpa, ip6.arpa) of the
// client's account (Client.Account), by their names as PowerDNS gives them
// (absolute); none when the client has no account.
func (c *Client) OwnedZones(ctx context.Context) ([]string, error) {
	if c.Account == "" {
		return nil, nil
	}
	raw, _, err := c.do(ctx, "list zones", http.MethodGet, c.zoneURL(""), nil)
	if err != nil {
		return nil, err
	}
	var zs []struct {
		Name    string `json:"name"`
		Account string `json:"account"`
	}
	if len(raw) > MaxZoneBody {
		return nil, fmt.Errorf("powerdns zone list larger than %d bytes", MaxZoneBody)
	}
	if err := json.Unmarshal(raw, &zs); err != nil {
		return nil, fmt.Errorf("powerdns zone list: %w", err)
	}
	var out []string
	for _, z := range zs {
		name := strings.ToLower(z.Name)
		if z.Account == c.Account && (strings.HasSuffix(name, ".in-addr.arpa.") || strings.HasSuffix(name, ".ip6.arpa.")) {
			out = append(out, z.Name)
		}
	}
	return out, nil
}

// FlushCache drops PowerDNS's cached answers for a zone and the names under
// it. A query that raced the zone's creation may have left a REFUSED in the
// packet cache for cache-ttl (20 s by default).
func (c *Client) FlushCache(ctx context.Context, zone string) error {
	u := strings.TrimSuffix(c.BaseURL, "/") + "/api/v1/servers/" + url.PathEscape(c.ServerID) + "/cache/flush?domain=" + url.QueryEscape(zone)
	_, _, err := c.do(ctx, "flush cache "+zone, http.MethodPut, u, nil)
	return err
}

// Patch changes rrsets of a zone (REPLACE or DELETE each).
func (c *Client) Patch(ctx context.Context, zone string, rrsets []RRSet) error {
	_, _, err := c.do(ctx, "patch zone "+zone, http.MethodPatch, c.zoneURL(zone), map[string]any{"rrsets": rrsets})
	return err
}

// DeleteZone removes a zone; an absent one is not an error.
func (c *Client) DeleteZone(ctx context.Context, zone string) error {
	_, status, err := c.do(ctx, "delete zone "+zone, http.MethodDelete, c.zoneURL(zone), nil)
	if status == http.StatusNotFound {
		return nil
	}
	return err
}
