package hypervisor

import (
	"context"
	"fmt"
	"net"
	"strconv"
)

// vncListen is the only address guests' VNC displays listen on.
const vncListen = "127.0.0.1"

// ParseVNCAddress returns host:port of the VNC display in a running domain's
// live XML. A display on another address than loopback is refused: the
// console bridge must never reach outside the host.
func ParseVNCAddress(xml string) (string, error) {
	d, err := parseDomainXML(xml)
	if err != nil {
		return "", err
	}
	for _, g := range d.Devices.Graphics {
		if g.VNC == nil {
			continue
		}
		if g.VNC.Port <= 0 {
			return "", fmt.Errorf("domain %s: its VNC display has no port (not running?)", d.Name)
		}
		host := g.VNC.Listen
		for _, l := range g.VNC.Listeners {
			if l.Address != nil && l.Address.Address != "" {
				host = l.Address.Address
			}
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return "", fmt.Errorf("domain %s: its VNC display listens on %q, not on loopback", d.Name, host)
		}
		return net.JoinHostPort(host, strconv.Itoa(g.VNC.Port)), nil
	}
	return "", fmt.Errorf("domain %s has no VNC display (defined before consoles existed?)", d.Name)
}

// VNCAddress returns host:port of a running domain's VNC display.
func (l *Libvirt) VNCAddress(ctx context.Context, name string) (string, error) {
	lv, d, err := l.lookup(ctx, "vnc display", name)
	if err != nil {
		return "", err
	}
	x, err := lv.DomainGetXMLDesc(d, 0)
	if err != nil {
		return "", l.translate("vnc display", name, err)
	}
	return ParseVNCAddress(x)
}
