package framework

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework/testnet"
)

// PartitionNet cuts the network between coordinator processes while the
// test's clients still reach every one of them: each coordinator runs in a
// network namespace of its own (`ip netns exec`), joined by a veth pair to a
// bridge in the root namespace that holds the test's address, on a /24 of
// 198.18.0.0/15 (the range RFC 2544 sets aside for benchmark tests) that no
// interface or route of this machine uses. The coordinators reach one another
// (Raft, and the forwarding on their API ports) across the bridge, the test
// from the bridge's address.
//
// A cut drops the packets one coordinator sends to another where they
// arrive: a policy rule in the receiving namespace, `from <sender> blackhole`,
// placed before the local table (moved to a later preference in each
// namespace). The sender sees what a real partition gives: no answer, no
// error, TCP retransmitting until it gives up. Only iproute2 is needed, and
// only the test's own namespaces are touched: no rule of the host's (nft,
// iptables, tc) is read or changed, so other tests' processes, and the
// test's own clients, are never cut.
//
// Everything (namespaces, veths, bridge, the /run/netns mount if this made
// it) is removed when the test ends, also after a failure; create the
// PartitionNet before the cluster, so that the cluster's processes are
// killed first.
type PartitionNet struct {
	t       testing.TB
	prefix  string
	Bridge  string
	NS      []string // node i's namespace
	Addrs   []string // node i's address
	Host    string   // the bridge's address: the test's side
	subnet  string
	dir     string
	created []string // host-side links made, deleted in reverse
	netns   []string // namespaces made
	rmDir   bool

	mu  sync.Mutex
	cut map[[2]int]bool // {from, to}: what from sends to is dropped
}

