package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"
)

// domainRoundTrip is spec's domain XML and what libvirtxml reads back from
// it, failing t when either step fails.
func domainRoundTrip(t *testing.T, spec DomainSpec) (libvirtxml.Domain, string) {
	t.Helper()
	x, err := DomainXML(spec)
	if err != nil {
		t.Fatal(err)
	}
	var d libvirtxml.Domain
	if err := d.Unmarshal(x); err != nil {
		t.Fatalf("round trip: %v\n%s", err, x)
	}
	return d, x
}

func TestDomainXMLEscapes(t *testing.T) {
	// Names are validated upstream; this shows libvirtxml escapes whatever reaches it.
	spec := DomainSpec{Name: `x'"<>&]]>`, Type: "qemu", Machine: "pc", Emulator: "/usr/bin/qemu-system-x86_64", VCPUs: 2, MemoryMiB: 256,
		Kernel: "/k", Initrd: "/i", Cmdline: `console=ttyS0 a="<b>&c"`, DiskPath: "/p/d.qcow2", SeedPath: "/p/s.iso",
		MAC: "52:54:00:00:00:01", Network: "bridge:br0", ConsoleLog: "/l/c.log", GuestAgent: true}
	d, x := domainRoundTrip(t, spec)
	if d.Name != spec.Name || d.OS.Cmdline != spec.Cmdline || d.Type != "qemu" || d.VCPU.Value != 2 || d.Memory.Value != 256 {
		t.Fatalf("round trip changed values: %+v", d)
	}
	if len(d.Devices.Disks) != 2 || d.Devices.Disks[1].Device != "cdrom" || d.Devices.Disks[1].ReadOnly == nil {
		t.Fatalf("disks: %+v", d.Devices.Disks)
	}
	if d.Devices.Interfaces[0].Source.Bridge.Bridge != "br0" || len(d.Devices.Channels) != 1 {
		t.Fatal("interface or guest agent channel missing")
	}
	// The guest reports its memory through a virtio balloon (ParseStats).
	if b := d.Devices.MemBalloon; b == nil || b.Model != "virtio" || b.Stats == nil || b.Stats.Period != BalloonStatsPeriod {
		t.Fatalf("memballoon: %+v", b)
	}
	if p, err := ParseDomainDisk(x); err != nil || p != "/p/d.qcow2" {
		t.Fatalf("ParseDomainDisk: %q %v", p, err)
	}
	if _, err := DomainXML(DomainSpec{Name: "a", Network: "tap:x"}); err == nil {
		t.Fatal("unknown network accepted")
	}
}

func TestTranslate(t *testing.T) {
	cases := []struct {
		err  error
		kind error
	}{
		{libvirt.Error{Code: uint32(libvirt.ErrNoDomain), Message: "Domain not found"}, ErrNotFound},
		{libvirt.Error{Code: uint32(libvirt.ErrStorageVolExist), Message: "storage volume 'x' exists already"}, ErrExists},
		{libvirt.Error{Code: uint32(libvirt.ErrOperationFailed), Message: "domain 'x' already exists with uuid"}, ErrExists},
		{libvirt.Error{Code: uint32(libvirt.ErrOperationTimeout), Message: "Timed out during operation: cannot acquire state change lock (held by monitor=remoteDispatchDomainCreate)"}, ErrBusy},
		{libvirt.Error{Code: uint32(libvirt.ErrInternalError), Message: "cannot write: No space left on device"}, ErrNoSpace},
		{libvirt.Error{Code: uint32(libvirt.ErrAgentUnresponsive), Message: "Guest agent is not responding"}, ErrGuestAgent},
		{libvirt.Error{Code: uint32(libvirt.ErrInternalError), Message: "something odd"}, ErrHypervisor},
		{libvirt.ErrInterrupted, ErrUnavailable},              // the connection ended during the call
		{fmt.Errorf("x: %w", syscall.EINVAL), ErrUnavailable}, // go-libvirt's answer on a closed connection
	}
	for _, c := range cases {
		e := Translate("op", "res", c.err)
		if !errors.Is(e, c.kind) {
			t.Errorf("Translate(%v) = %v, want %v", c.err, e, c.kind)
		}
		if strings.Contains(e.Error(), "remoteDispatch") {
			t.Errorf("libvirt detail leaked into the message: %s", e)
		}
		var he *Error
		if !errors.As(e, &he) || he.Detail == "" {
			t.Errorf("detail not kept for the log: %#v", e)
		}
	}
}

