package ops

import (
	"context"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

// Wait blocks until operation id is no longer running in this process, then
// returns its journal record (a NodeError with code not_found when the id was
// never journaled, e.g. because its precheck failed). It does not run anything:
// an action re-sent while its first delivery still runs is answered this way.
func (m *Manager) Wait(ctx context.Context, id string) (*api.NodeOperation, error) {
	if err := validate.OpID(id); err != nil {
		return nil, err
	}
	for {
		m.mu.Lock()
		ch, busy := m.running[id]
		m.mu.Unlock()
		if !busy {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return m.Operation(id)
}

// Running reports whether operation id is being run by this process right now
// (including its precheck, before it is journaled).
func (m *Manager) Running(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.running[id]
	return ok
}

// Step returns the last step an operation journaled ("" before its first step).
func (m *Manager) Step(id string) (string, error) {
	if err := validate.OpID(id); err != nil {
		return "", err
	}
	rec, err := m.j.Get(id)
	if err != nil {
		return "", apiErr(api.NodeErrNotFound, "operation %s not found", id)
	}
	return rec.Step, nil
}
