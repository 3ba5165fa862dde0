// Package domains holds what the coordinator does with a hosting account's
// custom domain before a certificate is ordered: the DNS records the customer
// must create, and their check against the domain's authoritative
// nameservers (never a cache: a record the customer just added is seen at
// once, and one they removed is not trusted for a TTL).
package domains

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// VerifyLabel is the label of the ownership TXT record: the customer puts the
// token at _hostplane-verify.<domain>.
const VerifyLabel = "_hostplane-verify"

// Record is one DNS record the customer must create.
type Record struct {
	Type  string `json:"type"` // TXT, A, AAAA or CNAME
	Name  string `json:"name"`
	Value string `json:"value"`
	// Alternative is set on records of which one is enough (A/AAAA to the
	// node, or a CNAME to the account's target).
	Alternative string `json:"alternative,omitempty"`
}

// Expect is what the domain's DNS must say.
type Expect struct {
	Domain string       // ASCII form, validated (validate.Domain)
	Token  string       // the TXT value at _hostplane-verify.<domain>
	IPv4   []netip.Addr // the hosting node's public addresses
	IPv6   []netip.Addr
	CNAME  string // the account's target host name ("" when none is offered)
}

// TXTName is the name of the ownership record.
func (e Expect) TXTName() string { return VerifyLabel + "." + e.Domain }

// Required lists the records to create, ownership first.
func Required(e Expect) []Record {
	out := []Record{{Type: "TXT", Name: e.TXTName(), Value: e.Token}}
	for _, a := range e.IPv4 {
		out = append(out, Record{Type: "A", Name: e.Domain, Value: a.String(), Alternative: "address"})
	}
	for _, a := range e.IPv6 {
		out = append(out, Record{Type: "AAAA", Name: e.Domain, Value: a.String(), Alternative: "address"})
	}
	if e.CNAME != "" {
		out = append(out, Record{Type: "CNAME", Name: e.Domain, Value: e.CNAME, Alternative: "cname"})
	}
	return out
}

// Problem is one record that is missing or wrong.
type Problem struct {
	Type   string   `json:"type"`
	Name   string   `json:"name"`
	Want   string   `json:"want"`
	Found  []string `json:"found,omitempty"`
	Reason string   `json:"reason"`
}

func (p Problem) String() string { return p.Reason }

// Result is the outcome of one check.
type Result struct {
	Nameservers []string  `json:"nameservers"`
	Problems    []Problem `json:"problems,omitempty"`
	// TXT is every value the authoritative servers that answered hold at
	// the ownership name (another hosting account's token among them means
	// that account's proof still holds).
	TXT []string `json:"-"`
	// TXTSilent names the nameservers none of whose addresses answered for
	// the ownership name: what they hold there is unknown, so TXT does not
	// show that a token is gone.
	TXTSilent []string `json:"-"`
}

// OK tells whether every record is in place.
func (r Result) OK() bool { return len(r.Problems) == 0 }

// Message is one sentence per problem, for the API's error message.
func (r Result) Message() string {
	if r.OK() {
		return "the DNS records are in place"
	}
	parts := make([]string, len(r.Problems))
	for i, p := range r.Problems {
		parts[i] = p.Reason
	}
	return strings.Join(parts, "; ")
}

// Resolver checks records at the authoritative nameservers. It finds them
// through a recursive resolver (Addr), then asks each directly, without
// recursion.
type Resolver struct {
	// Addr is the recursive resolver ("127.0.0.1:53") used to find the
	// zone's nameservers and their addresses.
	Addr string
	// NSPort is the port the authoritative servers are asked on ("53" when
	// empty; tests run theirs elsewhere).
	NSPort string
	// Timeout bounds each query (2 s when zero).
	Timeout time.Duration
}

// ErrNoNameserver means no authoritative server of the domain could be found
// or none answered: the check says nothing about the records.
var ErrNoNameserver = errors.New("no authoritative nameserver answered")

func (r *Resolver) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return 2 * time.Second
}