func TestDetectDomainType(t *testing.T) {
	dir := t.TempDir()
	cpu := filepath.Join(dir, "cpuinfo")
	kvm := filepath.Join(dir, "kvm")
	os.WriteFile(kvm, nil, 0o600)
	os.WriteFile(cpu, []byte("processor\t: 0\nflags\t\t: fpu sse2 hypervisor\n"), 0o600)
	if got := DetectDomainType(cpu, kvm); got != "qemu" {
		t.Errorf("no vmx/svm: %s", got)
	}
	os.WriteFile(cpu, []byte("flags\t\t: fpu vmx sse2\n"), 0o600)
	if got := DetectDomainType(cpu, kvm); got != "kvm" {
		t.Errorf("vmx + usable kvm: %s", got)
	}
	if got := DetectDomainType(cpu, filepath.Join(dir, "missing")); got != "qemu" {
		t.Errorf("vmx without /dev/kvm: %s", got)
	}
}

func TestParseStats(t *testing.T) {
	p := func(f string, v any) libvirt.TypedParam {
		return libvirt.TypedParam{Field: f, Value: libvirt.TypedParamValue{I: v}}
	}
	s := ParseStats("a", []libvirt.TypedParam{p("state.state", int32(1)), p("cpu.time", uint64(5e9)), p("balloon.current", uint64(1024)),
		p("balloon.rss", uint64(2048)), p("block.0.rd.bytes", uint64(10)), p("block.1.rd.bytes", uint64(5)), p("block.0.wr.bytes", uint64(7)),
		p("net.0.rx.bytes", uint64(100)), p("net.0.tx.bytes", uint64(50)), p("vcpu.current", uint32(2))})
	// No guest figures, QEMU's resident set above the guest's memory: the
	// guest's memory (the smaller), not QEMU's overhead.
	if s.State != StateRunning || s.CPUTimeNs != 5e9 || s.MemoryBytes != 1024*1024 || s.MemorySource != MemoryHost || s.DiskReadBytes != 15 || s.DiskWriteBytes != 7 || s.NetRxBytes != 100 || s.NetTxBytes != 50 || s.VCPUs != 2 {
		t.Fatalf("%+v", s)
	}
}

// TestParseStatsMemory: the memory figure is the guest's own when its balloon
// driver reports one, else the smaller of QEMU's resident set and the guest's
// memory; never more than the domain's maximum memory.
func TestParseStatsMemory(t *testing.T) {
	const MiB = 1024 // libvirt's balloon figures are KiB
	for _, c := range []struct {
		name   string
		fields map[string]uint64
		want   uint64 // MiB
		source MemorySource
	}{
		{"guest total minus available", map[string]uint64{"current": 256 * MiB, "maximum": 256 * MiB, "rss": 341 * MiB,
			"available": 240 * MiB, "unused": 150 * MiB, "usable": 200 * MiB}, 40, MemoryBalloon},
		{"guest total minus free without available", map[string]uint64{"current": 256 * MiB, "maximum": 256 * MiB, "rss": 341 * MiB,
			"available": 240 * MiB, "unused": 150 * MiB}, 90, MemoryBalloon},
		{"no balloon: rss above memory", map[string]uint64{"current": 256 * MiB, "maximum": 256 * MiB, "rss": 341 * MiB}, 256, MemoryHost},
		{"no balloon: rss below memory", map[string]uint64{"current": 256 * MiB, "maximum": 256 * MiB, "rss": 100 * MiB}, 100, MemoryHost},
		{"no rss", map[string]uint64{"current": 256 * MiB, "maximum": 256 * MiB}, 256, MemoryHost},
		{"only rss, capped by maximum", map[string]uint64{"maximum": 256 * MiB, "rss": 341 * MiB}, 256, MemoryHost},
		{"guest total above maximum", map[string]uint64{"current": 256 * MiB, "maximum": 256 * MiB, "rss": 341 * MiB,
			"available": 4096 * MiB, "usable": 0}, 256, MemoryBalloon},
		{"guest free above total: host figure", map[string]uint64{"current": 256 * MiB, "maximum": 256 * MiB, "rss": 341 * MiB,
			"available": 100 * MiB, "unused": 200 * MiB}, 256, MemoryHost},
		{"guest available above total: host figure", map[string]uint64{"current": 256 * MiB, "maximum": 256 * MiB, "rss": 120 * MiB,
			"available": 100 * MiB, "unused": 50 * MiB, "usable": 200 * MiB}, 120, MemoryHost},
		{"nothing", map[string]uint64{}, 0, MemoryHost},
	} {
		var params []libvirt.TypedParam
		for f, v := range c.fields {
			params = append(params, libvirt.TypedParam{Field: "balloon." + f, Value: libvirt.TypedParamValue{I: v}})
		}
		s := ParseStats("a", params)
		if s.MemoryBytes != c.want<<20 || s.MemorySource != c.source {
			t.Errorf("%s: memory %d MiB (%d bytes) from %s, want %d MiB from %s", c.name, s.MemoryBytes>>20, s.MemoryBytes, s.MemorySource, c.want, c.source)
		}
	}
}

