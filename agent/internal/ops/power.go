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

// Reboot stops (gracefully first, forced after the grace) and starts the VM again.
// A stopped VM is simply started.
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
			method, err := m.stop(ctx, name, grace, req.Force)
			if err != nil {
				return nil, err
			}
			if err := r.step("stopped"); err != nil {
				return nil, err
			}
			if err := m.hv.StartDomain(ctx, name); err != nil {
				return nil, err
			}
			msg := "rebooted: " + stopMessage(method, grace) + ", then started"
			if method == api.NodePowerAlready {
				method, msg = api.NodePowerStarted, "was stopped; started"
			}
			return &api.NodeOpResult{PowerMethod: method, Message: msg}, nil
		},
	})
}
