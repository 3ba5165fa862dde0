// Package auth mints API keys and checks presented ones: keys are high-entropy
// random strings, so the store keeps only their SHA-256 and a short display prefix.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"net/http"
	"net/netip"
	"strings"
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// keyRandomChars is 43 base62 characters: at least 256 bits of entropy.
const keyRandomChars = 43

// NewKey returns a fresh key, its hash and the prefix shown in listings.
func NewKey(prefix string) (plain, hash, display string) {
	var sb strings.Builder
	sb.WriteString(prefix)
	max := big.NewInt(int64(len(base62)))
	for i := 0; i < keyRandomChars; i++ {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic("auth: crypto/rand failed: " + err.Error())
		}
		sb.WriteByte(base62[n.Int64()])
	}
	plain = sb.String()
	return plain, Hash(plain), plain[:len(prefix)+8]
}

// Hash is the stored form of a key.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// FromRequest extracts a presented key from Authorization: Bearer or X-API-Key
// (the first, when a request presents several: see Presented).
func FromRequest(r *http.Request) string {
	key, _ := Presented(r)
	return key
}

// Presented returns the key (or token) r presents: an Authorization header's
// Bearer credential (the scheme in any case, RFC 7235 §2.1) before an
// X-API-Key header's value. conflicting is true when r presents a key and
// anything else as a credential: another key (Bearer and X-API-Key, or
// either header twice), or an Authorization line of another scheme (Basic,
// Token, a Bearer without a token). RFC 6750 §2 lets a client send its token
// one way only, and a proxy or a log in front may take the other credential
// for the caller's while the coordinator serves the key's account (probe62:
// Bearer A beside a Basic line holding B's key was served as A). A blank
// Authorization line is no credential; another scheme alone presents no key
// (the 401).
func Presented(r *http.Request) (key string, conflicting bool) {
	var keys []string
	other := false
	for _, h := range r.Header.Values("Authorization") {
		if len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
			if tok := strings.TrimSpace(h[7:]); tok != "" {
				keys = append(keys, tok)
				continue
			}
		}
		other = other || strings.TrimSpace(h) != ""
	}
	for _, h := range r.Header.Values("X-API-Key") {
		if tok := strings.TrimSpace(h); tok != "" {
			keys = append(keys, tok)
		}
	}
	if len(keys) == 0 {
		return "", false
	}
	if other {
		return keys[0], true
	}
	for _, k := range keys[1:] {
		if k != keys[0] {
			return keys[0], true
		}
	}
	return keys[0], false
}

// WellFormed reports whether s could be a key of this prefix (cheap pre-check that
// keeps junk out of lookups and logs).
func WellFormed(prefix, s string) bool {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok || len(rest) < 32 || len(rest) > 128 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if !strings.ContainsRune(base62, rune(rest[i])) {
			return false
		}
	}
	return true
}

// HasScope reports whether scopes contains want.
func HasScope(scopes []string, want string) bool {
	for _, s := range scopes {
		if s == want {
			return true
		}
	}
	return false
}

// ParseCIDRs parses an allowlist; a bare address is a single-host prefix.
func ParseCIDRs(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, err
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// CheckCIDR is the rule for an allow-list entry a key is minted with, stricter
// than ParseCIDRs (which reads stored lists, and masks): an address or a
// prefix in its canonical form's family, without white space, an IPv6 zone,
// an IPv4 address written as IPv6 (::ffff:10.0.0.1 never matches: clients'
// addresses are compared unmapped) or bits set right of the prefix length
// (10.0.0.1/8 reads as one host and allows 16 million).
func CheckCIDR(s string) error {
	if strings.TrimSpace(s) != s || s == "" {
		return fmt.Errorf("%q: an address or CIDR without spaces", s)
	}
	addrPart, _, hasBits := strings.Cut(s, "/")
	a, err := netip.ParseAddr(addrPart)
	if err != nil {
		return fmt.Errorf("%q is not an IP address or CIDR", s)
	}
	switch {
	case a.Zone() != "":
		return fmt.Errorf("%q: an IPv6 zone has no meaning in an allow-list", s)
	case a.Is4In6():
		return mappedCIDR(s, a, hasBits)
	}
	if !hasBits {
		return nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return fmt.Errorf("%q is not a CIDR: %v", s, err)
	}
	if m := p.Masked(); m != p {
		return fmt.Errorf("%q has bits set right of /%d: did you mean %s (or %s/%d for the one address)?", s, p.Bits(), m, a, a.BitLen())
	}
	return nil
}

// mappedCIDR refuses s, an address or prefix written as IPv4-mapped IPv6
// (a), saying what to write instead: the IPv4 address, or the IPv4 prefix of
// a prefix's last 32 bits (::ffff:10.0.0.0/104 is 10.0.0.0/8); a prefix
// shorter than /96 holds more than IPv4-mapped addresses and has no IPv4
// form.
func mappedCIDR(s string, a netip.Addr, hasBits bool) error {
	instead := a.Unmap().String()
	if hasBits {
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Bits() < 96 {
			return fmt.Errorf("%q: write IPv4 addresses as IPv4 (such as 10.0.0.0/8), not as IPv6", s)
		}
		instead = netip.PrefixFrom(a.Unmap(), p.Bits()-96).String()
	}
	return fmt.Errorf("%q: write an IPv4 address as IPv4 (%s)", s, instead)
}

// IPAllowed reports whether ip is in the allowlist (an empty list allows all).
func IPAllowed(list []string, ip string) bool {
	if len(list) == 0 {
		return true
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	prefixes, err := ParseCIDRs(list)
	if err != nil {
		return false
	}
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
