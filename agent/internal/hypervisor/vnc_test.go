package hypervisor

import (
	"strings"
	"testing"
)

func TestDomainXMLVNCOnLoopback(t *testing.T) {
	x, err := DomainXML(DomainSpec{Type: "qemu", Name: "hp-console", MemoryMiB: 64, VCPUs: 1, Machine: "pc", Network: "user",
		DiskPath: "/p/d.qcow2", ConsoleLog: "/p/c.log", MAC: "52:54:00:00:00:01"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(x, `<graphics type="vnc" autoport="yes" listen="127.0.0.1">`) || !strings.Contains(x, `<listen type="address" address="127.0.0.1"></listen>`) {
		t.Fatalf("domain XML has no loopback VNC display:\n%s", x)
	}
	// libvirt fills the port in the live XML once the domain runs.
	live := strings.Replace(x, `autoport="yes"`, `port="5901" autoport="yes"`, 1)
	if addr, err := ParseVNCAddress(live); err != nil || addr != "127.0.0.1:5901" {
		t.Fatalf("ParseVNCAddress: %q, %v", addr, err)
	}
	for name, bad := range map[string]string{
		"not running":   x,
		"public listen": strings.ReplaceAll(live, "127.0.0.1", "0.0.0.0"),
		"no display":    strings.Replace(live, `type="vnc"`, `type="spice"`, 1),
		"not xml":       "<domain",
	} {
		if addr, err := ParseVNCAddress(bad); err == nil {
			t.Errorf("%s: %q accepted", name, addr)
		}
	}
}

// TestParseDomainWithoutDevicesOrXML: a domain with no devices has no vda
// disk and no VNC display, each refused naming the domain; text that is not
// domain XML is a parse error to both.
func TestParseDomainWithoutDevicesOrXML(t *testing.T) {
	bare := `<domain type="qemu"><name>hp-bare</name></domain>`
	if p, err := ParseDomainDisk(bare); err == nil || !strings.Contains(err.Error(), "hp-bare: no vda disk") {
		t.Errorf("ParseDomainDisk of a domain without devices: %q, %v", p, err)
	}
	if addr, err := ParseVNCAddress(bare); err == nil || !strings.Contains(err.Error(), "domain hp-bare has no VNC display") {
		t.Errorf("ParseVNCAddress of a domain without devices: %q, %v", addr, err)
	}
	for name, parse := range map[string]func(string) (string, error){"ParseDomainDisk": ParseDomainDisk, "ParseVNCAddress": ParseVNCAddress} {
		if v, err := parse("<domain"); err == nil || !strings.HasPrefix(err.Error(), "parse domain xml: ") {
			t.Errorf("%s of broken XML: %q, %v", name, v, err)
		}
	}
}
