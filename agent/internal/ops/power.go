package ops

import (
	"context"
	"errors"
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
//
// A reboot never ends with the request outstanding in libvirt unless the
// agent stops meanwhile (then its restart finishes it, Recover): libvirt
// keeps a guest reboot's "fake reboot" flag until the domain resets, and a
// guest that did not act on the button would restart on its next shutdown,
// the customer's own poweroff days later, instead of stopping. So the
// forced reset after the grace also comes when the wait was cut short by
// the end of the libvirt connection: the wait goes on, on a new one.
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
			if req.Force {
				if err := m.hv.ResetDomain(ctx, name); err != nil {
					return nil, err
				}
				return rebootResult(rebootOutcome{how: api.NodeRebootReset}, grace, true), nil
			}
			w, err := m.hv.RebootDomain(ctx, name)
			cut := ""
			if errors.Is(err, hypervisor.ErrUnavailable) {
				// The connection ended during the request: whether libvirt
				// took it (and set its flag) is not known; watch on.
				w, cut = nil, cutConnection
			} else if err != nil {
				return nil, err
			}
			out, err := m.awaitReboot(ctx, name, w, cut, m.clock.After(grace))
			if err != nil {
				return nil, err
			}
			return rebootResult(out, grace, false), nil
		}))
}

// rebootOutcome is how a reboot ended: how (NodeRebootGuest or
// NodeRebootReset), and cut, what cut the watch of the guest's reset short
// before it was taken up on a new connection (cutConnection,
// cutAgentRestart; "": nothing): a restart while none watched is not seen.
type rebootOutcome struct {
	how, cut string
}

// What cut a reboot's watch short (rebootOutcome.cut).
const (
	cutConnection   = "the connection to libvirtd was lost"
	cutAgentRestart = "the agent restarted"
)

// rebootResult is the result of a reboot that ended as out.
func rebootResult(out rebootOutcome, grace time.Duration, force bool) *api.NodeOpResult {
	cutNote := "; " + out.cut + " while waiting, and the wait went on on a new connection"
	switch {
	case out.how == api.NodeRebootGuest && out.cut != "":
		return &api.NodeOpResult{PowerMethod: api.NodePowerGraceful, RebootMethod: out.how,
			Message: "rebooted: the guest restarted on the ACPI request (same QEMU process)" + cutNote}
	case out.how == api.NodeRebootGuest:
		return &api.NodeOpResult{PowerMethod: api.NodePowerGraceful, RebootMethod: out.how,
			Message: "rebooted: the guest restarted on the ACPI request (same QEMU process)"}
	case force:
		return &api.NodeOpResult{PowerMethod: api.NodePowerForced, RebootMethod: out.how, Message: "rebooted: forced reset (same QEMU process)"}
	case out.cut != "":
		return &api.NodeOpResult{PowerMethod: api.NodePowerForced, RebootMethod: out.how,
			Message: fmt.Sprintf("rebooted: forced reset, no restart of the guest was seen (grace %s; same QEMU process)%s; "+
				"had the guest restarted while none watched, it restarted twice", grace, cutNote)}
	}
	return &api.NodeOpResult{PowerMethod: api.NodePowerForced, RebootMethod: out.how,
		Message: fmt.Sprintf("rebooted: forced reset, the guest did not restart within %s of the ACPI request (same QEMU process)", grace)}
}

// rebootEventLag is how long, after QEMU's reset event, libvirt's reboot event
// may take before its absence is logged. libvirt queues the two together
// (the monitor event first), so it follows within milliseconds.
const rebootEventLag = 2 * time.Second

// errAgentStopping ends a reboot's wait when the agent stops: the
// operation stays running in the journal, and the agent's next start
// finishes it (Recover), so that the request is not left pending.
var errAgentStopping = errors.New("the agent is stopping; its next start finishes the reboot")

// rewatchEvery is how often a reboot whose watch's libvirt connection ended
// tries to watch on a new one.
const rewatchEvery = time.Second

// awaitReboot waits for the reset of the guest asked to reboot, on the watch
// w (nil: none yet; cut: what cut an earlier one short), until deadline
// fires. The
// guest has rebooted when either of the watch's two signals comes
// (RebootWatch); when neither comes by the deadline it is reset, which also
// clears libvirt's fake-reboot flag of a request the guest did not act on.
//
// When the watch's connection ends first, the wait goes on with a watch on a
// new connection (WatchReset): failing there, without a reset, left the
// flag set when the guest had not heard the button. A restart while no
// watch was open is not seen, and the reset after the deadline is then a
// second one; the outcome's cut says so. When libvirt cannot be reached by
// the deadline, the reboot fails (unavailable) saying the request may be
// left pending.
func (m *Manager) awaitReboot(ctx context.Context, name string, w *hypervisor.RebootWatch, cut string, deadline <-chan time.Time) (rebootOutcome, error) {
	for w == nil {
		var err error
		if w, err = m.hv.WatchReset(ctx, name); err == nil {
			break
		}
		if !errors.Is(err, hypervisor.ErrUnavailable) {
			return rebootOutcome{}, err
		}
		select {
		case <-deadline:
			return rebootOutcome{}, fmt.Errorf("%w until the grace ran out: whether the guest restarted is not known and it was not reset; "+
				"the reboot request may still be pending in libvirt, turning the guest's next shutdown into a restart: retry the reboot", err)
		case <-ctx.Done():
			return rebootOutcome{}, ctx.Err()
		case <-m.base.Done():
			return rebootOutcome{}, errAgentStopping
		case <-m.clock.After(rewatchEvery):
		}
	}
	defer w.Stop()
	select {
	case <-w.Event:
		return rebootOutcome{api.NodeRebootGuest, cut}, nil
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
		return rebootOutcome{api.NodeRebootGuest, cut}, nil
	case <-w.Lost:
		// A signal delivered before the connection ended is closed
		// before Lost; select picks among ready cases at random.
		select {
		case <-w.Event:
			return rebootOutcome{api.NodeRebootGuest, cut}, nil
		case <-w.Reset:
			return rebootOutcome{api.NodeRebootGuest, cut}, nil
		default:
		}
		m.log.Warn("reboot: the libvirt connection ended while waiting for the guest's restart; watching on a new one", "vm", name)
		if cut == "" {
			cut = cutConnection
		}
		return m.awaitReboot(ctx, name, nil, cut, deadline)
	case <-deadline:
	case <-ctx.Done():
		return rebootOutcome{}, ctx.Err()
	case <-m.base.Done():
		return rebootOutcome{}, errAgentStopping
	}
	if err := m.hv.ResetDomain(ctx, name); err != nil {
		return rebootOutcome{}, err
	}
	return rebootOutcome{api.NodeRebootReset, cut}, nil
}