func (r *Resolver) exchange(ctx context.Context, server, name string, qtype uint16, recurse bool) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = recurse
	m.SetEdns0(1232, false)
	c := &dns.Client{Timeout: r.timeout()}
	in, _, err := c.ExchangeContext(ctx, m, server)
	if err == nil && in.Truncated {
		c.Net = "tcp"
		in, _, err = c.ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return nil, err
	}
	return in, nil
}

// zone finds the apex of the zone that holds name: the name itself when
// its SOA is in the answer, else the owner of the SOA in the authority
// section. A name with a CNAME cannot be an apex, and a resolver that
// follows the CNAME reports the target's zone, so then the parent is asked.
func (r *Resolver) zone(ctx context.Context, name string) (string, error) {
	fq := dns.Fqdn(name)
	for q := fq; q != "."; {
		in, err := r.exchange(ctx, r.Addr, q, dns.TypeSOA, true)
		if err != nil {
			return "", fmt.Errorf("resolver %s: %w", r.Addr, err)
		}
		aliased := false
		for _, rr := range in.Answer {
			switch rr := rr.(type) {
			case *dns.SOA:
				if strings.EqualFold(rr.Hdr.Name, q) {
					return rr.Hdr.Name, nil
				}
			case *dns.CNAME:
				aliased = aliased || strings.EqualFold(rr.Hdr.Name, q)
			}
		}
		if !aliased {
			for _, rr := range in.Ns {
				if soa, ok := rr.(*dns.SOA); ok && dns.IsSubDomain(soa.Hdr.Name, q) {
					return soa.Hdr.Name, nil
				}
			}
			return "", fmt.Errorf("%w: the resolver knows no zone for %s (%s)", ErrNoNameserver, name, dns.RcodeToString[in.Rcode])
		}
		_, q, _ = strings.Cut(q, ".")
		if q == "" {
			q = "."
		}
	}
	return "", fmt.Errorf("%w: the resolver knows no zone for %s", ErrNoNameserver, name)
}

// server is one address (host:port) of a nameserver of the zone; "" when
// the name has none.
type server struct{ name, addr string }

// nameservers returns the zone's nameservers' names and each of their
// addresses.
func (r *Resolver) nameservers(ctx context.Context, zone string) ([]string, []server, error) {
	in, err := r.exchange(ctx, r.Addr, zone, dns.TypeNS, true)
	if err != nil {
		return nil, nil, fmt.Errorf("resolver %s: %w", r.Addr, err)
	}
	port := r.NSPort
	if port == "" {
		port = "53"
	}
	var names []string
	var servers []server
	addressed := false
	for _, rr := range in.Answer {
		ns, ok := rr.(*dns.NS)
		if !ok {
			continue
		}
		name := strings.TrimSuffix(ns.Ns, ".")
		names = append(names, name)
		var addrs []string
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
			ain, err := r.exchange(ctx, r.Addr, ns.Ns, qt, true)
			if err != nil {
				continue
			}
			for _, a := range ain.Answer {
				switch a := a.(type) {
				case *dns.A:
					addrs = append(addrs, net.JoinHostPort(a.A.String(), port))
				case *dns.AAAA:
					addrs = append(addrs, net.JoinHostPort(a.AAAA.String(), port))
				}
			}
		}
		if len(addrs) == 0 {
			servers = append(servers, server{name: name})
		}
		for _, a := range slices.Compact(addrs) {
			servers, addressed = append(servers, server{name: name, addr: a}), true
		}
	}
	sort.Strings(names)
	if !addressed {
		return names, nil, fmt.Errorf("%w: no address for the nameservers of %s", ErrNoNameserver, strings.TrimSuffix(zone, "."))
	}
	return names, servers, nil
}

