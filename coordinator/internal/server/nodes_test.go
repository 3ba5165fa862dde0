package server

import (
	"testing"
	"time"
)

// TestNodeSettingsUnsetTakeTheirDefaults: an agent-session setting left out
// or given as 0 or less (--vm-name-prefix: empty) takes its default when the
// configuration is validated; a setting given is kept.
func TestNodeSettingsUnsetTakeTheirDefaults(t *testing.T) {
	d := nodeDefaults()
	for _, unset := range []NodeConfig{
		{},
		{PingInterval: -time.Second, Grace: -1, CertTTL: -time.Hour, ActionDeadline: -1, CleanupRetryBase: -time.Minute,
			HostingUsageInterval: -time.Second, CPUOvercommit: -0.5},
	} {
		c := unset
		if err := c.validate(); err != nil {
			t.Fatalf("validate(%+v): %v", unset, err)
		}
		if c.PingInterval != d.PingInterval || c.Grace != d.Grace || c.CertTTL != d.CertTTL || c.ActionDeadline != d.ActionDeadline ||
			c.CleanupRetryBase != d.CleanupRetryBase || c.HostingUsageInterval != d.HostingUsageInterval || c.VMPrefix != d.VMPrefix ||
			c.CPUOvercommit != d.CPUOvercommit {
			t.Errorf("validate(%+v) left %+v; want every unset setting at its default %+v", unset, c, d)
		}
	}

	given := NodeConfig{PingInterval: 2 * time.Second, Grace: 7 * time.Second, CertTTL: 2 * time.Hour, ActionDeadline: 3 * time.Minute,
		CleanupRetryBase: 5 * time.Second, HostingUsageInterval: 90 * time.Second, VMPrefix: "t-", CPUOvercommit: 1.5}
	c := given
	if err := c.validate(); err != nil {
		t.Fatalf("validate(%+v): %v", given, err)
	}
	c.rt = nil
	if c != given {
		t.Errorf("validate(%+v) changed given settings to %+v", given, c)
	}
}
