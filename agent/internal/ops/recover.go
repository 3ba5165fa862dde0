package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hypervisor"
	"github.com/hostplane/hostplane/agent/internal/journal"
	"github.com/hostplane/hostplane/pkg/api"
)

// Recover settles every operation a crash left running, before the agent serves
// requests: terminate and reinstall are resumed (their steps are idempotent and
// their intent is destructive anyway); a provision that got its domain defined is
// completed, one that did not is rolled back; everything else is marked failed with
// the state the VM is in now. Nothing is run twice.
func (m *Manager) Recover(ctx context.Context) error {
	recs, err := m.j.Running()
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	// Reboots in flight are watched until the rest of their grace, and
	// all of them together at most recoverRebootWait from here.
	m.recoverBy = m.clock.Now().Add(recoverRebootWait)
	for _, rec := range recs {
		r := &run{m: m, rec: rec, log: m.log.With("op", rec.ID, "kind", rec.Kind, "target", rec.Target, "recovery", true)}
		r.log.Warn("operation was running when the agent stopped", "step", rec.Step)
		unlock, err := m.lock(ctx, lockKey(rec))
		if err != nil {
			return err
		}
		res, opErr := m.recoverOne(ctx, r)
		unlock()
		if errors.Is(opErr, errAgentStopping) || ctx.Err() != nil && errors.Is(opErr, ctx.Err()) {
			// Stopped meanwhile: left running, settled at the next start.
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("recover %s: %w", rec.ID, opErr)
		}
		if _, err := m.finish(r, res, opErr); err != nil {
			return err
		}
	}
	return nil
}

func lockKey(rec journal.Record) string {
	if rec.Kind == api.NodeOpTemplateImport || rec.Kind == api.NodeOpTemplateRemove {
		return "template/" + rec.Target
	}
	if isHostingKind(rec.Kind) {
		return hostingLock(rec.Target)
	}
	return "vm/" + rec.Target
}

func interrupted(format string, a ...any) error {
	return &api.NodeError{Code: api.NodeErrInterrupted, Message: fmt.Sprintf(format, a...)}
}

func (m *Manager) recoverOne(ctx context.Context, r *run) (*api.NodeOpResult, error) {
	rec := r.rec
	name := rec.Target
	if isHostingKind(rec.Kind) {
		return m.recoverHosting(ctx, r)
	}
	switch rec.Kind {
	case api.NodeOpTerminate:
		res, err := m.terminate(ctx, r, name)
		if res != nil {
			res.Message = "resumed after an agent restart; " + res.Message
		}
		return res, err

	case api.NodeOpReinstall:
		var in reinstallInput
		if err := json.Unmarshal(rec.Input, &in); err != nil {
			return nil, fmt.Errorf("recover %s: input: %w", rec.ID, err)
		}
		res, err := m.reinstall(ctx, r, name, in)
		if res != nil {
			res.Message = "resumed after an agent restart; " + res.Message
		}
		if err != nil {
			st, _ := m.hv.DomainState(ctx, name)
			return nil, interrupted("reinstall %s could not be resumed after an agent restart (%v); vm is %s", name, err, st)
		}
		return res, nil

	case api.NodeOpProvision:
		var in provisionInput
		if err := json.Unmarshal(rec.Input, &in); err != nil {
			return nil, fmt.Errorf("recover %s: input: %w", rec.ID, err)
		}
		return m.recoverProvision(ctx, r, in)

	case api.NodeOpTemplateImport:
		var req api.NodeTemplateImportRequest
		if err := json.Unmarshal(rec.Input, &req); err != nil {
			return nil, fmt.Errorf("recover %s: input: %w", rec.ID, err)
		}
		if t, err := m.j.GetTemplate(req.Name); err == nil {
			return &api.NodeOpResult{Template: &t.NodeTemplate, Message: "completed before an agent restart"}, nil
		}
		_ = removeIfExists(filepath.Join(m.hv.PoolPath(), ".import-"+gen(rec.ID)))
		_ = m.hv.DeleteVolume(ctx, templateVolName(req.Name))
		_ = os.RemoveAll(m.templateDir(req.Name))
		return nil, interrupted("template import %s interrupted by an agent restart; partial files removed, template not registered", req.Name)

	case api.NodeOpReboot:
		return m.recoverReboot(ctx, r)

	case api.NodeOpSnapshotCreate:
		var req api.NodeSnapshotCreateRequest
		_ = json.Unmarshal(rec.Input, &req)
		st, _ := m.hv.DomainState(ctx, name)
		s, _ := m.findSnapshot(ctx, name, req.Name)
		exists := "was not created"
		if s != nil {
			exists = "exists"
		}
		return nil, interrupted("snapshot create %s/%s interrupted by an agent restart; not retried; the snapshot %s; vm is %s", name, req.Name, exists, st)

	default:
		st, _ := m.hv.DomainState(ctx, name)
		return nil, interrupted("%s %s interrupted by an agent restart at step %q; not retried; it is now %s", rec.Kind, name, rec.Step, st)
	}
}

