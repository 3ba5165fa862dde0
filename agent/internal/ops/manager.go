// Package ops runs the agent's operations on VMs and templates: each is validated,
// journaled before any side effect, serialized per resource, undone in reverse on
// failure, and answered from the journal when its id is replayed.
package ops

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hosting"
	"github.com/hostplane/hostplane/agent/internal/hypervisor"
	"github.com/hostplane/hostplane/agent/internal/journal"
	"github.com/hostplane/hostplane/agent/internal/sitetls"
	"github.com/hostplane/hostplane/internal/clock"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

// Config is what the manager needs from the agent's configuration.
type Config struct {
	DataDir      string
	DomainType   string // resolved: kvm or qemu
	Machine      string
	Emulator     string
	StopGrace    time.Duration
	Network      string
	Bridges      []string // Linux bridges guests may join (checked at start)
	MinFreeBytes uint64
	Limits       validate.Limits
	Failpoint    string
	PollInterval time.Duration // power state polling; default 100ms
	// OnTerminate, if set, is called when a VM's terminate reaches its host
	// side, before the domain is destroyed (the browser consoles close).
	OnTerminate func(vm string)
}

// Manager runs operations.
type Manager struct {
	cfg   Config
	hv    hypervisor.Hypervisor
	j     *journal.DB
	log   *slog.Logger
	clock clock.Clock
	base  context.Context

	mu      sync.Mutex
	running map[string]chan struct{} // op id → closed when finished
	locks   map[string]chan struct{} // resource → 1-slot semaphore

	recoverBy time.Time // Recover: when the reboots in flight are reset at the latest

	hosting *hosting.Node // the hosting role, or nil
	siteTLS *sitetls.Node // the hosting role's TLS part, or nil
}

// New returns a manager. Running operations are not cancelled when the requesting
// client goes away, nor when base is: they run with base's values but without its
// cancellation (context.WithoutCancel), so a half-done create or delete is never cut
// off. base's Done ends only the waits a later start can take up again: a reboot
// waiting for its guest is left running in the journal for Recover to finish.
func New(base context.Context, cfg Config, hv hypervisor.Hypervisor, j *journal.DB, log *slog.Logger, clk clock.Clock) *Manager {
	if clk == nil {
		clk = clock.Real{}
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	if cfg.Limits == (validate.Limits{}) {
		cfg.Limits = validate.DefaultLimits
	}
	return &Manager{cfg: cfg, hv: hv, j: j, log: log, clock: clk, base: base,
		running: map[string]chan struct{}{}, locks: map[string]chan struct{}{}}
}

// apiErr builds an operator-facing error with a code.
func apiErr(code, format string, a ...any) error {
	return &api.NodeError{Code: code, Message: fmt.Sprintf(format, a...)}
}

// errorCodes maps the package errors to wire codes; the first match wins.
var errorCodes = []struct {
	code string
	errs []error
}{
	{api.NodeErrInvalid, []error{validate.ErrInvalid}},
	{api.NodeErrConflict, []error{journal.ErrInputMismatch}},
	{api.NodeErrNotFound, []error{journal.ErrNotFound, hypervisor.ErrNotFound}},
	{api.NodeErrAlreadyExists, []error{hypervisor.ErrExists}},
	{api.NodeErrNoSpace, []error{hypervisor.ErrNoSpace}},
	{api.NodeErrBusy, []error{hypervisor.ErrBusy}},
	{api.NodeErrUnavailable, []error{hypervisor.ErrUnavailable, hypervisor.ErrGuestAgent}},
	{api.NodeErrUnsupported, []error{hypervisor.ErrUnsupported}},
	{api.NodeErrInvalid, []error{hypervisor.ErrInvalid}},
	{api.NodeErrInterrupted, []error{context.Canceled, context.DeadlineExceeded}},
}

// Classify maps any error to the wire error.
func Classify(err error) *api.NodeError {
	var ne *api.NodeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ne):
		return ne
	}
	for _, c := range errorCodes {
		for _, target := range c.errs {
			if errors.Is(err, target) {
				return &api.NodeError{Code: c.code, Message: err.Error()}
			}
		}
	}
	return &api.NodeError{Code: api.NodeErrInternal, Message: err.Error()}
}

// run is one executing operation.
type run struct {
	m   *Manager
	rec journal.Record
	log *slog.Logger
}

// step records progress in the journal (the recovery point) and fires the failpoint.
func (r *run) step(name string) error {
	r.rec.Step = name
	if err := r.m.j.Update(r.rec); err != nil {
		return fmt.Errorf("%s %s: journal step %s: %w", r.rec.Kind, r.rec.Target, name, err)
	}
	r.log.Debug("operation step", "step", name)
	if r.m.cfg.Failpoint != "" && r.m.cfg.Failpoint == r.rec.Kind+":"+name {
		r.log.Warn("failpoint: killing the agent", "failpoint", r.m.cfg.Failpoint)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never returns
	}
	return nil
}

// note stores recovery data with the operation.
func (r *run) note(k, v string) error {
	if r.rec.Notes == nil {
		r.rec.Notes = map[string]string{}
	}
	r.rec.Notes[k] = v
	return r.m.j.Update(r.rec)
}

// spec describes an operation for do.
type spec struct {
	id, kind, target string
	lock             string // resource lock key
	input            any    // full input, hashed (may hold secrets)
	stored           any    // redacted input, stored
	precheck         func(ctx context.Context) error
	exec             func(ctx context.Context, r *run) (*api.NodeOpResult, error)
}

