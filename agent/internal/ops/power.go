package ops

import (
	"context"
	"fmt"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hypervisor"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

// Start starts a VM; a running VM is success.
func (m *Manager) Start(ctx context.Context, name string, req api.NodeOpRequest) (*api.NodeOperation, error) {
	if err := validate.Name("vm", name); err != nil {
		return nil, err
	}
	return m.do(ctx, m.vmSpec(api.NodeOpStart, name, req.OpID, req,
		func(ctx context.Context) (*api.NodeOpResult, error) {
			started, err := m.startIfStopped(ctx, name)
			if err != nil {
				return nil, err
			}
			if !started {
				return &api.NodeOpResult{PowerMethod: api.NodePowerAlready, Message: "already running"}, nil
			}
			return &api.NodeOpResult{PowerMethod: api.NodePowerStarted, Message: "started"}, nil
		}))
}

// vmSpec is the spec of a power operation of kind on the existing VM name;
// input is the request, stored as it is (power requests hold no secret).
func (m *Manager) vmSpec(kind, name, opID string, input any, exec func(ctx context.Context) (*api.NodeOpResult, error)) spec {
	return spec{
		id: opID, kind: kind, target: name, lock: "vm/" + name, input: input, stored: input,
		precheck: func(context.Context) error { _, err := m.getVM(name); return err },
		exec:     func(ctx context.Context, _ *run) (*api.NodeOpResult, error) { return exec(ctx) },
	}
}

// startIfStopped starts the VM's domain unless it is running; started says
// whether it had to.
func (m *Manager) startIfStopped(ctx context.Context, name string) (started bool, err error) {
	st, err := m.hv.DomainState(ctx, name)
	if err != nil {
		return false, err
	}
	if st.Active() {
		return false, nil
	}
	if err := m.hv.StartDomain(ctx, name); err != nil {
		return false, err
	}
	return true, nil
}

// stopGrace checks the VM name and then the grace of a stop or reboot request.
func (m *Manager) stopGrace(name string, req api.NodeStopRequest) (time.Duration, error) {
	if err := validate.Name("vm", name); err != nil {
		return 0, err
	}
	return m.grace(req)
}

func (m *Manager) grace(req api.NodeStopRequest) (time.Duration, error) {
	if req.GraceSeconds < 0 || req.GraceSeconds > 3600 {
		return 0, fmt.Errorf("%w: grace %d s out of range 0-3600", validate.ErrInvalid, req.GraceSeconds)
	}
	if req.GraceSeconds == 0 {
		return m.cfg.StopGrace, nil
	}
	return time.Duration(req.GraceSeconds) * time.Second, nil
}

// Stop shuts a VM down: ACPI power button, wait up to the grace, then force off.
func (m *Manager) Stop(ctx context.Context, name string, req api.NodeStopRequest) (*api.NodeOperation, error) {
	grace, err := m.stopGrace(name, req)
	if err != nil {
		return nil, err
	}
	return m.do(ctx, m.vmSpec(api.NodeOpStop, name, req.OpID, req,
		func(ctx context.Context) (*api.NodeOpResult, error) {
			method, err := m.stop(ctx, name, grace, req.Force)
			if err != nil {
				return nil, err
			}
			return &api.NodeOpResult{PowerMethod: method, Message: stopMessage(method, grace)}, nil
		}))
}

func stopMessage(method string, grace time.Duration) string {
	switch method {
	case api.NodePowerGraceful:
		return "shut down gracefully (ACPI)"
	case api.NodePowerForced:
		return fmt.Sprintf("forced off: the guest did not shut down within %s of the ACPI request", grace)
	}
	return "already stopped"
}

// stop returns graceful, forced or already.
func (m *Manager) stop(ctx context.Context, name string, grace time.Duration, force bool) (string, error) {
	st, err := m.hv.DomainState(ctx, name)
	if err != nil {
		return "", err
	}
	if !st.Active() {
		return api.NodePowerAlready, nil
	}
	if !force {
		if err := m.hv.ShutdownDomain(ctx, name); err != nil {
			return "", err
		}
		deadline := m.clock.After(grace)
		for {
			st, err := m.hv.DomainState(ctx, name)
			if err != nil {
				return "", err
			}
			if !st.Active() {
				return api.NodePowerGraceful, nil
			}
			select {
			case <-deadline:
				goto forced
			case <-ctx.Done():
				return "", ctx.Err()
			case <-m.clock.After(m.cfg.PollInterval):
			}
		}
	}
forced:
	if err := m.hv.DestroyDomain(ctx, name); err != nil {
		return "", err
	}
	// The guest may have finished its shutdown in the last instant.
	return api.NodePowerForced, nil
}

// Reboot reboots a running VM inside its QEMU process: the guest is asked through
// the ACPI power button (libvirt's guest reboot) and, if it has not reset within
// the grace, it gets a hardware reset. Force resets at once. A stopped VM is
// simply started. The result's RebootMethod says which of the three it was.
func (m *Manager) Reboot(ctx context.Context, name string, req api.NodeStopRequest) (*api.NodeOperation, error) {
	grace, err := m.stopGrace(name, req)
	if err != nil {
		return nil, err
	}
	return m.do(ctx, m.vmSpec(api.NodeOpReboot, name, req.OpID, req,
		func(ctx context.Context) (*api.NodeOpResult, error) {
			started, err := m.startIfStopped(ctx, name)
			if err != nil {
				return nil, err
			}
			if started {
				return &api.NodeOpResult{PowerMethod: api.NodePowerStarted, RebootMethod: api.NodeRebootStarted,
					Message: "was stopped: started (a fresh boot, not a reboot)"}, nil
			}
			how, err := m.reboot(ctx, name, grace, req.Force)
			if err != nil {
				return nil, err
			}
			if how == api.NodeRebootGuest {
				return &api.NodeOpResult{PowerMethod: api.NodePowerGraceful, RebootMethod: how,
					Message: "rebooted: the guest restarted on the ACPI request (same QEMU process)"}, nil
			}
			msg := fmt.Sprintf("rebooted: forced reset, the guest did not restart within %s of the ACPI request (same QEMU process)", grace)
			if req.Force {
				msg = "rebooted: forced reset (same QEMU process)"
			}
			return &api.NodeOpResult{PowerMethod: api.NodePowerForced, RebootMethod: how, Message: msg}, nil
		}))
}

// rebootEventLag is how long, after QEMU's reset event, libvirt's reboot event
// may take before its absence is logged. libvirt queues the two together
// (the monitor event first), so it follows within milliseconds.
const rebootEventLag = 2 * time.Second

// reboot returns NodeRebootGuest or NodeRebootReset. The guest has rebooted
// when either of the watch's two signals comes (RebootWatch); only when
// neither comes within the grace is it reset. When the libvirt connection
// ends first, the reboot fails (unavailable) at once, without a reset:
// whether the guest rebooted cannot be known any more, and a reset after the
// grace could be a second reboot of a guest that had done it; the caller
// retries, on the agent's new connection.
func (m *Manager) reboot(ctx context.Context, name string, grace time.Duration, force bool) (string, error) {
	if !force {
		w, err := m.hv.RebootDomain(ctx, name)
		if err != nil {
			return "", err
		}
		defer w.Stop()
		select {
		case <-w.Event:
			return api.NodeRebootGuest, nil
		case <-w.Reset:
			// Say so when libvirt's reboot event is missing (issue 10 item 9):
			// this signal is what recognised the reboot.
			select {
			case <-w.Event:
			case <-w.Lost:
			case <-m.clock.After(rebootEventLag):
				m.log.Warn("reboot: libvirt's reboot event did not come, QEMU's reset event did: the guest rebooted",
					"vm", name, "waited", rebootEventLag)
			case <-ctx.Done():
			}
			return api.NodeRebootGuest, nil
		case <-w.Lost:
			// A signal delivered before the connection ended is closed
			// before Lost; select picks among ready cases at random.
			select {
			case <-w.Event:
				return api.NodeRebootGuest, nil
			case <-w.Reset:
				return api.NodeRebootGuest, nil
			default:
			}
			return "", fmt.Errorf("reboot %s: %w while waiting for the guest to restart: whether it restarted is not known, it was not reset; retry the reboot",
				name, hypervisor.ErrConnectionLost)
		case <-m.clock.After(grace):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if err := m.hv.ResetDomain(ctx, name); err != nil {
		return "", err
	}
	return api.NodeRebootReset, nil
}