// lockPartitionNets serializes the choice of a subnet between test
// processes (two packages may run at once) with an abstract Unix socket of
// the root namespace: one process at a time can listen on it, and it goes
// away with the process, leaving no file behind.
func lockPartitionNets(t testing.TB) (unlock func()) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		l, err := net.Listen("unix", "@hostplane-partitionnet")
		if err == nil {
			return func() { l.Close() }
		}
		if time.Now().After(deadline) {
			t.Fatalf("another test holds the partition networks' lock for 30 s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RequirePartitionTools fails the test, saying how to install it, unless
// iproute2's ip is present and this process may make namespaces (root).
func RequirePartitionTools(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("ip not found: run scripts/install-nwfilter.sh (it installs iproute2)")
	}
	if os.Geteuid() != 0 {
		t.Fatalf("network partitions need root (network namespaces, a bridge): run the tests as root")
	}
}

// NewPartitionNet makes the bridge and n namespaces, each with its address
// and nothing cut, and removes them when the test ends.
func NewPartitionNet(t testing.TB, n int) *PartitionNet {
	t.Helper()
	RequirePartitionTools(t)
	pn := &PartitionNet{t: t, prefix: fmt.Sprintf("hp%05x", rand.IntN(1<<20)), dir: t.TempDir(), cut: map[[2]int]bool{}}
	pn.Bridge = pn.prefix + "-br"
	if _, err := os.Stat("/run/netns"); err != nil {
		pn.rmDir = true
	}
	t.Cleanup(pn.remove)

	pn.addBridge()
	base := strings.TrimSuffix(pn.subnet, ".0/24")
	for i := 0; i < n; i++ {
		ns, hostEnd, nsEnd := fmt.Sprintf("%s-c%d", pn.prefix, i+1), fmt.Sprintf("%s-h%d", pn.prefix, i+1), fmt.Sprintf("%s-n%d", pn.prefix, i+1)
		addr := fmt.Sprintf("%s.%d", base, i+2)
		testnet.IP(pn.t, "netns", "add", ns)
		pn.netns = append(pn.netns, ns)
		testnet.IP(pn.t, "link", "add", hostEnd, "type", "veth", "peer", "name", nsEnd)
		pn.created = append(pn.created, hostEnd)
		testnet.Sysctl(pn.t, "net.ipv6.conf."+hostEnd+".disable_ipv6", "1")
		testnet.IP(pn.t, "link", "set", hostEnd, "master", pn.Bridge, "up")
		testnet.IP(pn.t, "link", "set", nsEnd, "netns", ns)
		testnet.IP(pn.t, "-n", ns, "link", "set", "lo", "up")
		testnet.IP(pn.t, "-n", ns, "addr", "add", addr+"/24", "dev", nsEnd)
		testnet.IP(pn.t, "-n", ns, "link", "set", nsEnd, "up")
		// The local table after the cuts' rules (preference 0 comes first).
		testnet.IP(pn.t, "-n", ns, "rule", "add", "pref", "1000", "lookup", "local")
		testnet.IP(pn.t, "-n", ns, "rule", "del", "pref", "0", "lookup", "local")
		pn.NS, pn.Addrs = append(pn.NS, ns), append(pn.Addrs, addr)
	}
	return pn
}

// addBridge picks the subnet and makes the bridge, with the test's address
// on it, holding the partition networks' lock, which it releases however it
// returns (a failure's runtime.Goexit or a panic too: before, a failure
// between the lock and its release left the lock's listener open until a
// garbage collection finalized it, and other PartitionNets waited for it).
func (pn *PartitionNet) addBridge() {
	pn.t.Helper()
	defer lockPartitionNets(pn.t)()
	pn.subnet = pn.freeSubnet()
	pn.Host = strings.TrimSuffix(pn.subnet, ".0/24") + ".1"
	testnet.IP(pn.t, "link", "add", pn.Bridge, "type", "bridge")
	pn.created = append(pn.created, pn.Bridge)
	testnet.Sysctl(pn.t, "net.ipv6.conf."+pn.Bridge+".disable_ipv6", "1")
	testnet.IP(pn.t, "addr", "add", pn.Host+"/24", "dev", pn.Bridge)
	testnet.IP(pn.t, "link", "set", pn.Bridge, "up")
}

// freeSubnet picks a /24 of 198.18.0.0/15 that no address or route of the
// root namespace is in (the default route aside).
func (pn *PartitionNet) freeSubnet() string {
	for try := 0; try < 50; try++ {
		k := rand.IntN(512)
		s := fmt.Sprintf("198.%d.%d.0/24", 18+k/256, k%256)
		addrs, err1 := exec.Command("ip", "-o", "-4", "addr", "show", "to", s).Output()
		routes, err2 := exec.Command("ip", "-4", "route", "show", "table", "all", "match", s).Output()
		if err1 != nil || err2 != nil {
			pn.t.Fatalf("ip addr/route show: %v %v", err1, err2)
		}
		free := strings.TrimSpace(string(addrs)) == ""
		for _, l := range strings.Split(strings.TrimSpace(string(routes)), "\n") {
			if l != "" && !strings.HasPrefix(l, "default ") {
				free = false
			}
		}
		if free {
			return s
		}
	}
	pn.t.Fatalf("no free /24 in 198.18.0.0/15 after 50 tries")
	return ""
}

// Place makes o's coordinators run in the namespaces, node i in NS[i],
// listening on Addrs[i] (the ports ProcessCluster chose, which are free
// there too). Any o.Extra still runs after. RestartWith another binary
// would leave the namespace: tests of a PartitionNet restart with Start.
func (pn *PartitionNet) Place(o *ProcessOptions) {
	if o.Bin == "" {
		pn.t.Fatalf("PartitionNet.Place: ProcessOptions.Bin is required")
	}
	bin, err := filepath.Abs(o.Bin)
	if err != nil {
		pn.t.Fatal(err)
	}
	prev := o.Extra
	o.Extra = func(i int, p *CoordinatorProcess) []string {
		pn.place(i, p, bin)
		if prev != nil {
			return prev(i, p)
		}
		return nil
	}
}

// place rewrites p's listen addresses to node i's, in p.Args in place (the
// elements only: the slice prepare appends Extra's flags to is the same),
// and has p started through a script that enters NS[i].
func (pn *PartitionNet) place(i int, p *CoordinatorProcess, bin string) {
	rehost := func(addr *string, flag string) {
		if *addr == "" {
			return
		}
		_, port, err := net.SplitHostPort(*addr)
		if err != nil {
			pn.t.Fatalf("%s %s: %v", flag, *addr, err)
		}
		*addr = net.JoinHostPort(pn.Addrs[i], port)
		k := slices.Index(p.Args, flag)
		if k < 0 || k+1 >= len(p.Args) {
			pn.t.Fatalf("PartitionNet: %s is not among %s's arguments", flag, p.ID)
		}
		p.Args[k+1] = *addr
	}
	rehost(&p.APIAddr, "--api-addr")
	rehost(&p.RaftAddr, "--raft-addr")
	rehost(&p.MetricsAddr, "--metrics-addr")
	rehost(&p.AgentAddr, "--agent-listen")
	script := filepath.Join(pn.dir, p.ID+"-in-netns.sh")
	body := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", pn.NS[i], shellQuote(bin))
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		pn.t.Fatal(err)
	}
	p.Bin = script
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Cut drops what node from sends to node to (one direction: to's answers
// still reach from, though TCP, missing its peer's packets, soon stalls both
// ways). Cutting what is cut already changes nothing.
func (pn *PartitionNet) Cut(from, to int) {
	pn.mu.Lock()
	defer pn.mu.Unlock()
	if from == to || pn.cut[[2]int{from, to}] {
		return
	}
	if pn.change("add", from, to) {
		pn.cut[[2]int{from, to}] = true
	}
}

// Heal undoes Cut(from, to); healing what is not cut changes nothing.
func (pn *PartitionNet) Heal(from, to int) {
	pn.mu.Lock()
	defer pn.mu.Unlock()
	if !pn.cut[[2]int{from, to}] {
		return
	}
	if pn.change("del", from, to) {
		delete(pn.cut, [2]int{from, to})
	}
}

// Isolate cuts node i from every other node, both ways.
func (pn *PartitionNet) Isolate(i int) {
	for j := range pn.NS {
		pn.Cut(i, j)
		pn.Cut(j, i)
	}
}

// HealAll undoes every cut.
func (pn *PartitionNet) HealAll() {
	for from := range pn.NS {
		for to := range pn.NS {
			pn.Heal(from, to)
		}
	}
}

// Cuts describes what is cut now ("1->2 2->1", nodes 1-based; "none").
func (pn *PartitionNet) Cuts() string {
	pn.mu.Lock()
	defer pn.mu.Unlock()
	var s []string
	for from := range pn.NS {
		for to := range pn.NS {
			if pn.cut[[2]int{from, to}] {
				s = append(s, fmt.Sprintf("%d->%d", from+1, to+1))
			}
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, " ")
}

// change adds or deletes (op) the rule dropping in to's namespace what from
// sends; a failure fails the test without stopping it (Cut and Heal run in
// goroutines of the test's).
func (pn *PartitionNet) change(op string, from, to int) bool {
	args := []string{"-n", pn.NS[to], "rule", op, "pref", fmt.Sprint(100 + from), "from", pn.Addrs[from], "blackhole"}
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		pn.t.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		return false
	}
	return true
}

// remove deletes what NewPartitionNet made: a process still in one of the
// namespaces (the cluster's cleanup kills them first) is the test's own and
// is killed; then the host-side links (a veth's peer goes with it), the
// bridge and the namespaces.
func (pn *PartitionNet) remove() {
	for _, ns := range pn.netns {
		out, _ := exec.Command("ip", "netns", "pids", ns).Output()
		for _, pid := range strings.Fields(string(out)) {
			var n int
			if _, err := fmt.Sscan(pid, &n); err == nil && n > 0 {
				pn.t.Errorf("cleanup: process %d still in namespace %s: killed", n, ns)
				_ = syscall.Kill(n, syscall.SIGKILL)
			}
		}
	}
	for i := len(pn.created) - 1; i >= 0; i-- {
		_ = exec.Command("ip", "link", "del", pn.created[i]).Run()
	}
	for _, ns := range pn.netns {
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
	if pn.rmDir {
		if ents, err := os.ReadDir("/run/netns"); err == nil && len(ents) == 0 {
			_ = exec.Command("umount", "/run/netns").Run()
			_ = os.Remove("/run/netns")
		}
	}
	for _, l := range pn.created {
		if _, err := os.Stat("/sys/class/net/" + l); err == nil {
			pn.t.Errorf("cleanup: %s still exists", l)
		}
	}
	for _, ns := range pn.netns {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			pn.t.Errorf("cleanup: namespace %s still exists", ns)
		}
	}
}
