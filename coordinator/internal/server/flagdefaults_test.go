package server

import (
	"testing"

	"github.com/spf13/pflag"
)

// TestZeroSectionsBindTheirDefaults: the sections Defaults() leaves zero
// (Nodes), or that a Config built in code leaves zero, are filled before
// their flags are bound, so --help and a flag left out show the same
// default that validate would fill in.
func TestZeroSectionsBindTheirDefaults(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	var c Config
	BindFlags(fs, &c)
	n, r, a, w := nodeDefaults(), rdnsDefaults(), acmeDefaults(), webhookDefaults()
	for flag, want := range map[string]string{
		"agent-ping-interval": n.PingInterval.String(), "agent-grace": n.Grace.String(), "agent-cert-ttl": n.CertTTL.String(),
		"action-deadline": n.ActionDeadline.String(), "cleanup-retry-base": n.CleanupRetryBase.String(),
		"hosting-usage-interval": n.HostingUsageInterval.String(), "vm-name-prefix": n.VMPrefix, "cpu-overcommit": "4",
		"pdns-server-id": r.ServerID, "pdns-ptr-ttl": "3600", "pdns-resync-interval": r.Resync.String(),
		"pdns-retry-max": r.RetryMax.String(), "acme-interval": a.Interval.String(), "webhook-retry-max": w.RetryMax.String(),
	} {
		f := fs.Lookup(flag)
		if f == nil {
			t.Errorf("no flag --%s", flag)
			continue
		}
		if f.DefValue != want {
			t.Errorf("--%s of a zero Config shows the default %q, want %q", flag, f.DefValue, want)
		}
	}
	// What was bound is what validate fills in: filling again changes nothing.
	nodes, rd, acme := c.Nodes, c.RDNS, c.ACME
	c.Nodes.fillDefaults()
	c.RDNS.fillDefaults()
	c.ACME.fillDefaults()
	if c.Nodes.PingInterval != nodes.PingInterval || c.Nodes.VMPrefix != nodes.VMPrefix || c.RDNS != rd || c.ACME.Interval != acme.Interval {
		t.Errorf("bound settings differ from filled ones: %+v %+v %+v", nodes, rd, acme)
	}
}
