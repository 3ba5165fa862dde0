package libvirttest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/testenv"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/testnet"
)

// bridgedGuest is one guest of the test and its assigned addresses.
type bridgedGuest struct {
	name, ip4, ip6 string // ip4/ip6 without the prefix length
	console        string
}

// TestBridgedGuestsCleanTraffic: two dual-stack guests on a test bridge (namespace,
// bridge without a host address, veth; unreachable routes for the test ranges
// in the root namespace) boot with the IPv4 and IPv6 addresses of their
// provision, as their consoles show (the guest applies the seed's
// network-config v2). The test namespace pings each on both. Then guest A
// takes guest B's addresses (through the real qemu-ga: guest-exec) and pings
// the namespace from them: none of its echo requests arrive there (the
// namespace's InEchos counters), while the same pings from A's own addresses
// did arrive just before, and B's from the same addresses arrive after. Last,
// B changes its MAC: its pings from its own addresses no longer arrive. A third
// guest, C, has IPv6 only: it boots without IPv4, answers and sends on IPv6,
// and once it gives itself an IPv4 address none of its IPv4 gets out.
//
// Nothing here is timed for a user: the three TCG boots are the rig's. At
// load ≈ 28 (stop 47) they took 2 m 17 s, the spoofing checks 33 s more, and
// the terminates then ran out of the single 3-minute context the test had
// (it failed so once at load ≈ 40 in stop 46); at load 37-48 the boots took
// 4 m 6 s and the three terminates 61 s. The import, provisions and boots
// get an 8-minute hang detector; the terminates one of their own, 5 minutes.
func TestBridgedGuestsCleanTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("boots two guests")
	}
	testenv.RequireLibvirt(t)
	g := testenv.RequireGuest(t)
	ng := testenv.RequireNetGuest(t)
	start := time.Now()
	prefix := testenv.Prefix()
	tn := testnet.New(t, prefix) // its cleanup runs after the guests'

	e := &env{t: t, prefix: prefix, guest: g}
	e.cfg = agentConfig(t.TempDir(), prefix)
	e.cfg.Bridges = []string{tn.Bridge}
	testenv.Cleanup(t, prefix, e.cfg.PoolName)
	e.startInProcess()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	if _, err := e.c.ImportTemplate(ctx, api.NodeTemplateImportRequest{
		OpID: prefix + "-import", Name: "net", OSFamily: "linux", ImagePath: ng.Disk, SHA256: testenv.SHA256File(t, ng.Disk),
		KernelPath: ng.Kernel, InitrdPath: ng.Initrd, Cmdline: ng.Cmdline, GuestAgent: true}); err != nil {
		t.Fatalf("import the networked guest: %v", err)
	}

	guests := []*bridgedGuest{
		// Each with its own /64 of the namespace's /48, as an IP pool
		// delegates them; the gateway is outside it (on-link route).
		{name: prefix + "-a", ip4: "198.51.100.10", ip6: "2001:db8:1:1::1"},
		{name: prefix + "-b", ip4: "198.51.100.11", ip6: "2001:db8:1:2::1"},
		// IPv6 only: the agent's IPv6-only filter.
		{name: prefix + "-c", ip6: "2001:db8:1:3::1"},
	}
	for i, gu := range guests {
		req := api.NodeProvisionRequest{OpID: fmt.Sprintf("%s-prov-%d", prefix, i), Name: gu.name,
			Template: "net", Plan: api.NodePlan{VCPUs: 1, MemoryMiB: 128, DiskGiB: 1},
			Bridge: tn.Bridge, IPv6: gu.ip6 + "/64", Gateway6: testnet.Gateway6,
			Resolvers: []string{testnet.Gateway4, testnet.Gateway6}}
		if gu.ip4 != "" {
			req.IPv4, req.Gateway4 = gu.ip4+"/24", testnet.Gateway4
		}
		op, err := e.c.Provision(ctx, req)
		if err != nil || op.State != api.NodeOpSucceeded {
			t.Fatalf("provision %s on %s: %+v %v\nagent log:\n%s", gu.name, tn.Bridge, op, err, e.agentLog())
		}
		gu.console = op.Result.VM.ConsoleLog
	}

	// Each guest boots with its addresses and routes (read from its console).
	for _, gu := range guests {
		// guest-netcfg runs before GUEST-READY: one wait covers both.
		log, err := testenv.WaitForLog(ctx, gu.console, "GUEST-READY", 1)
		if err != nil || !strings.Contains(log, "GUEST-NET-READY") {
			t.Fatalf("%s: no GUEST-NET-READY before GUEST-READY: %v\nconsole:\n%s", gu.name, err, log)
		}
		if strings.Contains(log, "GUEST-NET-ERROR") {
			t.Fatalf("%s: network-config failed:\n%s", gu.name, log)
		}
		wants := []string{"GUEST-NET eth0 inet6 " + gu.ip6 + "/64", "GUEST-NET eth0 route6 via " + testnet.Gateway6,
			"GUEST-NET resolvers " + testnet.Gateway4 + "," + testnet.Gateway6}
		if gu.ip4 != "" {
			wants = append(wants, "GUEST-NET eth0 inet "+gu.ip4+"/24", "GUEST-NET eth0 route4 via "+testnet.Gateway4)
		} else if strings.Contains(log, "GUEST-NET eth0 inet ") || strings.Contains(log, "route4") {
			t.Fatalf("%s (IPv6 only) has IPv4 configured:\n%s", gu.name, log)
		}
		for _, want := range wants {
			if !strings.Contains(log, want) {
				t.Fatalf("%s's console lacks %q:\n%s", gu.name, want, log)
			}
		}
	}

	t.Logf("3 guests provisioned and booted with their addresses after %s", time.Since(start).Round(time.Millisecond))
	// The namespace reaches each guest on IPv4 and IPv6.
	for _, gu := range guests {
		for _, a := range []string{gu.ip4, gu.ip6} {
			if a == "" {
				continue
			}
			if ok, out := tn.Ping(a, 5); !ok {
				t.Fatalf("ping %s (%s) from the test namespace failed:\n%s\nconsole:\n%s", a, gu.name, out, framework.ReadFile(t, gu.console))
			}
		}
	}

	t.Logf("pinged from the namespace after %s", time.Since(start).Round(time.Millisecond))
	a, b, c := guests[0], guests[1], guests[2]
	for _, gu := range guests {
		waitGuestAgent(t, gu.name, gu.console)
	}
	pingNS := fmt.Sprintf("ping -c 2 -W 1 %s; ping6 -c 2 -W 1 %s", testnet.Gateway4, testnet.Gateway6)

	// Control: A's pings from its own addresses arrive.
	in4, in6 := tn.EchoRequests()
	out := guestExec(t, a.name, pingNS)
	got4, got6 := tn.EchoRequests()
	if got4-in4 < 1 || got6-in6 < 1 {
		t.Fatalf("A's pings from its own addresses did not arrive (v4 +%d, v6 +%d):\n%s", got4-in4, got6-in6, out)
	}

	// A switches to B's addresses and pings from them: nothing arrives.
	in4, in6 = got4, got6
	out = guestExec(t, a.name, fmt.Sprintf("ip addr del %s/24 dev eth0; ip addr add %s/24 dev eth0; "+
		"ip -6 addr del %s/64 dev eth0; ip -6 addr add %s/64 dev eth0; ip addr show dev eth0; %s",
		a.ip4, b.ip4, a.ip6, b.ip6, pingNS))
	if !strings.Contains(out, "inet "+b.ip4+"/24") || !strings.Contains(out, "inet6 "+b.ip6+"/64") {
		t.Fatalf("A did not take B's addresses:\n%s", out)
	}
	got4, got6 = tn.EchoRequests()
	if got4 != in4 || got6 != in6 {
		t.Fatalf("A sent from B's addresses and %d IPv4 / %d IPv6 echo requests reached the namespace:\n%s", got4-in4, got6-in6, out)
	}

	// B, the owner of those addresses, still gets through (the counters work).
	out = guestExec(t, b.name, pingNS)
	got4, got6 = tn.EchoRequests()
	if got4-in4 < 1 || got6-in6 < 1 {
		t.Fatalf("B's pings from its own addresses did not arrive (v4 +%d, v6 +%d):\n%s", got4-in4, got6-in6, out)
	}

	// B with a MAC that is not its own: nothing it sends arrives either.
	in4, in6 = got4, got6
	const otherMAC = "52:54:00:de:ad:01"
	out = guestExec(t, b.name, "ip link set eth0 address "+otherMAC+"; ip link show dev eth0; "+pingNS)
	if !strings.Contains(out, "link/ether "+otherMAC) {
		t.Fatalf("B did not take MAC %s:\n%s", otherMAC, out)
	}
	got4, got6 = tn.EchoRequests()
	if got4 != in4 || got6 != in6 {
		t.Fatalf("B sent with MAC %s and %d IPv4 / %d IPv6 echo requests reached the namespace:\n%s", otherMAC, got4-in4, got6-in6, out)
	}
	// C (IPv6 only) reaches the namespace on IPv6; after it gives itself an
	// IPv4 address, none of its IPv4 arrives (nor its ARP: no IPv4 at all).
	in4, in6 = got4, got6
	out = guestExec(t, c.name, fmt.Sprintf("ping6 -c 2 -W 1 %s; ip addr add 198.51.100.12/24 dev eth0; ping -c 2 -W 1 %s",
		testnet.Gateway6, testnet.Gateway4))
	got4, got6 = tn.EchoRequests()
	if got6-in6 < 1 || got4 != in4 {
		t.Fatalf("IPv6-only C: %d IPv6 echo requests arrived (want some), %d IPv4 (want none):\n%s", got6-in6, got4-in4, out)
	}

	t.Logf("spoofing checks done after %s", time.Since(start).Round(time.Millisecond))
	tctx, tcancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer tcancel()
	// The three at once (one op each, on locks of their own): one after
	// the other they took 81 s at load ≈ 35, each mostly waiting for its
	// QEMU to end.
	errs := make([]error, len(guests))
	var wg sync.WaitGroup
	for i, gu := range guests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.c.Terminate(tctx, gu.name, gu.name+"-term")
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("terminate %s: %v", guests[i].name, err)
		}
	}
	t.Logf("terminated after %s", time.Since(start).Round(time.Millisecond))
}

