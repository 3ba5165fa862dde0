package ops

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hypervisor"
	"github.com/hostplane/hostplane/agent/internal/hypervisor/hvfake"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// lostSignals is the fake hypervisor whose reboot watch never delivers the
// signals named: the guest still reboots on the ACPI request. With conn the
// watch's libvirt connection has ended (its Lost is closed).
type lostSignals struct {
	*hvfake.HV
	event, reset, conn bool
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
	if h.conn {
		lost := make(chan struct{})
		close(lost)
		out.Lost = lost
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

// TestRebootConnectionLost: when the agent's libvirt connection ends while
// a reboot waits for the guest's reset (libvirtd restarted), neither signal
// can come any more. The reboot fails at once as unavailable, saying that
// whether the guest restarted is not known, without waiting for the grace
// and without a reset (before, it waited out the grace and reset the guest,
// a second reboot if it had rebooted, and said it had not restarted). A
// signal delivered before the connection ended still counts.
func TestRebootConnectionLost(t *testing.T) {
	t.Run("no signal before", func(t *testing.T) {
		m, _, hv := newWithVM1(t)
		m.hv = lostSignals{HV: hv, event: true, reset: true, conn: true}
		start := time.Now()
		op, err := m.Reboot(context.Background(), "vm1", api.NodeStopRequest{OpID: "r1", GraceSeconds: 600})
		if err != nil || op.State != api.NodeOpFailed || op.Error == nil || op.Error.Code != api.NodeErrUnavailable {
			t.Fatalf("reboot on a lost connection: %+v %+v %v", op, op.Result, err)
		}
		for _, want := range []string{"connection to libvirtd was lost", "not known", "not reset", "retry"} {
			if !strings.Contains(op.Error.Message, want) {
				t.Errorf("error %q does not say %q", op.Error.Message, want)
			}
		}
		if n := hv.Count("ResetDomain"); n != 0 {
			t.Errorf("%d resets after the connection was lost", n)
		}
		if el := time.Since(start); el >= 600*time.Millisecond { // 600 s at the fake clock's 1000×
			t.Errorf("the reboot failed after %s, the grace", el)
		}
	})
	t.Run("reboot event before", func(t *testing.T) {
		m, _, hv := newWithVM1(t)
		m.hv = lostSignals{HV: hv, conn: true}
		// The watch's signals and Lost are all closed: every try, whichever
		// the select sees first, is a guest reboot.
		for i := range 20 {
			op, err := m.Reboot(context.Background(), "vm1", api.NodeStopRequest{OpID: fmt.Sprintf("r%d", i)})
			if err != nil || op.State != api.NodeOpSucceeded || op.Result.RebootMethod != api.NodeRebootGuest {
				t.Fatalf("try %d: a guest reboot seen before the connection was lost: %+v %+v %v", i, op, op.Error, err)
			}
		}
		if n := hv.Count("ResetDomain"); n != 0 {
			t.Errorf("%d resets", n)
		}
	})
}