// answers asks each authoritative server (each address once) and merges
// what they hold for (name, qtype); a server that does not answer
// authoritatively is skipped. silent names the nameservers none of whose
// addresses answered.
func (r *Resolver) answers(ctx context.Context, servers []server, name string, qtype uint16) (out []dns.RR, silent []string, err error) {
	asked := map[string]bool{} // address → it answered
	spoke := map[string]bool{} // nameserver → one of its addresses answered
	var lastErr error
	for _, s := range servers {
		ok, seen := asked[s.addr]
		if !seen && s.addr == "" {
			lastErr = fmt.Errorf("no address for %s", s.name)
		} else if !seen {
			var in *dns.Msg
			switch in, err = r.exchange(ctx, s.addr, name, qtype, false); {
			case err != nil:
				lastErr = err
			case !in.Authoritative || (in.Rcode != dns.RcodeSuccess && in.Rcode != dns.RcodeNameError):
				lastErr = fmt.Errorf("%s answered %s without authority", s.addr, dns.RcodeToString[in.Rcode])
			default:
				ok = true
				for _, rr := range in.Answer {
					if rr.Header().Rrtype == qtype && strings.EqualFold(rr.Header().Name, dns.Fqdn(name)) {
						out = append(out, rr)
					}
				}
			}
			asked[s.addr] = ok
		}
		spoke[s.name] = spoke[s.name] || ok
	}
	for ns, ok := range spoke {
		if !ok {
			silent = append(silent, ns)
		}
	}
	if len(silent) == len(spoke) {
		return nil, nil, fmt.Errorf("%w for %s: %v", ErrNoNameserver, name, lastErr)
	}
	sort.Strings(silent)
	return out, silent, nil
}

// Verify checks the ownership TXT and the address (A/AAAA or CNAME) of
// e.Domain at its authoritative nameservers. The error is set only when
// nothing could be asked; wrong or missing records are Problems.
func (r *Resolver) Verify(ctx context.Context, e Expect) (Result, error) {
	var res Result
	zone, err := r.zone(ctx, e.Domain)
	if err != nil {
		return res, err
	}
	names, servers, err := r.nameservers(ctx, zone)
	res.Nameservers = names
	if err != nil {
		return res, err
	}

	found, silent, err := r.txt(ctx, servers, e.TXTName())
	if err != nil {
		return res, err
	}
	res.TXT, res.TXTSilent = found, silent
	ok := slices.Contains(found, e.Token)
	switch {
	case ok:
	case len(found) == 0:
		res.Problems = append(res.Problems, Problem{Type: "TXT", Name: e.TXTName(), Want: e.Token,
			Reason: fmt.Sprintf("TXT record %s is missing: create it with the value %s", e.TXTName(), e.Token)})
	default:
		res.Problems = append(res.Problems, Problem{Type: "TXT", Name: e.TXTName(), Want: e.Token, Found: found,
			Reason: fmt.Sprintf("TXT record %s is %s, not %s", e.TXTName(), quoteList(found), e.Token)})
	}

	cn, _, err := r.answers(ctx, servers, e.Domain, dns.TypeCNAME)
	if err != nil {
		return res, err
	}
	if len(cn) > 0 {
		target := strings.TrimSuffix(strings.ToLower(cn[0].(*dns.CNAME).Target), ".")
		if e.CNAME == "" || target != strings.ToLower(e.CNAME) {
			want := e.CNAME
			if want == "" {
				want = "an A/AAAA record to the node"
			}
			res.Problems = append(res.Problems, Problem{Type: "CNAME", Name: e.Domain, Want: want, Found: []string{target},
				Reason: fmt.Sprintf("CNAME %s points to %s, not %s", e.Domain, target, want)})
		}
		return res, nil
	}
	res.Problems = append(res.Problems, r.checkAddrs(ctx, servers, e)...)
	return res, nil
}

