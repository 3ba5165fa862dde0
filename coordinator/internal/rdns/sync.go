package rdns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/hostplane/hostplane/pkg/validate"
)

// Desired is what PowerDNS should serve for one mapped zone: the PTR target
// (a host name without trailing dot) of each address in the zone that has one.
type Desired struct {
	Zone Zone
	PTRs map[netip.Addr]string
}

// Options are the reconciler's settings.
type Options struct {
	// Nameservers are the NS records of a zone the reconciler creates
	// (absolute names, e.g. ns1.example.com.).
	Nameservers []string
	// TTL of the PTR rrsets.
	TTL int
	// MaxPatch bounds the rrsets of one PATCH request (default 1000).
	MaxPatch int
}

// Stats counts what one Sync changed.
type Stats struct {
	Created          bool
	Replaced, Delete int
}

// ValidTarget checks a PTR target before it goes to PowerDNS: the host-name
// rule the API applies, at least two labels, the last not all digits (a host
// name never is, RFC 1123 2.1 and RFC 3696 2: "192.0.2.1" or "mail.123" as a
// PTR would read as an address in every log that shows the name).
func ValidTarget(h string) error {
	if err := validate.Hostname(h); err != nil {
		return err
	}
	if !strings.Contains(h, ".") {
		return errors.New("not a fully qualified name")
	}
	if strings.Trim(h[strings.LastIndexByte(h, '.')+1:], "0123456789") == "" {
		return errors.New("the last label is all digits")
	}
	return nil
}

// Sync makes PowerDNS serve exactly the desired PTR rrsets of the zone: it
// creates the zone (SOA from PowerDNS's default-soa-content, NS from
// opt.Nameservers) when missing, replaces the PTR rrsets that differ and
// deletes the PTR rrsets nobody wants any more. Records of other types are
// left alone. A mapped zone is hostplane's: a PTR put there by hand is
// removed, and the zone is given the client's account (Client.Account) when
// the client has one. Addresses outside the zone and invalid targets are
// skipped (they cannot reach the state through the API; this is the last
// guard).
func (c *Client) Sync(ctx context.Context, d Desired, opt Options) (Stats, error) {
	var st Stats
	if _, err := ParseZone(d.Zone.Name); err != nil { // nothing unvalidated reaches PowerDNS
		return st, err
	}
	for _, ns := range opt.Nameservers {
		if err := ValidTarget(strings.TrimSuffix(ns, ".")); err != nil {
			return st, fmt.Errorf("name server %q: %w", ns, err)
		}
	}
	ttl := opt.TTL
	if ttl <= 0 {
		ttl = 3600
	}
	want := map[string]string{} // reverse FQDN → target FQDN
	for ip, host := range d.PTRs {
		if !d.Zone.Prefix.Contains(ip.Unmap()) || ValidTarget(host) != nil {
			continue
		}
		want[PTRName(ip)] = host + "."
	}
	fqdn := d.Zone.FQDN()
	cur, err := c.Zone(ctx, fqdn)
	if errors.Is(err, ErrNoZone) {
		if err := c.CreateZone(ctx, fqdn, absolute(opt.Nameservers)); err != nil {
			return st, err
		}
		st.Created = true
		cur = ZoneData{Name: fqdn}
	} else if err != nil {
		return st, err
	} else if c.Account != "" && cur.Account != c.Account {
		if err := c.Own(ctx, fqdn); err != nil {
			return st, err
		}
	}
	var changes []RRSet
	have := map[string]bool{}
	for _, rr := range cur.RRSets {
		if rr.Type != "PTR" {
			continue
		}
		name := strings.ToLower(rr.Name)
		have[name] = true
		target, ok := want[name]
		switch {
		case !ok:
			changes = append(changes, RRSet{Name: rr.Name, Type: "PTR", ChangeType: "DELETE", Records: []Record{}})
			st.Delete++
		case rr.TTL != ttl || len(rr.Records) != 1 || rr.Records[0].Disabled || !strings.EqualFold(rr.Records[0].Content, target):
			changes = append(changes, replace(name, target, ttl))
			st.Replaced++
		}
	}
	names := make([]string, 0, len(want))
	for name := range want {
		if !have[name] {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		changes = append(changes, replace(name, want[name], ttl))
		st.Replaced++
	}
	max := opt.MaxPatch
	if max <= 0 {
		max = 1000
	}
	for len(changes) > 0 {
		n := min(max, len(changes))
		if err := c.Patch(ctx, fqdn, changes[:n]); err != nil {
			return st, err
		}
		changes = changes[n:]
	}
	if st.Created {
		return st, c.FlushCache(ctx, fqdn)
	}
	return st, nil
}

func replace(name, target string, ttl int) RRSet {
	return RRSet{Name: name, Type: "PTR", TTL: ttl, ChangeType: "REPLACE", Records: []Record{{Content: target}}}
}

func absolute(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.TrimSuffix(n, ".") + "."
	}
	return out
}
