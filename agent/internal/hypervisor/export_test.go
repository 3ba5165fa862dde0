package hypervisor

import "context"

// WatchReset opens domain name's reboot watch without asking for a reboot:
// RebootDomain's first half, for tests.
func (l *Libvirt) WatchReset(ctx context.Context, name string) (*RebootWatch, error) {
	lv, d, err := l.lookup(ctx, "reboot", name)
	if err != nil {
		return nil, err
	}
	return l.watchReset(lv, d)
}
