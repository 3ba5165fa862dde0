// Command guest-netcfg applies a NoCloud network-config (version 2, as
// hostplane's agent writes it: YAML in its JSON form) inside the tiny test
// guest, the way cloud-init's netplan renderer would: for each ethernet, the
// interface whose MAC matches is renamed (set-name), brought up, given its
// static addresses (IPv6 without duplicate address detection, so the test
// needs no wait: accept_dad=0) and routes, and the nameservers go into /etc/resolv.conf.
// It then prints each address the kernel holds on the interface as
// "GUEST-NET <ifname> inet|inet6 <addr/len>", the default routes as
// "GUEST-NET <ifname> route4|route6 via <gw>", and "GUEST-NET-READY", on
// stdout (the serial console). Errors print "GUEST-NET-ERROR ...".
// It runs under busybox; "ip" is busybox's.
//
// scripts/build-test-guest.sh builds it (static, CGO_ENABLED=0) into the
// networked test guest.
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

type config struct {
	Version   int                 `json:"version"`
	Ethernets map[string]ethernet `json:"ethernets"`
}

type ethernet struct {
	Match struct {
		MACAddress string `json:"macaddress"`
	} `json:"match"`
	SetName   string   `json:"set-name"`
	Addresses []string `json:"addresses"`
	Routes    []struct {
		To     string `json:"to"`
		Via    string `json:"via"`
		OnLink bool   `json:"on-link"`
	} `json:"routes"`
	Nameservers struct {
		Addresses []string `json:"addresses"`
	} `json:"nameservers"`
}

func main() {
	if len(os.Args) != 2 {
		fail("usage: guest-netcfg NETWORK-CONFIG")
	}
	b, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail("read %s: %v", os.Args[1], err)
	}
	var c config
	if err := json.Unmarshal(b, &c); err != nil {
		fail("parse %s: %v", os.Args[1], err)
	}
	if c.Version != 2 {
		fail("network-config version %d, want 2", c.Version)
	}
	ip("link", "set", "lo", "up")
	var resolvers []string
	for id, e := range c.Ethernets {
		name, err := byMAC(e.Match.MACAddress)
		if err != nil {
			fail("ethernet %s: %v", id, err)
		}
		if e.SetName != "" && e.SetName != name {
			ip("link", "set", name, "down")
			ip("link", "set", name, "name", e.SetName)
			name = e.SetName
		}
		// No duplicate address detection (busybox ip has no "nodad"): the
		// addresses are usable at once.
		if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/accept_dad", []byte("0"), 0o644); err != nil {
			fail("accept_dad on %s: %v", name, err)
		}
		ip("link", "set", name, "up")
		for _, a := range e.Addresses {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				fail("address %q: %v", a, err)
			}
			if p.Addr().Is4() {
				ip("addr", "add", a, "dev", name)
			} else {
				ip("-6", "addr", "add", a, "dev", name)
			}
		}
		for _, r := range e.Routes {
			fam, to := "-4", r.To
			if strings.Contains(r.To, ":") {
				fam = "-6"
			}
			if to == "0.0.0.0/0" || to == "::/0" {
				to = "default"
			}
			args := []string{fam, "route", "add", to, "via", r.Via, "dev", name}
			if r.OnLink {
				args = append(args, "onlink")
			}
			ip(args...)
		}
		resolvers = append(resolvers, e.Nameservers.Addresses...)
		report(name)
	}
	if len(resolvers) > 0 {
		var s strings.Builder
		for _, r := range resolvers {
			fmt.Fprintf(&s, "nameserver %s\n", r)
		}
		_ = os.MkdirAll("/etc", 0o755)
		if err := os.WriteFile("/etc/resolv.conf", []byte(s.String()), 0o644); err != nil {
			fail("resolv.conf: %v", err)
		}
		fmt.Printf("GUEST-NET resolvers %s\n", strings.Join(resolvers, ","))
	}
	fmt.Println("GUEST-NET-READY")
}

// byMAC is the name of the interface with hardware address mac.
func byMAC(mac string) (string, error) {
	want, err := net.ParseMAC(mac)
	if err != nil {
		return "", fmt.Errorf("match macaddress %q: %v", mac, err)
	}
	dirs, _ := filepath.Glob("/sys/class/net/*/address")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		if hw, err := net.ParseMAC(strings.TrimSpace(string(b))); err == nil && hw.String() == want.String() {
			return filepath.Base(filepath.Dir(d)), nil
		}
	}
	return "", fmt.Errorf("no interface with MAC %s", mac)
}

// report prints the addresses the kernel holds on name and its default routes.
func report(name string) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		fail("interface %s: %v", name, err)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		fail("addresses of %s: %v", name, err)
	}
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil || p.Addr().IsLinkLocalUnicast() {
			continue
		}
		fam := "inet"
		if p.Addr().Is6() {
			fam = "inet6"
		}
		fmt.Printf("GUEST-NET %s %s %s\n", name, fam, p)
	}
	for _, fam := range []string{"-4", "-6"} {
		out, _ := exec.Command("ip", fam, "route", "show", "default").Output()
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if f := strings.Fields(l); len(f) >= 3 && f[0] == "default" && f[1] == "via" {
				fmt.Printf("GUEST-NET %s route%s via %s\n", name, fam[1:], f[2])
			}
		}
	}
}

func ip(args ...string) {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		fail("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
}

func fail(format string, a ...any) {
	fmt.Printf("GUEST-NET-ERROR "+format+"\n", a...)
	os.Exit(1)
}
