package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// MaxURLLength bounds a subscription URL.
const MaxURLLength = 2048

// ErrForbiddenURL is wrapped by every refusal of the SSRF guard; its message
// says why and is safe to show to the customer.
var ErrForbiddenURL = errors.New("webhook url refused")

// Resolver resolves host names; *net.Resolver implements it.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// Guard keeps webhook traffic off the provider's own network: https only, and
// no loopback, private (RFC 1918, CGNAT, ULA), link-local, metadata or other
// special-purpose address, checked after DNS resolution and again on the socket
// that is actually connected. Redirects are never followed.
type Guard struct {
	// AllowHTTP permits http:// URLs (development only).
	AllowHTTP bool
	// AllowPrivate permits loopback, private and link-local addresses (development
	// only). Cloud metadata addresses stay refused.
	AllowPrivate bool
	// Resolver defaults to net.DefaultResolver.
	Resolver Resolver
}

type prefixRule struct {
	p       netip.Prefix
	why     string
	private bool // allowed by AllowPrivate
}

var rules = func() []prefixRule {
	mk := func(s, why string, private bool) prefixRule {
		return prefixRule{p: netip.MustParsePrefix(s), why: why, private: private}
	}
	return []prefixRule{
		// Metadata endpoints first: never allowed, even in development.
		mk("169.254.169.254/32", "a cloud metadata address", false),
		mk("169.254.170.2/32", "a cloud metadata address", false),
		mk("100.100.100.200/32", "a cloud metadata address", false),
		mk("fd00:ec2::254/128", "a cloud metadata address", false),
		mk("0.0.0.0/8", "an unspecified (\"this network\") address", false),
		mk("127.0.0.0/8", "a loopback address", true),
		mk("10.0.0.0/8", "a private address (RFC 1918)", true),
		mk("172.16.0.0/12", "a private address (RFC 1918)", true),
		mk("192.168.0.0/16", "a private address (RFC 1918)", true),
		mk("100.64.0.0/10", "a carrier-grade NAT address (RFC 6598)", true),
		mk("169.254.0.0/16", "a link-local address", true),
		mk("192.0.0.0/24", "an IETF protocol assignment address", false),
		mk("192.0.2.0/24", "a documentation address", false),
		mk("198.18.0.0/15", "a benchmarking address", false),
		mk("198.51.100.0/24", "a documentation address", false),
		mk("203.0.113.0/24", "a documentation address", false),
		mk("224.0.0.0/4", "a multicast address", false),
		mk("240.0.0.0/4", "a reserved address", false),
		mk("::/128", "an unspecified address", false),
		mk("::1/128", "a loopback address", true),
		mk("fc00::/7", "a unique local (private) IPv6 address", true),
		mk("fe80::/10", "a link-local address", true),
		mk("fec0::/10", "a site-local (private) IPv6 address (deprecated, RFC 3879)", true),
		mk("64:ff9b:1::/48", "a local-use NAT64 address (RFC 8215)", true),
		mk("2001::/32", "a Teredo tunnel address (it embeds an IPv4 address)", false),
		mk("ff00::/8", "a multicast address", false),
		mk("2001:db8::/32", "a documentation address", false),
		mk("100::/64", "a discard-only address", false),
	}
}()

// CheckIP reports why ip may not be contacted, or nil.
func (g *Guard) CheckIP(ip netip.Addr) error {
	ip = ip.Unmap()
	if ip.Zone() != "" {
		ip = ip.WithZone("")
	}
	// Addresses that embed an IPv4 address are judged by it.
	if ip.Is6() {
		b := ip.As16()
		switch {
		case netip.MustParsePrefix("64:ff9b::/96").Contains(ip): // NAT64
			if err := g.CheckIP(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})); err != nil {
				return err
			}
		case netip.MustParsePrefix("2002::/16").Contains(ip): // 6to4
			if err := g.CheckIP(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})); err != nil {
				return err
			}
		case netip.MustParsePrefix("::/96").Contains(ip) && ip != netip.IPv6Unspecified() && ip != netip.IPv6Loopback(): // IPv4-compatible
			return fmt.Errorf("%w: %s is a deprecated IPv4-compatible address", ErrForbiddenURL, ip)
		}
	}
	for _, r := range rules {
		if r.p.Contains(ip) {
			if r.private && g.AllowPrivate {
				return nil
			}
			return fmt.Errorf("%w: %s is %s", ErrForbiddenURL, ip, r.why)
		}
	}
	return nil
}

