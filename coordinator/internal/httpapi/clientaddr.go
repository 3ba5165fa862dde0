package httpapi

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// The client address behind a reverse proxy (--trusted-proxies).
//
// A request whose TCP peer is inside one of Config.TrustedProxies came
// through the provider's own load balancer: its client is read from
// X-Forwarded-For, walking from the right (the hop the nearest proxy
// appended) and passing over addresses that are themselves trusted proxies;
// the first untrusted one is the client. Everything to its left was written
// by that client or by proxies it chose, and is never believed. Several
// X-Forwarded-For headers are one list, in order. When every hop is a
// trusted proxy, the leftmost one is the client (a request from the
// provider's own network); when the header is absent, empty or holds a hop
// that is not an address, the peer is. A peer outside the list: the header
// is not read at all.
//
// Only X-Forwarded-For is read. RFC 7239's Forwarded is ignored, on a
// trusted peer too, so that a request can never choose which of the two is
// believed: the proxy must set X-Forwarded-For (nginx
// $proxy_add_x_forwarded_for, HAProxy option forwardfor; cloud load
// balancers do by default). X-Real-Ip is not read either: nginx sets it only
// when configured to and otherwise, as HAProxy and cloud load balancers do,
// passes the client's own through, so believing it from a trusted peer would
// let a client choose its address; and it has no chain to walk past a load
// balancer in front of nginx.

const headerXFF = "X-Forwarded-For"

// maxXFFHops bounds the hops read from X-Forwarded-For: a chain of trusted
// proxies longer than this is not believed (the peer is the client).
const maxXFFHops = 64

// clientIP is the request's client address: the one a follower vouches for
// (another coordinator's header, with the cluster's credentials), else the
// TCP peer's, else, when the peer is a trusted proxy, X-Forwarded-For's
// rightmost untrusted hop.
func (a *API) clientIP(r *http.Request) string {
	if ip := r.Header.Get(headerClientIP); ip != "" && a.clusterTokenOK(r) {
		return ip
	}
	host, peer, ok := tcpPeer(r)
	if len(a.cfg.TrustedProxies) == 0 || !ok || !trustedAddr(peer, a.cfg.TrustedProxies) {
		return host
	}
	if c, ok := forwardedClient(r.Header[headerXFF], a.cfg.TrustedProxies); ok {
		return c.String()
	}
	return host
}

// tcpPeer is r's TCP peer: host as RemoteAddr names it (RemoteAddr whole
// when it has no port), and its address unmapped and without a zone; ok is
// false when host is not an IP address (an in-process caller).
func tcpPeer(r *http.Request) (host string, peer netip.Addr, ok bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err = netip.ParseAddr(host)
	if err != nil {
		return host, netip.Addr{}, false
	}
	return host, peer.Unmap().WithZone(""), true
}

func trustedAddr(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedClient walks the X-Forwarded-For values (the header's lines, in
// order) from the right and gives the first hop outside trusted, or the
// leftmost hop when all are inside; ok is false when there is no hop, a hop
// is not an address, or there are more than maxXFFHops trusted ones before
// the answer. Empty list elements ("a,,b") are skipped, as HTTP lists allow.
func forwardedClient(values []string, trusted []netip.Prefix) (client netip.Addr, ok bool) {
	hops := 0
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for {
			j := strings.LastIndexByte(v, ',')
			elem := strings.Trim(v[j+1:], " \t")
			if elem != "" {
				a, good := parseHop(elem)
				if !good {
					return netip.Addr{}, false
				}
				if hops++; hops > maxXFFHops {
					return netip.Addr{}, false
				}
				if !trustedAddr(a, trusted) {
					return a, true
				}
				client, ok = a, true
			}
			if j < 0 {
				break
			}
			v = v[:j]
		}
	}
	return client, ok
}

// parseHop reads one X-Forwarded-For element: an IPv4 or IPv6 address,
// with a port ("192.0.2.1:4711", "[2001:db8::1]:4711") or in brackets
// ("[2001:db8::1]"), as some proxies write them. An IPv4-mapped IPv6
// address is its IPv4 address; a zone is dropped.
func parseHop(s string) (netip.Addr, bool) {
	if len(s) > 128 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		switch {
		case perr == nil:
			a = ap.Addr()
		case len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']':
			if a, err = netip.ParseAddr(s[1 : len(s)-1]); err != nil || !a.Is6() {
				return netip.Addr{}, false
			}
		default:
			return netip.Addr{}, false
		}
	}
	return a.Unmap().WithZone(""), true
}

// ParseTrustedProxies reads --trusted-proxies: comma-separated CIDRs (or
// single addresses, a /32 or /128), each masked to its network.
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil || a.Zone() != "" {
				return nil, badProxy(s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Zone() != "" {
			return nil, badProxy(s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func badProxy(s string) error {
	return fmt.Errorf("trusted-proxies: %q is not a CIDR (192.0.2.0/24, 2001:db8::/32) or an address", s)
}