// qemuImgInfo is `qemu-img info -U --output=json` of an image with two snapshots,
// the second with 8 GiB of saved VM state.
const qemuImgInfo = `{"snapshots": [
 {"icount": 0, "vm-clock-nsec": 0, "name": "s1", "date-sec": 1700000000, "date-nsec": 0, "vm-clock-sec": 0, "id": "1", "vm-state-size": 4294967296},
 {"icount": 0, "vm-clock-nsec": 0, "name": "second", "date-sec": 1700000001, "date-nsec": 0, "vm-clock-sec": 9, "id": "2", "vm-state-size": 8589934592}],
 "virtual-size": 16777216, "filename": "/p/d.qcow2", "cluster-size": 65536, "format": "qcow2", "dirty-flag": false}`

func TestParseQcow2Snapshots(t *testing.T) {
	s, err := ParseQemuImgSnapshots([]byte(qemuImgInfo))
	if err != nil || len(s) != 2 || s[0].Name != "s1" || s[1].Name != "second" || s[1].VMStateSize != 2<<32 || s[0].DateSec != 1700000000 {
		t.Fatalf("%+v %v", s, err)
	}
	if _, err := ParseQemuImgSnapshots([]byte(`{"format": "raw"}`)); err == nil {
		t.Fatal("a raw image was taken for qcow2")
	}
}

// TestReadQcow2SnapshotsQemuImg runs the real qemu-img on an image with two
// disk-only snapshots.
func TestReadQcow2SnapshotsQemuImg(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatal("qemu-img not found: run scripts/install-libvirt.sh (qemu-utils)")
	}
	p := filepath.Join(t.TempDir(), "d.qcow2")
	for _, args := range [][]string{{"create", "-q", "-f", "qcow2", p, "16M"}, {"snapshot", "-c", "s1", p}, {"snapshot", "-c", "second", p}} {
		if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img %v: %v %s", args, err, out)
		}
	}
	s, err := ReadQcow2Snapshots(context.Background(), p)
	if err != nil || len(s) != 2 || s[0].Name != "s1" || s[1].Name != "second" || s[0].VMStateSize != 0 || s[0].DateSec == 0 {
		t.Fatalf("%+v %v", s, err)
	}
	if _, err := ReadQcow2Snapshots(context.Background(), filepath.Join(t.TempDir(), "missing.qcow2")); err == nil {
		t.Fatal("no error for a missing image")
	}
}

func FuzzParseQcow2Snapshots(f *testing.F) {
	f.Add([]byte(qemuImgInfo))
	f.Add([]byte(`{"format":"qcow2","snapshots":[{}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseQemuImgSnapshots(b)
	})
}