func (r *Resolver) txt(ctx context.Context, servers []server, name string) (found, silent []string, err error) {
	rrs, silent, err := r.answers(ctx, servers, name, dns.TypeTXT)
	if err != nil {
		return nil, nil, err
	}
	for _, rr := range rrs {
		found = append(found, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return found, silent, nil
}

// OwnershipTXT is every value of domain's ownership TXT record
// (_hostplane-verify.<domain>) at its authoritative nameservers that
// answered, and silent the ones none of whose addresses did (what they hold
// is unknown: the values show a token gone only when silent is empty); the
// error is set when none could be asked.
func (r *Resolver) OwnershipTXT(ctx context.Context, domain string) (txt, silent []string, err error) {
	zone, err := r.zone(ctx, domain)
	if err != nil {
		return nil, nil, err
	}
	_, servers, err := r.nameservers(ctx, zone)
	if err != nil {
		return nil, nil, err
	}
	return r.txt(ctx, servers, Expect{Domain: domain}.TXTName())
}

// Addresses resolves name's A and AAAA records through the recursive
// resolver (the addresses of a hosting account's own domain: its node's).
func (r *Resolver) Addresses(ctx context.Context, name string) (v4, v6 []netip.Addr) {
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		in, err := r.exchange(ctx, r.Addr, name, qt, true)
		if err != nil {
			continue
		}
		for _, rr := range in.Answer {
			switch rr := rr.(type) {
			case *dns.A:
				if a, ok := netip.AddrFromSlice(rr.A.To4()); ok {
					v4 = append(v4, a)
				}
			case *dns.AAAA:
				if a, ok := netip.AddrFromSlice(rr.AAAA); ok {
					v6 = append(v6, a)
				}
			}
		}
	}
	return v4, v6
}

// checkAddrs: at least one A or AAAA, and every one of them the node's (an
// address elsewhere would send the ACME validation and visitors there).
func (r *Resolver) checkAddrs(ctx context.Context, servers []server, e Expect) []Problem {
	var probs []Problem
	have := 0
	for _, f := range []struct {
		typ   string
		qtype uint16
		want  []netip.Addr
	}{{"A", dns.TypeA, e.IPv4}, {"AAAA", dns.TypeAAAA, e.IPv6}} {
		rrs, _, err := r.answers(ctx, servers, e.Domain, f.qtype)
		if err != nil {
			probs = append(probs, Problem{Type: f.typ, Name: e.Domain, Reason: err.Error()})
			continue
		}
		var wrong, found []string
		for _, rr := range rrs {
			var a netip.Addr
			switch rr := rr.(type) {
			case *dns.A:
				a, _ = netip.AddrFromSlice(rr.A.To4())
			case *dns.AAAA:
				a, _ = netip.AddrFromSlice(rr.AAAA)
			}
			found = append(found, a.String())
			if !slices.Contains(f.want, a) {
				wrong = append(wrong, a.String())
			}
		}
		have += len(found)
		if len(wrong) > 0 {
			want := addrList(f.want)
			if want == "" {
				want = "none (the node has no " + f.typ + " address: remove it)"
			}
			probs = append(probs, Problem{Type: f.typ, Name: e.Domain, Want: want, Found: found,
				Reason: fmt.Sprintf("%s record %s points to %s, not %s", f.typ, e.Domain, strings.Join(wrong, ", "), want)})
		}
	}
	if have == 0 {
		addrs := addrList(append(slices.Clone(e.IPv4), e.IPv6...))
		var reason, want string
		switch {
		case addrs != "" && e.CNAME != "":
			want = addrs + ", or a CNAME to " + e.CNAME
			reason = fmt.Sprintf("no A/AAAA record for %s: point it to %s", e.Domain, want)
		case addrs != "":
			want = addrs
			reason = fmt.Sprintf("no A/AAAA record for %s: point it to %s", e.Domain, want)
		default:
			want = "a CNAME to " + e.CNAME
			reason = fmt.Sprintf("no CNAME record for %s: create one to %s", e.Domain, e.CNAME)
		}
		probs = append(probs, Problem{Type: "A", Name: e.Domain, Want: want, Reason: reason})
	}
	return probs
}

func addrList(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

func quoteList(v []string) string {
	q := make([]string, len(v))
	for i, s := range v {
		if len(s) > 80 {
			s = s[:80] + "…"
		}
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}