// waitGuestAgent waits until the guest's qemu-ga answers through libvirt.
func waitGuestAgent(t *testing.T, dom, console string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := agentCommand(dom, `{"execute":"guest-ping"}`)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the guest agent never answered: %v\nconsole:\n%s", dom, err, framework.ReadFile(t, console))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

var execPID = regexp.MustCompile(`"pid":\s*(\d+)`)

// guestExec runs a shell command in the guest through qemu-ga's guest-exec
// and returns its output (stdout and stderr).
func guestExec(t *testing.T, dom, script string) string {
	t.Helper()
	req, _ := json.Marshal(map[string]any{"execute": "guest-exec", "arguments": map[string]any{
		"path": "/bin/sh", "arg": []string{"-c", script + " 2>&1"}, "capture-output": true}})
	r, err := agentCommand(dom, string(req))
	if err != nil {
		t.Fatalf("guest-exec in %s: %v", dom, err)
	}
	m := execPID.FindStringSubmatch(string(r))
	if m == nil {
		t.Fatalf("guest-exec in %s: %s", dom, r)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := agentCommand(dom, fmt.Sprintf(`{"execute":"guest-exec-status","arguments":{"pid":%s}}`, m[1]))
		if err != nil {
			t.Fatalf("guest-exec-status in %s: %v", dom, err)
		}
		var st struct {
			Exited bool   `json:"exited"`
			Out    string `json:"out-data"`
		}
		if err := json.Unmarshal(r, &st); err != nil {
			t.Fatalf("guest-exec-status in %s: %v: %s", dom, err, r)
		}
		if st.Exited {
			b, _ := base64.StdEncoding.DecodeString(st.Out)
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q did not finish", dom, script)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
