package hypervisor

import (
	"fmt"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// DomainXML renders spec as libvirt domain XML through libvirtxml; no XML is
// assembled from strings, so no value can escape its element.
func DomainXML(spec DomainSpec) (string, error) {
	d := &libvirtxml.Domain{
		Type:   spec.Type,
		Name:   spec.Name,
		UUID:   spec.UUID,
		Memory: &libvirtxml.DomainMemory{Value: uint(spec.MemoryMiB), Unit: "MiB"},
		VCPU:   &libvirtxml.DomainVCPU{Value: uint(spec.VCPUs)},
		OS: &libvirtxml.DomainOS{
			Type: &libvirtxml.DomainOSType{Arch: "x86_64", Machine: spec.Machine, Type: "hvm"},
		},
		Features:   &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}, APIC: &libvirtxml.DomainFeatureAPIC{}},
		OnPoweroff: "destroy",
		OnReboot:   "restart",
		OnCrash:    "destroy",
		Devices:    &libvirtxml.DomainDeviceList{Emulator: spec.Emulator},
	}
	if spec.Kernel != "" {
		d.OS.Kernel, d.OS.Initrd, d.OS.Cmdline = spec.Kernel, spec.Initrd, spec.Cmdline
	} else {
		d.OS.BootDevices = []libvirtxml.DomainBootDevice{{Dev: "hd"}}
	}
	dev := d.Devices
	dev.Disks = append(dev.Disks, libvirtxml.DomainDisk{
		Device: "disk",
		Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "qcow2", Discard: "unmap"},
		Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: spec.DiskPath}},
		Target: &libvirtxml.DomainDiskTarget{Dev: "vda", Bus: "virtio"},
	})
	if spec.SeedPath != "" {
		tdev, bus := SeedTarget(spec.Machine)
		dev.Disks = append(dev.Disks, libvirtxml.DomainDisk{
			Device:   "cdrom",
			Driver:   &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw"},
			Source:   &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: spec.SeedPath}},
			Target:   &libvirtxml.DomainDiskTarget{Dev: tdev, Bus: bus},
			ReadOnly: &libvirtxml.DomainDiskReadOnly{},
		})
	}
	iface := libvirtxml.DomainInterface{
		MAC:   &libvirtxml.DomainInterfaceMAC{Address: spec.MAC},
		Model: &libvirtxml.DomainInterfaceModel{Type: "virtio"},
	}
	switch kind, name, _ := strings.Cut(spec.Network, ":"); kind {
	case "user":
		iface.Source = &libvirtxml.DomainInterfaceSource{User: &libvirtxml.DomainInterfaceSourceUser{}}
	case "network":
		iface.Source = &libvirtxml.DomainInterfaceSource{Network: &libvirtxml.DomainInterfaceSourceNetwork{Network: name}}
	case "bridge":
		iface.Source = &libvirtxml.DomainInterfaceSource{Bridge: &libvirtxml.DomainInterfaceSourceBridge{Bridge: name}}
	default:
		return "", fmt.Errorf("domain xml %s: unknown network %q", spec.Name, spec.Network)
	}
	if f := spec.Filter; f != nil {
		iface.FilterRef = &libvirtxml.DomainInterfaceFilterRef{Filter: f.Name}
		for _, p := range f.Params {
			iface.FilterRef.Parameters = append(iface.FilterRef.Parameters, libvirtxml.DomainInterfaceFilterParam{Name: p.Name, Value: p.Value})
		}
	}
	dev.Interfaces = append(dev.Interfaces, iface)
	dev.Serials = append(dev.Serials, libvirtxml.DomainSerial{
		Source: &libvirtxml.DomainChardevSource{File: &libvirtxml.DomainChardevSourceFile{Path: spec.ConsoleLog, Append: "on"}},
	})
	if spec.GuestAgent {
		dev.Channels = append(dev.Channels, libvirtxml.DomainChannel{
			Source: &libvirtxml.DomainChardevSource{UNIX: &libvirtxml.DomainChardevSourceUNIX{Mode: "bind"}},
			Target: &libvirtxml.DomainChannelTarget{VirtIO: &libvirtxml.DomainChannelTargetVirtIO{Name: "org.qemu.guest_agent.0"}},
		})
	}
	// The browser console: VNC on the host's loopback only, on a port libvirt
	// picks; the agent's console listener bridges to it (no VNC password: only
	// local processes can reach it, and the console token is the credential).
	dev.Graphics = append(dev.Graphics, libvirtxml.DomainGraphic{VNC: &libvirtxml.DomainGraphicVNC{
		AutoPort: "yes", Listen: vncListen,
		Listeners: []libvirtxml.DomainGraphicListener{{Address: &libvirtxml.DomainGraphicListenerAddress{Address: vncListen}}},
	}})
	// A virtio balloon for the guest's own memory figures (ParseStats): the
	// guest's driver reports them every BalloonStatsPeriod seconds. The agent
	// never resizes the balloon; see MemoryBalloon in hypervisor.go.
	dev.MemBalloon = &libvirtxml.DomainMemBalloon{Model: "virtio", Stats: &libvirtxml.DomainMemBalloonStats{Period: BalloonStatsPeriod}}
	s, err := d.Marshal()
	if err != nil {
		return "", fmt.Errorf("domain xml %s: %w", spec.Name, err)
	}
	return s, nil
}

// SeedTarget is the cdrom device name and bus for a machine type: IDE on i440fx
// ("pc"), SATA on q35.
func SeedTarget(machine string) (dev, bus string) {
	if strings.HasPrefix(machine, "q35") || strings.Contains(machine, "-q35") {
		return "sda", "sata"
	}
	return "hdc", "ide"
}

// ParseDomainDisk returns the file behind vda in a domain's XML.
func ParseDomainDisk(xml string) (string, error) {
	d, err := parseDomainXML(xml)
	if err != nil {
		return "", err
	}
	for _, disk := range d.Devices.Disks {
		if disk.Target != nil && disk.Target.Dev == "vda" && disk.Source != nil && disk.Source.File != nil {
			return disk.Source.File.File, nil
		}
	}
	return "", fmt.Errorf("parse domain xml %s: no vda disk", d.Name)
}

// parseDomainXML reads a domain's XML (ParseDomainDisk, ParseVNCAddress); a
// domain without devices gets an empty device list.
func parseDomainXML(xml string) (*libvirtxml.Domain, error) {
	var d libvirtxml.Domain
	if err := d.Unmarshal(xml); err != nil {
		return nil, fmt.Errorf("parse domain xml: %w", err)
	}
	if d.Devices == nil {
		d.Devices = &libvirtxml.DomainDeviceList{}
	}
	return &d, nil
}
