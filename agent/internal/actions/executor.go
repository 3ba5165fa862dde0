// Package actions serves the coordinator's requests on the agent: an action
// (ActionAssign) becomes an operation of the ops manager, run at most once per
// action id; a stats request is answered from the stats collector's rings.
package actions

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hostplane/hostplane/agent/internal/ops"
	"github.com/hostplane/hostplane/agent/internal/stats"
	"github.com/hostplane/hostplane/internal/clock"
	"github.com/hostplane/hostplane/pkg/action"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
	pb "github.com/hostplane/hostplane/proto"
)

// Error codes of ActionResult beyond the ops manager's (api.NodeErr*).
const (
	// CodeSecretLost: the action needs a secret (a root password) the
	// coordinator no longer has, and it never ran here. Nothing was changed.
	CodeSecretLost = "secret_lost"
	// CodeExpired: the action reached the node after its deadline; it was
	// not started.
	CodeExpired = "expired"
)

// StatsSource is the stats collector's read side; power states are current.
type StatsSource interface {
	Current(ctx context.Context, vm string) api.NodeStats
	// Live is vm's sample as of now; m carries a stream's previous sample
	// from one call to the next (stats.Collector.Live).
	Live(ctx context.Context, vm string, m *stats.Mark) (api.NodeVMStats, bool)
}

// Config configures an Executor.
type Config struct {
	Manager *ops.Manager
	Stats   StatsSource
	Log     *slog.Logger
	// OnChange, if set, is called after every action that ran here finished
	// (the session then sends a fresh inventory).
	OnChange func()
	// PollInterval is how often a running operation's step is checked for
	// progress frames (default 300 ms).
	PollInterval time.Duration
	// LockWait bounds how long an action waits for its resource when the
	// action has no deadline (default 10 minutes).
	LockWait time.Duration
	Clock    clock.Clock // deadlines and inventory stamps (default: the wall clock)
}

// Executor serves the streams the coordinator opens on the session.
type Executor struct {
	cfg Config
	m   *ops.Manager
	log *slog.Logger

	mu       sync.Mutex
	inflight map[string]chan struct{} // action id → closed when its handler is done
}

// New returns an executor.
func New(cfg Config) *Executor {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 300 * time.Millisecond
	}
	if cfg.LockWait <= 0 {
		cfg.LockWait = 10 * time.Minute
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Executor{cfg: cfg, m: cfg.Manager, log: cfg.Log, inflight: map[string]chan struct{}{}}
}

// Handle serves one coordinator request (the session's Handle hook).
func (e *Executor) Handle(ctx context.Context, req *pb.Envelope, send func(*pb.Envelope) error) {
	switch b := req.Body.(type) {
	case *pb.Envelope_ActionAssign:
		e.action(ctx, req.Seq, b.ActionAssign, send)
	case *pb.Envelope_StatsRequest:
		e.stats(ctx, req.Seq, b.StatsRequest, send)
	case *pb.Envelope_HostingUsageRequest:
		e.hostingUsage(ctx, req.Seq, b.HostingUsageRequest, send)
	default:
		_ = send(&pb.Envelope{ReplyTo: req.Seq, Body: &pb.Envelope_Error{Error: &pb.Error{Code: api.NodeErrUnsupported, Message: "unsupported request"}}})
	}
}

