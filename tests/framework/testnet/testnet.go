// Package testnet builds a test network for tests that put real guests on a
// Linux bridge: a network namespace standing for the outside world, a bridge
// in the root namespace with no host address, and a veth pair joining them,
// on documentation ranges only, with unreachable routes for those ranges in
// the root namespace so that nothing leaves the machine. Everything is
// removed when the test ends, also after a failure.
package testnet

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// The test ranges: documentation ranges that are not this host's (on these
// machines 192.0.2.0/24 is the real network: never used here).
const (
	Range4 = "198.51.100.0/24"
	Range6 = "2001:db8::/32"
)

// The namespace's addresses: the guests' gateways. IPv6 is a /48 as an IP
// pool would be (each server gets its own /64 of it and reaches the gateway
// on-link).
const (
	Gateway4 = "198.51.100.1"
	CIDR4    = Gateway4 + "/24"
	Gateway6 = "2001:db8:1::1"
	CIDR6    = Gateway6 + "/48"
)

// Net is one test's network: a namespace standing for the outside world
// (its veth holds the gateway addresses), a bridge in the root namespace with
// no host address, and the veth pair joining them. Guests join the bridge.
// The root namespace gets unreachable routes for the test ranges, so a packet
// for them never leaves this machine.
type Net struct {
	t                testing.TB
	NS, Bridge       string
	hostVeth, nsVeth string
	removeRoutes     [][]string
	removeNetnsDir   bool
}

// RequireTools fails the test, saying how to install them, unless ip,
// ping, the firewall tools and libvirt's clean-traffic filter are present.
func RequireTools(t testing.TB) {
	t.Helper()
	for _, c := range []string{"ip", "ping", "ebtables", "iptables", "ip6tables", "virsh"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s not found: run scripts/install-nwfilter.sh (it installs libvirt-daemon-config-nwfilter, ebtables, iptables, iproute2, iputils-ping)", c)
		}
	}
	out, err := exec.Command("virsh", "-q", "-c", "qemu:///system", "nwfilter-list").CombinedOutput()
	if err != nil || !strings.Contains(string(out), " clean-traffic") {
		t.Fatalf("libvirt has no clean-traffic nwfilter (%v %s): run scripts/install-nwfilter.sh", err, out)
	}
}

// New builds the network with names from prefix (at most 7
// characters, as testenv.Prefix makes) and removes it when the test ends,
// even after a failure: host-side veth first (a peer's removal after the
// namespace's is asynchronous), then the bridge, the namespace and the routes
// this test added. Register it before the guests' cleanup so it runs after.
func New(t testing.TB, prefix string) *Net {
	t.Helper()
	RequireTools(t)
	n := &Net{t: t, NS: prefix + "-ns", Bridge: prefix + "-br", hostVeth: prefix + "-vh", nsVeth: prefix + "-vn"}
	if _, err := os.Stat("/run/netns"); err != nil {
		n.removeNetnsDir = true
	}
	t.Cleanup(n.remove)

	// Nothing for the test ranges leaves the root namespace.
	for _, r := range [][]string{{"-4", Range4}, {"-6", Range6}} {
		out, _ := exec.Command("ip", r[0], "route", "show", "exact", r[1]).Output()
		switch {
		case strings.HasPrefix(strings.TrimSpace(string(out)), "unreachable"):
		case strings.TrimSpace(string(out)) != "":
			t.Fatalf("the root namespace routes %s already (%s): not a test range here", r[1], out)
		default:
			IP(n.t, r[0], "route", "add", "unreachable", r[1])
			n.removeRoutes = append(n.removeRoutes, []string{r[0], "route", "del", "unreachable", r[1]})
		}
	}
	if out, _ := exec.Command("ip", "-o", "addr", "show", "to", Range4).Output(); strings.TrimSpace(string(out)) != "" {
		t.Fatalf("a host interface holds an address in %s: %s", Range4, out)
	}

	IP(n.t, "netns", "add", n.NS)
	IP(n.t, "link", "add", n.Bridge, "type", "bridge")
	Sysctl(n.t, "net.ipv6.conf."+n.Bridge+".disable_ipv6", "1") // the bridge has no host address at all
	IP(n.t, "link", "set", n.Bridge, "up")
	IP(n.t, "link", "add", n.hostVeth, "type", "veth", "peer", "name", n.nsVeth)
	Sysctl(n.t, "net.ipv6.conf."+n.hostVeth+".disable_ipv6", "1")
	IP(n.t, "link", "set", n.hostVeth, "master", n.Bridge, "up")
	IP(n.t, "link", "set", n.nsVeth, "netns", n.NS)
	IP(n.t, "-n", n.NS, "link", "set", "lo", "up")
	IP(n.t, "-n", n.NS, "addr", "add", CIDR4, "dev", n.nsVeth)
	IP(n.t, "-n", n.NS, "-6", "addr", "add", CIDR6, "dev", n.nsVeth, "nodad")
	IP(n.t, "-n", n.NS, "link", "set", n.nsVeth, "up")

	// ip route get: the guests' addresses are unreachable from the root
	// namespace (not sent to the default gateway), reachable only inside.
	for _, a := range []string{"198.51.100.10", "2001:db8:1:1::1"} {
		out, err := exec.Command("ip", "route", "get", a).CombinedOutput()
		if !strings.Contains(string(out), "unreachable") && !(err != nil && strings.Contains(string(out), "No route to host")) {
			t.Fatalf("ip route get %s in the root namespace: %s (want unreachable)", a, out)
		}
		out, err = exec.Command("ip", "-n", n.NS, "route", "get", a).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "dev "+n.nsVeth) {
			t.Fatalf("ip -n %s route get %s: %v %s (want dev %s)", n.NS, a, err, out, n.nsVeth)
		}
	}
	return n
}