// ParseURL checks a subscription URL's syntax and scheme and, when its host is
// an IP literal, the address. It does no DNS.
func (g *Guard) ParseURL(raw string) (*url.URL, error) {
	if len(raw) > MaxURLLength {
		return nil, fmt.Errorf("%w: longer than %d characters", ErrForbiddenURL, MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: not a valid URL", ErrForbiddenURL)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !g.AllowHTTP {
			return nil, fmt.Errorf("%w: it must use https", ErrForbiddenURL)
		}
	default:
		return nil, fmt.Errorf("%w: it must be an absolute https URL", ErrForbiddenURL)
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("%w: it has no host", ErrForbiddenURL)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: credentials in the URL are not allowed", ErrForbiddenURL)
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("%w: a fragment (#…) is not allowed", ErrForbiddenURL)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%w: invalid port", ErrForbiddenURL)
		}
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if err := g.CheckIP(ip); err != nil {
			return nil, err
		}
	} else {
		if strings.ContainsAny(host, " %\\") || strings.HasSuffix(strings.ToLower(host), ".localhost") || strings.EqualFold(host, "localhost") {
			if !(g.AllowPrivate && strings.EqualFold(host, "localhost")) {
				return nil, fmt.Errorf("%w: host %q is not allowed", ErrForbiddenURL, host)
			}
		}
		if !strings.Contains(host, ".") && !g.AllowPrivate {
			return nil, fmt.Errorf("%w: host %q is not a fully qualified domain name", ErrForbiddenURL, host)
		}
	}
	return u, nil
}

// CheckURL is ParseURL plus resolving the host: a name with any forbidden
// address is refused. The dialer checks again at every connection, since DNS
// answers change.
func (g *Guard) CheckURL(ctx context.Context, raw string) (*url.URL, error) {
	u, err := g.ParseURL(raw)
	if err != nil {
		return nil, err
	}
	if _, err := g.resolve(ctx, u.Hostname()); err != nil {
		return nil, err
	}
	return u, nil
}

func (g *Guard) resolver() Resolver {
	if g.Resolver != nil {
		return g.Resolver
	}
	return net.DefaultResolver
}

// resolve returns the addresses of host, all of which pass CheckIP.
func (g *Guard) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		if err := g.CheckIP(ip); err != nil {
			return nil, err
		}
		return []netip.Addr{ip.Unmap()}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := g.resolver().LookupIPAddr(ctx, host)
	if err != nil || len(addrs) == 0 {
		return nil, fmt.Errorf("%w: host %q does not resolve", ErrForbiddenURL, host)
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		if err := g.CheckIP(ip); err != nil {
			return nil, fmt.Errorf("%w (host %q resolves to it)", err, host)
		}
		out = append(out, ip.Unmap())
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: host %q does not resolve", ErrForbiddenURL, host)
	}
	return out, nil
}

// DialContext resolves addr's host, refuses forbidden addresses and connects to
// a checked IP (never re-resolving), re-checking the socket's address.
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ips, err := g.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: 10 * time.Second, Control: g.control}
	var firstErr error
	for _, ip := range ips {
		c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// control runs just before connect(2) with the literal address.
func (g *Guard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot check address %q", ErrForbiddenURL, address)
	}
	return g.CheckIP(ap.Addr())
}

// Client returns an HTTP client that dials through the guard, uses no proxy,
// never follows redirects and gives up after timeout. rootCAs may be nil (the
// system pool).
func (g *Guard) Client(timeout time.Duration, tlsCfg *tls.Config, maxConnsPerHost int) *http.Client {
	if maxConnsPerHost <= 0 {
		maxConnsPerHost = 64
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           g.DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          4 * maxConnsPerHost,
		MaxIdleConnsPerHost:   maxConnsPerHost,
		IdleConnTimeout:       60 * time.Second,
		DisableCompression:    true,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