// claim serializes handlers of one action id (a re-send racing the first
// delivery), so the journal lookup below sees a settled state.
func (e *Executor) claim(ctx context.Context, id string) (func(), error) {
	for {
		e.mu.Lock()
		ch, busy := e.inflight[id]
		if !busy {
			ch = make(chan struct{})
			e.inflight[id] = ch
			e.mu.Unlock()
			return func() {
				e.mu.Lock()
				delete(e.inflight, id)
				e.mu.Unlock()
				close(ch)
			}, nil
		}
		e.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// replier sends the frames of one action.
type replier struct {
	id       string
	seq      uint64
	send     func(*pb.Envelope) error
	out      uint64
	lastStep string
	percent  uint32
}

func (r *replier) progress(step string) {
	if step == "" || step == r.lastStep {
		return
	}
	if r.lastStep != "" {
		r.percent = min(r.percent+10, 90)
	}
	r.lastStep = step
	r.out++
	_ = r.send(&pb.Envelope{Seq: r.out, ReplyTo: r.seq, Body: &pb.Envelope_ActionProgress{ActionProgress: &pb.ActionProgress{ActionId: r.id, Percent: r.percent, Step: step}}})
}

func (r *replier) result(res *pb.ActionResult) {
	res.ActionId = r.id
	r.out++
	_ = r.send(&pb.Envelope{Seq: r.out, ReplyTo: r.seq, Body: &pb.Envelope_ActionResult{ActionResult: res}})
}

func (r *replier) fail(code, format string, a ...any) {
	r.result(&pb.ActionResult{ErrorCode: code, ErrorMessage: fmt.Sprintf(format, a...)})
}

// fromOperation is the ActionResult of a finished operation.
func fromOperation(op *api.NodeOperation) *pb.ActionResult {
	res := &pb.ActionResult{Success: op.State == api.NodeOpSucceeded}
	if op.Error != nil {
		res.ErrorCode, res.ErrorMessage = op.Error.Code, op.Error.Message
	} else if !res.Success {
		res.ErrorCode, res.ErrorMessage = api.NodeErrInternal, "operation "+op.ID+" is "+op.State
	}
	res.Result = action.EncodeResult(op.Result)
	return res
}

func fromError(err error) *pb.ActionResult {
	ne := ops.Classify(err)
	return &pb.ActionResult{ErrorCode: ne.Code, ErrorMessage: ne.Message}
}

func (e *Executor) action(ctx context.Context, seq uint64, a *pb.ActionAssign, send func(*pb.Envelope) error) {
	r := &replier{id: a.ActionId, seq: seq, send: send}
	if err := validate.OpID(a.ActionId); err != nil {
		r.fail(api.NodeErrInvalid, "action id: %v", err)
		return
	}
	kind, ok := commands[a.Command]
	if !ok {
		r.fail(api.NodeErrUnsupported, "command %q is not supported by this agent", truncate(a.Command))
		return
	}
	targetErr := validate.Name("vm", a.Target)
	if isHosting(a.Command) {
		targetErr = validate.HostingUsername(a.Target)
	}
	if targetErr != nil {
		r.result(fromError(targetErr))
		return
	}
	r.progress("accepted")
	release, err := e.claim(ctx, a.ActionId)
	if err != nil {
		return // the coordinator went away; it will re-send
	}
	defer release()
	log := e.log.With("action", a.ActionId, "command", a.Command, "target", a.Target)

	// A known id is answered from the journal, never run again; this needs
	// neither the params nor the secret.
	op, err := e.wait(ctx, r, a.ActionId)
	switch {
	case err == nil:
		if op.Kind != kind || op.Target != a.Target {
			r.fail(api.NodeErrConflict, "action id %s was already used for %s %s", a.ActionId, op.Kind, op.Target)
			return
		}
		log.Info("action answered from the journal", "state", op.State)
		r.result(fromOperation(op))
		return
	case ctx.Err() != nil:
		return
	case ops.Classify(err).Code != api.NodeErrNotFound:
		r.result(fromError(err))
		return
	}

	p, err := action.Decode(a.Command, a.Params, a.SecretParams)
	if err != nil {
		r.result(fromError(err))
		return
	}
	if secret, needed := p.Secret(); needed && secret == "" && secretRequired(p, a.Resend) {
		log.Warn("action needs a secret the coordinator no longer has; not run")
		r.fail(CodeSecretLost, "action %s never reached this node before the coordinator changed, and its secret (a password) was not kept; nothing was changed: submit the action again", a.ActionId)
		return
	}
	if a.DeadlineUnixMs > 0 && e.cfg.Clock.Now().UnixMilli() > a.DeadlineUnixMs {
		r.fail(CodeExpired, "action %s reached the node after its deadline; it was not started", a.ActionId)
		return
	}

	// The operation outlives this stream: a re-send after a reconnect finds it
	// running (or finished) and waits for it instead.
	octx, cancel := e.opContext(ctx, a.DeadlineUnixMs)
	res, finished, opErr := e.runFollowing(ctx, r, a.ActionId, func() (*api.NodeOperation, error) {
		defer cancel()
		res, err := e.run(octx, a.Command, a.ActionId, a.Target, p)
		if e.cfg.OnChange != nil {
			e.cfg.OnChange()
		}
		return res, err
	})
	if !finished {
		return
	}
	if opErr != nil {
		log.Warn("action failed before it ran", "err", opErr)
		r.result(fromError(opErr))
		return
	}
	log.Info("action finished", "state", res.State)
	r.result(fromOperation(res))
}

// secretRequired says whether missing secret params make an action unsafe to
// run: a password reset always needs its password; a provision or reinstall
// needs its root password unless it brings SSH keys and was never sent before
// (a re-send without the secret comes from a coordinator that lost it).
func secretRequired(p action.Params, resend bool) bool {
	switch p := p.(type) {
	case *action.Provision:
		return resend || len(p.SSHKeys) == 0
	case *action.Reinstall:
		return resend || len(p.SSHKeys) == 0
	}
	return true
}

func (e *Executor) opContext(ctx context.Context, deadlineMs int64) (context.Context, context.CancelFunc) {
	base := context.WithoutCancel(ctx)
	if deadlineMs > 0 {
		return context.WithDeadline(base, time.UnixMilli(deadlineMs))
	}
	return context.WithTimeout(base, e.cfg.LockWait)
}

// wait returns a journaled operation once it is finished, sending progress
// while it runs in this process.
func (e *Executor) wait(ctx context.Context, r *replier, id string) (*api.NodeOperation, error) {
	if !e.m.Running(id) {
		return e.m.Operation(id)
	}
	op, finished, err := e.runFollowing(ctx, r, id, func() (*api.NodeOperation, error) { return e.m.Wait(ctx, id) })
	if !finished {
		return nil, ctx.Err()
	}
	return op, err
}

// runFollowing runs fn, the operation id or a wait for it, on a goroutine of
// its own while following its progress; finished is false when ctx ended
// first (fn runs on).
func (e *Executor) runFollowing(ctx context.Context, r *replier, id string, fn func() (*api.NodeOperation, error)) (op *api.NodeOperation, finished bool, err error) {
	done := make(chan struct{})
	var (
		res   *api.NodeOperation
		fnErr error
	)
	go func() {
		defer close(done)
		res, fnErr = fn()
	}()
	if !e.follow(ctx, r, id, done) {
		return nil, false, nil
	}
	return res, true, fnErr
}

// follow sends a progress frame whenever the operation's journaled step
// changes, until done is closed (true) or ctx ends (false).
func (e *Executor) follow(ctx context.Context, r *replier, id string, done <-chan struct{}) bool {
	t := time.NewTicker(e.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return true
		case <-ctx.Done():
			return false
		case <-t.C:
			if step, err := e.m.Step(id); err == nil {
				r.progress(step)
			}
		}
	}
}

// run calls the ops manager for a decoded action.
func (e *Executor) run(ctx context.Context, command, id, target string, p action.Params) (*api.NodeOperation, error) {
	m := e.m
	if isHosting(command) {
		return e.runHosting(ctx, command, id, target, p)
	}
	switch p := p.(type) {
	case *action.Provision:
		if p.Name != "" && p.Name != target {
			return nil, validate.Invalid("params name %q differs from the action's target %q", truncate(p.Name), target)
		}
		return m.Provision(ctx, api.NodeProvisionRequest{OpID: id, Name: target, Template: p.Template, Plan: p.Plan,
			MAC: p.MAC, Network: p.Network, Hostname: p.Hostname, RootPassword: p.RootPassword, SSHKeys: p.SSHKeys,
			IPv4: p.IPv4, Gateway4: p.Gateway4, Bridge: p.Bridge, IPv6: p.IPv6, Gateway6: p.Gateway6, Resolvers: p.Resolvers})
	case *action.Power:
		req := api.NodeStopRequest{OpID: id, GraceSeconds: p.GraceSeconds, Force: p.Force}
		if command == api.ActionServerReboot {
			return m.Reboot(ctx, target, req)
		}
		return m.Stop(ctx, target, req)
	case *action.Reinstall:
		return m.Reinstall(ctx, target, api.NodeReinstallRequest{OpID: id, Template: p.Template, RootPassword: p.RootPassword, SSHKeys: p.SSHKeys})
	case *action.PasswordReset:
		return m.ResetPassword(ctx, target, api.NodePasswordResetRequest{OpID: id, User: p.User, Password: p.Password})
	case *action.SnapshotCreate:
		return m.CreateSnapshot(ctx, target, api.NodeSnapshotCreateRequest{OpID: id, Name: p.Name, Description: p.Description})
	case *action.Snapshot:
		if command == api.ActionSnapshotDelete {
			return m.DeleteSnapshot(ctx, target, p.Name, api.NodeOpRequest{OpID: id})
		}
		return m.RevertSnapshot(ctx, target, p.Name, api.NodeOpRequest{OpID: id})
	case *action.None:
		if command == api.ActionServerTerminate {
			return m.Terminate(ctx, target, api.NodeOpRequest{OpID: id})
		}
		return m.Start(ctx, target, api.NodeOpRequest{OpID: id})
	}
	return nil, action.ErrUnsupported
}

// runHosting calls the ops manager for a hosting action.
func (e *Executor) runHosting(ctx context.Context, command, id, user string, p action.Params) (*api.NodeOperation, error) {
	m := e.m
	switch p := p.(type) {
	case *action.HostingCreate:
		return m.HostingCreate(ctx, ops.HostingCreateRequest{OpID: id, Username: user, Domain: p.Domain, PHPVersion: p.PHPVersion,
			Plan: p.Plan, SFTPPassword: p.SFTPPassword, DBPassword: p.DBPassword})
	case *action.HostingPHP:
		return m.HostingSetPHP(ctx, user, p.PHPVersion, id)
	case *action.HostingPasswordReset:
		req := ops.HostingPasswordResetRequest{OpID: id, Username: user}
		switch p.Target {
		case api.HostingPasswordSFTP:
			req.SFTPPassword = p.SFTPPassword
		case api.HostingPasswordDB:
			req.DBPassword = p.DBPassword
		case api.HostingPasswordBoth:
			req.SFTPPassword, req.DBPassword = p.SFTPPassword, p.DBPassword
		default:
			return nil, validate.Invalid("target %q must be one of sftp, db, both", truncate(p.Target))
		}
		return m.HostingPasswordReset(ctx, req)
	case *action.HostingCert:
		return m.HostingCert(ctx, ops.HostingCertRequest{OpID: id, Username: user, Domain: p.Domain,
			ChainPEM: []byte(p.ChainPEM), KeyPEM: []byte(p.KeyPEM)})
	case *action.HostingChallenge:
		return m.HostingChallenge(ctx, id, user, p.Token, p.KeyAuthorization, p.Remove)
	case *action.HostingUncert:
		return m.HostingCert(ctx, ops.HostingCertRequest{OpID: id, Username: user, Domain: p.Domain, Detach: true})
	case *action.None:
		switch command {
		case api.ActionHostingSuspend:
			return m.HostingSuspend(ctx, user, api.NodeOpRequest{OpID: id})
		case api.ActionHostingUnsuspend:
			return m.HostingUnsuspend(ctx, user, api.NodeOpRequest{OpID: id})
		case api.ActionHostingDelete:
			return m.HostingDelete(ctx, user, api.NodeOpRequest{OpID: id})
		}
	}
	return nil, action.ErrUnsupported
}

// Inventory reports the node's VMs (name, state, plan) and templates (the
// session's Inventory hook).
func (e *Executor) Inventory(ctx context.Context) (*pb.Inventory, error) {
	vms, err := e.m.VMs(ctx)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	ts, err := e.m.Templates()
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	inv := &pb.Inventory{TakenAtUnixMs: e.cfg.Clock.Now().UnixMilli()}
	for _, v := range vms {
		inv.Vms = append(inv.Vms, &pb.VM{Name: v.Name, State: v.State, Vcpus: v.Plan.VCPUs,
			MemoryBytes: v.Plan.MemoryMiB << 20, DiskBytes: v.Plan.DiskGiB << 30})
	}
	for _, t := range ts {
		inv.Templates = append(inv.Templates, t.Name)
	}
	if h := e.m.Hosting(); h != nil {
		inv.PhpVersions = h.PHPVersions()
	}
	slices.SortFunc(inv.Vms, func(x, y *pb.VM) int { return strings.Compare(x.Name, y.Name) })
	slices.Sort(inv.Templates)
	return inv, nil
}

// truncate shortens untrusted strings quoted in messages.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