// IP runs ip(8) with args; a failure fails t with the command and its
// output. (The framework's PartitionNet builds its namespaces with it too.)
func IP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// Sysctl sets the kernel parameter key (net.ipv6.conf.all.forwarding) to
// v through /proc/sys; a failure fails t.
func Sysctl(t testing.TB, key, v string) {
	t.Helper()
	if err := os.WriteFile("/proc/sys/"+strings.ReplaceAll(key, ".", "/"), []byte(v), 0o644); err != nil {
		t.Fatalf("sysctl %s=%s: %v", key, v, err)
	}
}

// remove deletes everything newTestNet made, whatever exists of it.
func (n *Net) remove() {
	for _, args := range [][]string{
		{"link", "del", n.hostVeth},
		{"link", "del", n.Bridge},
		{"netns", "del", n.NS},
	} {
		_ = exec.Command("ip", args...).Run()
	}
	for _, r := range n.removeRoutes {
		_ = exec.Command("ip", r...).Run()
	}
	if n.removeNetnsDir {
		if ents, err := os.ReadDir("/run/netns"); err == nil && len(ents) == 0 {
			_ = exec.Command("umount", "/run/netns").Run()
			_ = os.Remove("/run/netns")
		}
	}
	for _, l := range []string{n.hostVeth, n.Bridge} {
		if _, err := os.Stat("/sys/class/net/" + l); err == nil {
			n.t.Errorf("cleanup: %s still exists", l)
		}
	}
}

// Ping pings addr from the namespace: true once one of tries answers.
func (n *Net) Ping(addr string, tries int) (bool, string) {
	var out []byte
	for i := 0; i < tries; i++ {
		var err error
		out, err = exec.Command("ip", "netns", "exec", n.NS, "ping", "-c", "1", "-W", "2", addr).CombinedOutput()
		if err == nil {
			return true, string(out)
		}
	}
	return false, string(out)
}

// EchoRequests is how many ICMP (v4) and ICMPv6 echo requests the namespace
// has received: what a guest's ping got through the bridge and its filter.
func (n *Net) EchoRequests() (v4, v6 int) {
	n.t.Helper()
	snmp, err := exec.Command("ip", "netns", "exec", n.NS, "cat", "/proc/net/snmp", "/proc/net/snmp6").Output()
	if err != nil {
		n.t.Fatalf("read the namespace's counters: %v", err)
	}
	lines := strings.Split(string(snmp), "\n")
	v4, v6 = -1, -1
	for i := 0; i+1 < len(lines); i++ {
		if strings.HasPrefix(lines[i], "Icmp: ") && strings.HasPrefix(lines[i+1], "Icmp: ") {
			names, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
			for j := range names {
				if names[j] == "InEchos" && j < len(vals) {
					v4, _ = strconv.Atoi(vals[j])
				}
			}
		}
		if f := strings.Fields(lines[i]); len(f) == 2 && f[0] == "Icmp6InEchos" {
			v6, _ = strconv.Atoi(f[1])
		}
	}
	if f := strings.Fields(lines[len(lines)-1]); len(f) == 2 && f[0] == "Icmp6InEchos" {
		v6, _ = strconv.Atoi(f[1])
	}
	if v4 < 0 || v6 < 0 {
		n.t.Fatalf("no InEchos counters in the namespace's /proc/net/snmp{,6}:\n%s", snmp)
	}
	return v4, v6
}