// recoverRebootWait bounds how long a restarted agent watches for the
// restart of the guests whose reboots it stopped in before resetting them
// (the rest of each reboot's grace, all of them within this of Recover's
// start): Recover runs before the agent serves requests.
const recoverRebootWait = time.Minute

// recoverReboot finishes a reboot the agent stopped in (Reboot). Its ACPI
// request may be left pending in libvirt (the fake-reboot flag of a guest
// that did not act on the button, which turns the guest's next shutdown
// into a restart): the rest of the grace (at most recoverRebootWait) is
// watched on the new connection, and the guest is reset when it did not
// restart meanwhile, as the reboot would have done. Before, the reboot was
// marked interrupted and the request left pending. A forced reboot (its
// reset leaves nothing pending) and a VM no longer running (its QEMU process
// took the flag with it) are marked interrupted, as every other operation.
func (m *Manager) recoverReboot(ctx context.Context, r *run) (*api.NodeOpResult, error) {
	name := r.rec.Target
	var req api.NodeStopRequest
	if err := json.Unmarshal(r.rec.Input, &req); err != nil {
		return nil, fmt.Errorf("recover %s: input: %w", r.rec.ID, err)
	}
	st, err := m.hv.DomainState(ctx, name)
	if err != nil {
		return nil, err
	}
	grace, gerr := m.grace(req)
	if req.Force || !st.Active() || gerr != nil {
		return nil, interrupted("%s %s interrupted by an agent restart at step %q; not retried; it is now %s", r.rec.Kind, name, r.rec.Step, st)
	}
	now := m.clock.Now()
	wait := max(min(r.rec.StartedAt.Add(grace).Sub(now), m.recoverBy.Sub(now)), 0)
	r.log.Info("reboot: watching for the guest's restart before resetting it", "wait", wait)
	out, err := m.awaitReboot(ctx, name, nil, cutAgentRestart, m.clock.After(wait))
	if err != nil {
		return nil, fmt.Errorf("reboot %s resumed after an agent restart: %w", name, err)
	}
	res := rebootResult(out, grace, false)
	res.Message = "resumed after an agent restart; " + res.Message
	return res, nil
}

func (m *Manager) recoverProvision(ctx context.Context, r *run, in provisionInput) (*api.NodeOpResult, error) {
	g := gen(r.rec.ID)
	diskVol, seedVol := diskVolName(in.Name, g), seedVolName(in.Name, g)
	st, err := m.hv.DomainState(ctx, in.Name)
	if err != nil {
		return nil, err
	}
	ours := false
	if st != hypervisor.StateMissing {
		p, err := m.hv.DomainDisk(ctx, in.Name)
		if err != nil {
			return nil, err
		}
		ours = p == filepath.Join(m.hv.PoolPath(), diskVol)
	}
	if ours {
		// Defined by this operation: finish it (registry, start).
		vm, err := m.j.GetVM(in.Name)
		if err != nil {
			now := m.clock.Now().UTC()
			vm = m.newVM(in, diskVol, seedVol, now)
			if p, err := m.hv.DomainUUID(ctx, in.Name); err == nil {
				vm.UUID = p
			}
			if err := m.j.PutVM(vm); err != nil {
				return nil, err
			}
		}
		if !st.Active() {
			if err := m.hv.StartDomain(ctx, in.Name); err != nil {
				return nil, err
			}
		}
		v, err := m.vmView(ctx, vm)
		if err != nil {
			return nil, err
		}
		return &api.NodeOpResult{VM: &v, Message: "completed after an agent restart (the domain was already defined)"}, nil
	}
	// Not defined (or not by us): remove what this operation created.
	for _, v := range []string{diskVol, seedVol} {
		if err := m.hv.DeleteVolume(ctx, v); err != nil {
			return nil, err
		}
	}
	if vm, err := m.j.GetVM(in.Name); err == nil && vm.DiskVolume == diskVol {
		_ = m.j.DeleteVM(in.Name)
	}
	return nil, interrupted("provision %s interrupted by an agent restart before its domain was defined; its partial disk and seed were removed; no VM exists", in.Name)
}
