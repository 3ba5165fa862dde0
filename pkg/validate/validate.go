// Package validate holds the input rules the coordinator and the agent share:
// the coordinator applies them at the API edge (a 400 naming the field), the
// agent again before it touches libvirt, the storage pool or the journal. A
// rule written here is the only copy of it in the tree.
package validate

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"unicode/utf8"
)

// ErrInvalid marks every validation failure; callers map it to a 4xx.
var ErrInvalid = errors.New("invalid input")

// Invalid is a validation failure saying what is wrong: it wraps ErrInvalid
// ("invalid input: " + the formatted text).
func Invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Name checks a VM or snapshot name (templates: TemplateName): 1–63 characters of [a-z0-9-],
// starting with a letter or digit. Such names are safe in libvirt XML, file
// names and volume names.
func Name(kind, s string) error {
	if s == "" {
		return Invalid("%s name is empty", kind)
	}
	if !nameRE.MatchString(s) {
		return Invalid("%s name %q must be 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit", kind, truncate(s))
	}
	return nil
}

// MaxTemplateName and MaxNodeID are the longest template name and node id.
const (
	MaxTemplateName = 63
	MaxNodeID       = 63
)

// isID is the rule of template names and node ids: 1-63 characters of a-z,
// 0-9, '.', '_' and '-', starting with a letter or digit (the regular
// expression ^[a-z0-9][a-z0-9._-]{0,62}$, written out: a server order checks
// its template and host name, and the regexp package's matching was most
// of what the order's body cost to check; FuzzHandWrittenRules holds both
// rules to their expressions).
func isID(s string) bool {
	if len(s) == 0 || len(s) > MaxTemplateName || !lowerOrDigit(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !lowerOrDigit(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func lowerOrDigit(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

func checkID(what, s string) error {
	if !isID(s) {
		return Invalid("%s %q must be 1-63 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit", what, truncate(s))
	}
	return nil
}

// TemplateName checks an OS template name: 1-63 characters of a-z, 0-9, '.',
// '_' and '-', starting with a letter or digit ("debian-12", "ubuntu-24.04").
// The name becomes a libvirt volume name (tpl-NAME.qcow2) and a directory name
// on the node: it holds no '/', is never "." or "..", and cannot start with '.'
// (a hidden file) or '-' (an option to a tool it is passed to).
func TemplateName(s string) error { return checkID("template name", s) }

// NodeID checks an agent node id with the same rule. It is the common name of
// the node's certificate and a key in the coordinators' state.
func NodeID(s string) error { return checkID("node id", s) }

// MaxCoordinatorID is the longest coordinator (Raft server) id.
const MaxCoordinatorID = 64

// CoordinatorID checks a coordinator's Raft server id: 1-64 characters of
// a-z, 0-9, '.', '_' and '-'.
func CoordinatorID(s string) error {
	if len(s) < 1 || len(s) > MaxCoordinatorID || strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789._-") != "" {
		return Invalid("coordinator id %q must be 1-%d characters of a-z, 0-9, '.', '_' and '-'", truncate(s), MaxCoordinatorID)
	}
	return nil
}

// OpID checks an operation id: 1–64 characters of [A-Za-z0-9._-], not "." or "..".
func OpID(s string) error {
	if s == "" || len(s) > 64 {
		return Invalid("operation id must be 1-64 characters")
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return Invalid("operation id %q may only contain A-Z, a-z, 0-9, '.', '_' and '-'", truncate(s))
		}
	}
	if s == "." || s == ".." {
		return Invalid("operation id %q is reserved", s)
	}
	return nil
}

// Limits bound the sizes a plan may ask for.
type Limits struct {
	MaxVCPUs     uint32
	MinMemoryMiB uint64
	MaxMemoryMiB uint64
	MaxDiskGiB   uint64
}

// DefaultLimits are generous bounds for a single node.
var DefaultLimits = Limits{MaxVCPUs: 64, MinMemoryMiB: 64, MaxMemoryMiB: 1 << 20, MaxDiskGiB: 16384}

// Plan checks vCPUs, memory and disk against the limits.
func Plan(l Limits, vcpus uint32, memMiB, diskGiB uint64) error {
	if vcpus < 1 || vcpus > l.MaxVCPUs {
		return Invalid("vcpus %d out of range 1-%d", vcpus, l.MaxVCPUs)
	}
	if memMiB < l.MinMemoryMiB || memMiB > l.MaxMemoryMiB {
		return Invalid("memory %d MiB out of range %d-%d MiB", memMiB, l.MinMemoryMiB, l.MaxMemoryMiB)
	}
	if diskGiB < 1 || diskGiB > l.MaxDiskGiB {
		return Invalid("disk %d GiB out of range 1-%d GiB", diskGiB, l.MaxDiskGiB)
	}
	return nil
}

// MAC checks a unicast MAC address in colon form and returns it lower-cased.
func MAC(s string) (string, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 || len(s) != 17 || strings.Count(s, ":") != 5 {
		return "", Invalid("mac %q is not of the form 52:54:00:12:34:56", truncate(s))
	}
	if hw[0]&1 == 1 {
		return "", Invalid("mac %q is a multicast address", s)
	}
	return hw.String(), nil
}

// Network checks a network reference: "user", "network:NAME" or "bridge:NAME".
func Network(s string) error {
	if s == "user" {
		return nil
	}
	kind, name, ok := strings.Cut(s, ":")
	if !ok || (kind != "network" && kind != "bridge") {
		return Invalid("network %q must be user, network:NAME or bridge:NAME", truncate(s))
	}
	if !ifnameRE.MatchString(name) {
		return Invalid("network name %q must be 1-15 characters of A-Z, a-z, 0-9, '_', '.', '-'", truncate(name))
	}
	return nil
}

// ifnameRE is a Linux interface or libvirt network name we accept: 1-15
// characters of A-Z, a-z, 0-9, '_', '.', '-', starting with a letter or digit.
var ifnameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$`)

// Bridge checks a Linux bridge name (the interface a guest's NIC joins): the
// rule of Network's names.
func Bridge(s string) error {
	if !ifnameRE.MatchString(s) {
		return Invalid("bridge %q must be 1-15 characters of A-Z, a-z, 0-9, '_', '.', '-', starting with a letter or digit", truncate(s))
	}
	return nil
}

// isLabel reports whether l is a DNS label: 1-63 characters of a-z, 0-9
// and '-', not starting or ending with '-' (the regular expression
// ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$, written out as isID is).
func isLabel(l string) bool {
	if len(l) == 0 || len(l) > 63 || !lowerOrDigit(l[0]) || !lowerOrDigit(l[len(l)-1]) {
		return false
	}
	for i := 1; i < len(l)-1; i++ {
		if c := l[i]; !lowerOrDigit(c) && c != '-' {
			return false
		}
	}
	return true
}

// MaxHostname is the longest host name.
const MaxHostname = 253

// Hostname checks an RFC 1123 host name (lower case), at most 253 characters.
func Hostname(s string) error {
	if s == "" || len(s) > MaxHostname {
		return Invalid("hostname must be 1-%d characters", MaxHostname)
	}
	for rest, more := s, true; more; {
		var l string
		l, rest, more = strings.Cut(rest, ".")
		if !isLabel(l) {
			return Invalid("hostname %q: each label must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'", truncate(s))
		}
	}
	return nil
}

// PublicHost checks a host that clients elsewhere connect to (a hosting
// node's public SFTP host: agent --hosting-sftp-host, and the connection
// details the coordinator records from it): an RFC 1123 host name (lower
// case, Hostname) or an IP address without a zone. A zoned address
// (fe80::1%eth0) names an interface of the node itself: no client
// elsewhere reaches it by that name. Nor does an unspecified address
// (0.0.0.0, ::: a listener's "every address", no address to connect to)
// or a multicast one. A loopback address or "localhost" passes on purpose:
// a node whose customers connect on the machine itself (make run's single
// machine, the test rigs) has no other name to give.
func PublicHost(s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil {
		if err := Hostname(s); err != nil {
			return Invalid("%s (or an IP address)", Reason(err))
		}
		return nil
	}
	if a.Zone() != "" {
		return Invalid("%q: an IP address with a zone names an interface of the node, not an address others reach; give a host name or an address without %%%s", truncate(s), truncate(a.Zone()))
	}
	if u := a.Unmap(); u.IsUnspecified() || u.IsMulticast() {
		return Invalid("%q: an unspecified or multicast address is no address others connect to; give a host name or the node's public address", truncate(s))
	}
	return nil
}

// Password lengths: what a root password may be.
const (
	MinPassword = 8
	MaxPassword = 128
)

// Password checks a root password: 8–128 printable ASCII characters. The
// coordinator's generated passwords (20 letters and digits) pass it.
func Password(s string) error {
	if len(s) < MinPassword || len(s) > MaxPassword {
		return Invalid("password must be %d-%d characters", MinPassword, MaxPassword)
	}
	for _, r := range s {
		if r < 0x20 || r > 0x7e {
			return Invalid("password may only contain printable ASCII characters")
		}
	}
	return nil
}

// SSHKeyTypePrefixes are how the OpenSSH public key types start.
var SSHKeyTypePrefixes = []string{"ssh-", "ecdsa-", "sk-"}

// SSHKeyLine is a shape check of one public key: one line of at most max
// bytes that starts with an OpenSSH key type prefix. It is not enough at the
// API edge (a key only shaped like one was charged for and then refused by the
// agent): the coordinator and the agent both apply SSHKey.
func SSHKeyLine(s string, max int) error {
	if s == "" || len(s) > max {
		return Invalid("ssh key must be 1-%d characters", max)
	}
	if strings.ContainsAny(s, "\r\n\t") {
		return Invalid("ssh key must be one line")
	}
	for _, p := range SSHKeyTypePrefixes {
		if strings.HasPrefix(s, p) {
			return nil
		}
	}
	return Invalid("ssh key is not an OpenSSH public key (it must start with ssh-, ecdsa- or sk-)")
}

var sshKeyTypes = map[string]bool{
	"ssh-ed25519": true, "ssh-rsa": true,
	"ecdsa-sha2-nistp256": true, "ecdsa-sha2-nistp384": true, "ecdsa-sha2-nistp521": true,
	"sk-ssh-ed25519@openssh.com": true, "sk-ecdsa-sha2-nistp256@openssh.com": true,
}

// SSHKey checks one OpenSSH public key line ("TYPE BASE64 [COMMENT]") and returns it
// normalised to a single line. Options before the type are rejected.
func SSHKey(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) > 16384 {
		return "", Invalid("ssh key longer than 16384 bytes")
	}
	if !utf8.ValidString(s) || strings.ContainsAny(s, "\r\n\x00") {
		return "", Invalid("ssh key must be a single line of text")
	}
	fields := strings.Fields(s)
	if len(fields) < 2 {
		return "", Invalid("ssh key %q is not of the form TYPE BASE64 [COMMENT]", truncate(s))
	}
	typ := fields[0]
	if !sshKeyTypes[typ] {
		return "", Invalid("ssh key type %q not supported", truncate(typ))
	}
	blob, err := base64.StdEncoding.DecodeString(fields[1])
	if err != nil {
		return "", Invalid("ssh key data is not valid base64")
	}
	if len(blob) < 4 {
		return "", Invalid("ssh key data too short")
	}
	n := binary.BigEndian.Uint32(blob)
	if uint64(n) > uint64(len(blob)-4) || !bytes.Equal(blob[4:4+n], []byte(typ)) {
		return "", Invalid("ssh key data does not match its type %s", typ)
	}
	if len(blob) < 4+int(n)+16 {
		return "", Invalid("ssh key data too short for %s", typ)
	}
	comment := strings.Join(fields[2:], " ")
	for _, r := range comment {
		if r < 0x20 || r == 0x7f {
			return "", Invalid("ssh key comment contains control characters")
		}
	}
	out := typ + " " + fields[1]
	if comment != "" {
		out += " " + comment
	}
	return out, nil
}

// SSHKeys checks at most 32 keys.
func SSHKeys(keys []string) ([]string, error) {
	if len(keys) > 32 {
		return nil, Invalid("at most 32 ssh keys")
	}
	out := make([]string, 0, len(keys))
	for i, k := range keys {
		n, err := SSHKey(k)
		if err != nil {
			return nil, fmt.Errorf("ssh key %d: %w", i+1, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// noStaticAddr reports whether no static address is given (addr empty): valid
// without a gateway, and with one the error is refusal.
func noStaticAddr(addr, gw, refusal string) (bool, error) {
	if addr != "" {
		return false, nil
	}
	if gw != "" {
		return true, Invalid("%s", refusal)
	}
	return true, nil
}

// IPv4CIDR checks a static address like 192.0.2.10/24 and an optional gateway in its subnet.
func IPv4CIDR(addr, gw string) error {
	if none, err := noStaticAddr(addr, gw, "gateway given without an address"); none {
		return err
	}
	p, err := netip.ParsePrefix(addr)
	if err != nil || !p.Addr().Is4() {
		return Invalid("ipv4 %q is not an IPv4 address in CIDR form", truncate(addr))
	}
	if gw != "" {
		g, err := netip.ParseAddr(gw)
		if err != nil || !g.Is4() || !p.Masked().Contains(g) {
			return Invalid("gateway %q is not an IPv4 address in %s", truncate(gw), p.Masked())
		}
	}
	return nil
}

// IPv6CIDR checks a static IPv6 address in CIDR form (2001:db8:0:5::1/64, no
// zone, not IPv4-mapped) and an optional gateway: a unicast IPv6 address, in
// that prefix, elsewhere in the IP pool (2001:db8::1 for a server's /64 out
// of 2001:db8::/48: the guest routes to it on-link) or link-local (fe80::1).
func IPv6CIDR(addr, gw string) error {
	if none, err := noStaticAddr(addr, gw, "gateway6 given without an ipv6 address"); none {
		return err
	}
	p, err := netip.ParsePrefix(addr)
	if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() || p.Addr().Zone() != "" || p.Bits() < 1 {
		return Invalid("ipv6 %q is not an IPv6 address in CIDR form", truncate(addr))
	}
	if a := p.Addr(); a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a.IsLinkLocalUnicast() {
		return Invalid("ipv6 %q is not a global unicast address", truncate(addr))
	}
	if gw != "" {
		g, err := netip.ParseAddr(gw)
		if err != nil || !g.Is6() || g.Is4In6() || g.Zone() != "" || g.IsUnspecified() || g.IsLoopback() || g.IsMulticast() {
			return Invalid("gateway6 %q is not a unicast IPv6 address", truncate(gw))
		}
	}
	return nil
}

// MaxResolvers is how many DNS resolvers a guest's network-config may name.
const MaxResolvers = 8

// Resolvers checks DNS resolver addresses (IPv4 or IPv6, no zone) and returns
// them in canonical form.
func Resolvers(rs []string) ([]string, error) {
	if len(rs) > MaxResolvers {
		return nil, Invalid("at most %d resolvers", MaxResolvers)
	}
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		a, err := netip.ParseAddr(r)
		if err != nil || a.Zone() != "" || a.Is4In6() || a.IsUnspecified() || a.IsMulticast() {
			return nil, Invalid("resolver %q is not an IPv4 or IPv6 address", truncate(r))
		}
		out = append(out, a.String())
	}
	return out, nil
}

// MaxSnapshotDescription is the most bytes of a snapshot's description (the
// agent keeps it in the libvirt snapshot's XML).
const MaxSnapshotDescription = 1024

// SnapshotDescription checks a snapshot's description as the agent takes it:
// Text (one line: a tab, no other control character) of at most
// MaxSnapshotDescription bytes. The coordinator applies it too, so a
// description the agent would refuse is a 400, not a failed action.
func SnapshotDescription(s string) error { return Text("description", s, MaxSnapshotDescription) }

// Text checks free text (descriptions, OS family, kernel cmdline): printable, bounded.
func Text(kind, s string, max int) error {
	if len(s) > max {
		return Invalid("%s longer than %d bytes", kind, max)
	}
	if !utf8.ValidString(s) {
		return Invalid("%s is not valid UTF-8", kind)
	}
	for _, r := range s {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return Invalid("%s contains control characters", kind)
		}
	}
	return nil
}

// SHA256Hex checks a lower- or upper-case hex SHA-256 digest and returns it lower-cased.
func SHA256Hex(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) != 64 || strings.Trim(s, "0123456789abcdef") != "" {
		return "", Invalid("sha256 must be 64 hex characters")
	}
	return s, nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// Reason is a validation error's message without the "invalid input: "
// prefix, for callers that name the field themselves.
func Reason(err error) string {
	return strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": ")
}
