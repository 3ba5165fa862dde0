package ops

import (
	"context"
	"fmt"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

// Start starts a VM; a running VM is success.
func (m *Manager) Start(ctx context.Context, name string, req api.NodeOpRequest) (*api.NodeOperation, error) {
	if err := validate.Name("vm", name); err != nil {
		return nil, err
	}
	return m.do(ctx, spec{
		id: req.OpID, kind: api.NodeOpStart, target: name, lock: "vm/" + name, input: req, stored: req,
		precheck: func(context.Context) error { _, err := m.getVM(name); return err },
		exec: func(ctx context.Context, r *run) (*api.NodeOpResult, error) {
			st, err := m.hv.DomainState(ctx, name)
			if err != nil {
				return nil, err
			}
			if st.Active() {
				return &api.NodeOpResult{PowerMethod: api.NodePowerAlready, Message: "already running"}, nil
			}
			if err := m.hv.StartDomain(ctx, name); err != nil {
				return nil, err
			}
			return &api.NodeOpResult{PowerMethod: api.NodePowerStarted, Message: "started"}, nil
		},
	})
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
	if err := validate.Name("vm", name); err != nil {
		return nil, err
	}
	grace, err := m.grace(req)
	if err != nil {
		return nil, err
	}
	return m.do(ctx, spec{
		id: req.OpID, kind: api.NodeOpStop, target: name, lock: "vm/" + name, input: req, stored: req,
		precheck: func(context.Context) error { _, err := m.getVM(name); return err },
		exec: func(ctx context.Context, r *run) (*api.NodeOpResult, error) {
			method, err := m.stop(ctx, name, grace, req.Force)
			if err != nil {
				return nil, err
			}
			return &api.NodeOpResult{PowerMethod: method, Message: stopMessage(method, grace)}, nil
		},
	})
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
// simply started.
func (m *Manager) Reboot(ctx context.Context, name string, req api.NodeStopRequest) (*api.NodeOperation, error) {
	if err := validate.Name("vm", name); err != nil {
		return nil, err
	}
	grace, err := m.grace(req)
	if err != nil {
		return nil, err
	}
	return m.do(ctx, spec{
		id: req.OpID, kind: api.NodeOpReboot, target: name, lock: "vm/" + name, input: req, stored: req,
		precheck: func(context.Context) error { _, err := m.getVM(name); return err },
		exec: func(ctx context.Context, r *run) (*api.NodeOpResult, error) {
			st, err := m.hv.DomainState(ctx, name)
			if err != nil {
				return nil, err
			}
			if !st.Active() {
				if err := m.hv.StartDomain(ctx, name); err != nil {
					return nil, err
				}
				return &api.NodeOpResult{PowerMethod: api.NodePowerStarted, Message: "was stopped; started"}, nil
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
		},
	})
}

// reboot returns NodeRebootGuest or NodeRebootReset.
func (m *Manager) reboot(ctx context.Context, name string, grace time.Duration, force bool) (string, error) {
	if !force {
		reset, stop, err := m.hv.RebootDomain(ctx, name)
		if err != nil {
			return "", err
		}
		defer stop()
		select {
		case <-reset:
			return api.NodeRebootGuest, nil
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