// do runs an operation exactly once per id.
func (m *Manager) do(ctx context.Context, s spec) (*api.NodeOperation, error) {
	if err := validate.OpID(s.id); err != nil {
		return nil, err
	}
	if m.hv == nil && !isHostingKind(s.kind) {
		return nil, apiErr(api.NodeErrUnsupported, "this node does not have the kvm role")
	}
	hash, err := m.j.InputHash(s.kind, s.target, s.input)
	if err != nil {
		return nil, err
	}
	// One caller per id at a time; a concurrent duplicate waits for the first.
	for {
		m.mu.Lock()
		ch, busy := m.running[s.id]
		if !busy {
			m.running[s.id] = make(chan struct{})
			m.mu.Unlock()
			break
		}
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	defer func() {
		m.mu.Lock()
		close(m.running[s.id])
		delete(m.running, s.id)
		m.mu.Unlock()
	}()

	if op, err := m.replay(s.id, s.kind, s.target, hash); op != nil || err != nil {
		return op, err
	}
	unlock, err := m.lock(ctx, s.lock)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if s.precheck != nil {
		if err := s.precheck(ctx); err != nil {
			return nil, err
		}
	}
	stored, err := json.Marshal(s.stored)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", s.kind, s.target, err)
	}
	rec, existed, err := m.j.Begin(journal.Record{ID: s.id, Kind: s.kind, Target: s.target, InputHash: hash, Input: stored, StartedAt: m.clock.Now().UTC()})
	if err != nil {
		return nil, err
	}
	if existed { // lost a race with nobody (ids are claimed above); be safe anyway
		op := rec.Operation()
		op.Replayed = true
		return op, nil
	}
	r := &run{m: m, rec: rec, log: m.log.With("op", s.id, "kind", s.kind, "target", s.target)}
	r.log.Info("operation started")
	res, err := s.exec(context.WithoutCancel(m.base), r)
	if errors.Is(err, errAgentStopping) {
		// Left running in the journal: the next start finishes it (Recover).
		r.log.Warn("operation left for the agent's next start", "err", err)
		return nil, &api.NodeError{Code: api.NodeErrInterrupted, Message: fmt.Sprintf("%s %s: %v", s.kind, s.target, err)}
	}
	return m.finish(r, res, err)
}

func (m *Manager) finish(r *run, res *api.NodeOpResult, err error) (*api.NodeOperation, error) {
	r.rec.FinishedAt = m.clock.Now().UTC()
	if err != nil {
		r.rec.State = api.NodeOpFailed
		r.rec.Error = Classify(err)
		r.rec.Result = res
		r.log.Warn("operation failed", "err", err)
	} else {
		r.rec.State = api.NodeOpSucceeded
		r.rec.Result = res
		r.log.Info("operation succeeded")
	}
	if jerr := m.j.Update(r.rec); jerr != nil {
		return nil, fmt.Errorf("%s %s: record result: %w", r.rec.Kind, r.rec.Target, jerr)
	}
	return r.rec.Operation(), nil
}

// replay returns the recorded operation for a known id, or an error if the input differs.
func (m *Manager) replay(id, kind, target, hash string) (*api.NodeOperation, error) {
	rec, err := m.j.Get(id)
	if errors.Is(err, journal.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if rec.InputHash != hash || rec.Kind != kind || rec.Target != target {
		return nil, apiErr(api.NodeErrConflict, "operation id %s was already used for %s %s with different input", id, rec.Kind, rec.Target)
	}
	op := rec.Operation()
	op.Replayed = true
	return op, nil
}

func (m *Manager) lock(ctx context.Context, key string) (func(), error) {
	m.mu.Lock()
	ch, ok := m.locks[key]
	if !ok {
		ch = make(chan struct{}, 1)
		m.locks[key] = ch
	}
	m.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, apiErr(api.NodeErrBusy, "%s is busy with another operation", key)
	}
}

// Operation returns a journaled operation.
func (m *Manager) Operation(id string) (*api.NodeOperation, error) {
	if err := validate.OpID(id); err != nil {
		return nil, err
	}
	rec, err := m.j.Get(id)
	if err != nil {
		return nil, apiErr(api.NodeErrNotFound, "operation %s not found", id)
	}
	return rec.Operation(), nil
}

// undo is a stack of compensations run in reverse on failure.
type undo struct {
	log *slog.Logger
	fns []func(context.Context) error
}

func (u *undo) add(f func(context.Context) error) { u.fns = append(u.fns, f) }

func (u *undo) run(ctx context.Context) {
	for i := len(u.fns) - 1; i >= 0; i-- {
		if err := u.fns[i](ctx); err != nil {
			u.log.Error("undo step failed", "err", err)
		}
	}
	u.fns = nil
}

// gen is a short stable suffix for the volumes an operation creates.
func gen(opID string) string {
	h := sha256.Sum256([]byte(opID))
	return hex.EncodeToString(h[:4])
}

func diskVolName(vm, g string) string { return vm + "-root-" + g + ".qcow2" }
func seedVolName(vm, g string) string { return vm + "-seed-" + g + ".iso" }
func (m *Manager) consoleLog(vm string) string {
	return filepath.Join(m.cfg.DataDir, "console", vm+".log")
}
func (m *Manager) templateDir(name string) string {
	return filepath.Join(m.cfg.DataDir, "templates", name)
}
