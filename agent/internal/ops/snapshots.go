package ops

import (
	"context"
	"errors"

	"github.com/hostplane/hostplane/agent/internal/hypervisor"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

func snapView(s hypervisor.Snapshot) api.NodeSnapshot {
	return api.NodeSnapshot{Name: s.Name, Description: s.Description, CreatedAt: s.CreatedAt, State: s.State,
		VMStateBytes: s.VMStateBytes, Current: s.Current}
}

// Snapshots lists a VM's snapshots.
func (m *Manager) Snapshots(ctx context.Context, vm string) ([]api.NodeSnapshot, error) {
	if _, err := m.getVM(vm); err != nil {
		return nil, err
	}
	snaps, err := m.hv.ListSnapshots(ctx, vm)
	if err != nil {
		return nil, err
	}
	out := make([]api.NodeSnapshot, len(snaps))
	for i, s := range snaps {
		out[i] = snapView(s)
	}
	return out, nil
}

func (m *Manager) findSnapshot(ctx context.Context, vm, name string) (*hypervisor.Snapshot, error) {
	snaps, err := m.hv.ListSnapshots(ctx, vm)
	if err != nil {
		return nil, err
	}
	for _, s := range snaps {
		if s.Name == name {
			return &s, nil
		}
	}
	return nil, nil
}

// CreateSnapshot snapshots a VM, running (with memory) or stopped.
func (m *Manager) CreateSnapshot(ctx context.Context, vm string, req api.NodeSnapshotCreateRequest) (*api.NodeOperation, error) {
	if err := validate.Name("vm", vm); err != nil {
		return nil, err
	}
	if err := validate.Name("snapshot", req.Name); err != nil {
		return nil, err
	}
	if err := validate.SnapshotDescription(req.Description); err != nil {
		return nil, err
	}
	return m.do(ctx, spec{
		id: req.OpID, kind: api.NodeOpSnapshotCreate, target: vm, lock: "vm/" + vm, input: req, stored: req,
		precheck: func(ctx context.Context) error {
			if _, err := m.getVM(vm); err != nil {
				return err
			}
			s, err := m.findSnapshot(ctx, vm, req.Name)
			if err != nil {
				return err
			}
			if s != nil {
				return apiErr(api.NodeErrAlreadyExists, "snapshot %s of vm %s already exists", req.Name, vm)
			}
			return m.checkSpace(ctx, "snapshot "+vm)
		},
		exec: func(ctx context.Context, r *run) (*api.NodeOpResult, error) {
			if err := m.hv.CreateSnapshot(ctx, vm, req.Name, req.Description); err != nil {
				return nil, err
			}
			s, err := m.findSnapshot(ctx, vm, req.Name)
			if err != nil || s == nil {
				return nil, errors.Join(err, errors.New("snapshot created but not listed"))
			}
			v := snapView(*s)
			return &api.NodeOpResult{Snapshot: &v}, nil
		},
	})
}

// DeleteSnapshot deletes a snapshot.
func (m *Manager) DeleteSnapshot(ctx context.Context, vm, name string, req api.NodeOpRequest) (*api.NodeOperation, error) {
	return m.snapshotOp(ctx, api.NodeOpSnapshotDelete, vm, name, req, func(ctx context.Context) (*api.NodeOpResult, error) {
		if err := m.hv.DeleteSnapshot(ctx, vm, name, false); err != nil {
			return nil, err
		}
		return &api.NodeOpResult{Message: "snapshot " + name + " deleted"}, nil
	})
}

// RevertSnapshot reverts a VM to a snapshot; it comes back in the snapshot's power state.
func (m *Manager) RevertSnapshot(ctx context.Context, vm, name string, req api.NodeOpRequest) (*api.NodeOperation, error) {
	return m.snapshotOp(ctx, api.NodeOpSnapshotRevert, vm, name, req, func(ctx context.Context) (*api.NodeOpResult, error) {
		if err := m.hv.RevertSnapshot(ctx, vm, name); err != nil {
			return nil, err
		}
		v, err := m.VM(ctx, vm)
		if err != nil {
			return nil, err
		}
		return &api.NodeOpResult{VM: &v, Message: "reverted to " + name + "; vm is " + v.State}, nil
	})
}

func (m *Manager) snapshotOp(ctx context.Context, kind, vm, name string, req api.NodeOpRequest, exec func(context.Context) (*api.NodeOpResult, error)) (*api.NodeOperation, error) {
	if err := validate.Name("vm", vm); err != nil {
		return nil, err
	}
	if err := validate.Name("snapshot", name); err != nil {
		return nil, err
	}
	input := struct {
		api.NodeOpRequest
		Snapshot string `json:"snapshot"`
	}{req, name}
	return m.do(ctx, spec{
		id: req.OpID, kind: kind, target: vm, lock: "vm/" + vm, input: input, stored: input,
		precheck: func(ctx context.Context) error {
			if _, err := m.getVM(vm); err != nil {
				return err
			}
			s, err := m.findSnapshot(ctx, vm, name)
			if err != nil {
				return err
			}
			if s == nil {
				return apiErr(api.NodeErrNotFound, "snapshot %s of vm %s not found", name, vm)
			}
			return nil
		},
		exec: func(ctx context.Context, r *run) (*api.NodeOpResult, error) { return exec(ctx) },
	})
}
