package ops

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/agent/internal/hypervisor"
	"github.com/hostplane/hostplane/agent/internal/hypervisor/hvfake"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// lostSignals is the fake hypervisor whose reboot watch never delivers the
// signals named: the guest still reboots on the ACPI request.
type lostSignals struct {
	*hvfake.HV
	event, reset bool
}

func (h lostSignals) RebootDomain(ctx context.Context, name string) (*hypervisor.RebootWatch, error) {
	w, err := h.HV.RebootDomain(ctx, name)
	if err != nil {
		return nil, err
	}
	out := *w
	if h.event {
		out.Event = make(chan struct{})
	}
	if h.reset {
		out.Reset = make(chan struct{})
	}
	return &out, nil
}

// TestRebootSeenThroughEitherSignal: a guest that rebooted on the ACPI request
// is reported as a guest reboot, without a forced reset, when only one of the
// watch's two signals comes (CI once lost libvirt's reboot event: the agent
// reset a guest that had already rebooted and said "reset"); the reset after
// the grace stays for when neither comes, and the result then says so.
func TestRebootSeenThroughEitherSignal(t *testing.T) {
	for _, tc := range []struct {
		name               string
		lostEvent, lostRst bool
		want               string
	}{
		{"libvirt's reboot event lost", true, false, api.NodeRebootGuest},
		{"QEMU's reset event lost", false, true, api.NodeRebootGuest},
		{"both lost", true, true, api.NodeRebootReset},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _, hv := newWithVM1(t)
			logs := &framework.SyncBuilder{}
			m.log = slog.New(slog.NewTextHandler(logs, nil))
			m.hv = lostSignals{HV: hv, event: tc.lostEvent, reset: tc.lostRst}
			op, err := m.Reboot(context.Background(), "vm1", api.NodeStopRequest{OpID: "r1"})
			if err != nil || op.State != api.NodeOpSucceeded {
				t.Fatalf("reboot: %+v %v", op, err)
			}
			resets := hv.Count("ResetDomain")
			switch tc.want {
			case api.NodeRebootGuest:
				if op.Result.RebootMethod != api.NodeRebootGuest || op.Result.PowerMethod != api.NodePowerGraceful || resets != 0 {
					t.Fatalf("a guest reboot with %s: reboot_method %q power_method %q, %d resets (%s)",
						tc.name, op.Result.RebootMethod, op.Result.PowerMethod, resets, op.Result.Message)
				}
			case api.NodeRebootReset:
				if op.Result.RebootMethod != api.NodeRebootReset || op.Result.PowerMethod != api.NodePowerForced || resets != 1 ||
					!strings.Contains(op.Result.Message, "did not restart within 1m0s") {
					t.Fatalf("no signal: reboot_method %q power_method %q, %d resets (%s)",
						op.Result.RebootMethod, op.Result.PowerMethod, resets, op.Result.Message)
				}
			}
			// The log says when the second signal is what recognised the reboot.
			if said := strings.Contains(logs.String(), "reboot event did not come"); said != (tc.lostEvent && !tc.lostRst) {
				t.Fatalf("log says the reboot event was missed: %v, want %v:\n%s", said, tc.lostEvent && !tc.lostRst, logs)
			}
		})
	}
}
