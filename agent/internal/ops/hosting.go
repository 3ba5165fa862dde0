package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/hostplane/hostplane/agent/internal/hosting"
	"github.com/hostplane/hostplane/agent/internal/seed"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

// SetHosting gives the manager the node's hosting role (nil: none).
func (m *Manager) SetHosting(h *hosting.Node) { m.hosting = h }

// Hosting is the node's hosting role, or nil.
func (m *Manager) Hosting() *hosting.Node { return m.hosting }

func (m *Manager) needHosting() error {
	if m.hosting == nil {
		return apiErr(api.NodeErrUnsupported, "this node does not have the hosting role")
	}
	return nil
}

func hostingLock(user string) string { return "hosting/" + user }

// hostingErr maps the hosting package's errors to wire codes.
func hostingErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, hosting.ErrExists):
		return apiErr(api.NodeErrAlreadyExists, "%s", err.Error())
	case errors.Is(err, hosting.ErrNotFound):
		return apiErr(api.NodeErrNotFound, "%s", err.Error())
	case errors.Is(err, hosting.ErrSuspended):
		return apiErr(api.NodeErrConflict, "%s", err.Error())
	}
	return err
}

// HostingCreateRequest is a new account with its passwords in plain text;
// only their hashes are journaled.
type HostingCreateRequest struct {
	OpID, Username, Domain, PHPVersion string
	Plan                               api.HostingPlan
	SFTPPassword, DBPassword           string
}

// HostingCreate creates a hosting account once per operation id. The journal
// keeps the SHA-512 crypt hash of the SFTP password and the MariaDB hash of
// the database password, never the passwords, so a create interrupted by a
// crash is completed on restart from the journal alone.
func (m *Manager) HostingCreate(ctx context.Context, req HostingCreateRequest) (*api.NodeOperation, error) {
	if err := m.needHosting(); err != nil {
		return nil, err
	}
	if err := validate.HostingPassword("sftp_password", req.SFTPPassword); err != nil {
		return nil, err
	}
	if err := validate.HostingPassword("db_password", req.DBPassword); err != nil {
		return nil, err
	}
	if op, err := m.replayEarly(req.OpID, api.NodeOpHostingCreate, req.Username, req); op != nil || err != nil {
		return op, err
	}
	sftpHash, err := seed.HashPassword(req.SFTPPassword)
	if err != nil {
		return nil, err
	}
	in := hosting.CreateInput{Username: req.Username, Domain: req.Domain, Plan: req.Plan, PHPVersion: req.PHPVersion,
		SFTPHash: sftpHash, DBHash: hosting.MySQLNativeHash(req.DBPassword)}
	if err := m.hosting.Check(in); err != nil {
		return nil, err
	}
	return m.do(ctx, spec{id: req.OpID, kind: api.NodeOpHostingCreate, target: req.Username, lock: hostingLock(req.Username),
		input: req, stored: in,
		precheck: func(ctx context.Context) error { return hostingErr(m.hosting.Precheck(ctx, in)) },
		exec: func(ctx context.Context, r *run) (*api.NodeOpResult, error) {
			return m.hostingCreate(ctx, r, in)
		}})
}

// replayEarly answers a replayed operation id (a bad id refused) before
// the caller makes what it journals in place of the input: the salted, so
// each time different, hashes of a hosting account's passwords. nil, nil:
// the id is new, go on.
func (m *Manager) replayEarly(id, kind, target string, input any) (*api.NodeOperation, error) {
	if err := validate.OpID(id); err != nil {
		return nil, err
	}
	hash, err := m.j.InputHash(kind, target, input)
	if err != nil {
		return nil, err
	}
	return m.replay(id, kind, target, hash)
}

func (m *Manager) hostingCreate(ctx context.Context, r *run, in hosting.CreateInput) (*api.NodeOpResult, error) {
	v, err := m.hosting.Create(ctx, in, r.step)
	if err != nil {
		return nil, hostingErr(err)
	}
	return &api.NodeOpResult{Hosting: v, Message: "hosting account created"}, nil
}

// HostingPasswordResetRequest is a password reset with the new passwords in
// plain text (an empty one is left as it is); only their hashes are
// journaled.
type HostingPasswordResetRequest struct {
	OpID, Username           string
	SFTPPassword, DBPassword string
}

// HostingPasswordReset sets an account's new SFTP and/or database password
// once per operation id. As for HostingCreate, the journal keeps the
// SHA-512 crypt hash and the MariaDB hash, never the passwords, so a reset
// interrupted by a crash is completed on restart from the journal alone. A
// suspended account is refused (conflict) before anything is journaled.
func (m *Manager) HostingPasswordReset(ctx context.Context, req HostingPasswordResetRequest) (*api.NodeOperation, error) {
	if err := m.needHosting(); err != nil {
		return nil, err
	}
	if err := validate.HostingUsername(req.Username); err != nil {
		return nil, err
	}
	if req.SFTPPassword == "" && req.DBPassword == "" {
		return nil, validate.Invalid("a password reset needs a new sftp_password or db_password")
	}
	if req.SFTPPassword != "" {
		if err := validate.HostingPassword("sftp_password", req.SFTPPassword); err != nil {
			return nil, err
		}
	}
	if req.DBPassword != "" {
		if err := validate.HostingPassword("db_password", req.DBPassword); err != nil {
			return nil, err
		}
	}
	if op, err := m.replayEarly(req.OpID, api.NodeOpHostingPasswordReset, req.Username, req); op != nil || err != nil {
		return op, err
	}
	var in hosting.PasswordInput
	if req.SFTPPassword != "" {
		var err error
		if in.SFTPHash, err = seed.HashPassword(req.SFTPPassword); err != nil {
			return nil, err
		}
	}
	if req.DBPassword != "" {
		in.DBHash = hosting.MySQLNativeHash(req.DBPassword)
	}
	return m.do(ctx, spec{id: req.OpID, kind: api.NodeOpHostingPasswordReset, target: req.Username, lock: hostingLock(req.Username),
		input: req, stored: in,
		precheck: func(context.Context) error { return hostingErr(m.hosting.CheckPasswordReset(req.Username)) },
		exec: func(ctx context.Context, r *run) (*api.NodeOpResult, error) {
			return m.hostingPasswordReset(ctx, r, req.Username, in)
		}})
}

func (m *Manager) hostingPasswordReset(ctx context.Context, r *run, user string, in hosting.PasswordInput) (*api.NodeOpResult, error) {
	v, err := m.hosting.ResetPasswords(ctx, user, in, r.step)
	if err != nil {
		return nil, hostingErr(err)
	}
	var what []string
	if in.SFTPHash != "" {
		what = append(what, "sftp")
	}
	if in.DBHash != "" {
		what = append(what, "database")
	}
	return &api.NodeOpResult{Hosting: v, Message: "new " + strings.Join(what, " and ") + " password set"}, nil
}

// HostingSuspend, HostingUnsuspend and HostingDelete run once per id.
func (m *Manager) HostingSuspend(ctx context.Context, user string, req api.NodeOpRequest) (*api.NodeOperation, error) {
	return m.hostingSimple(ctx, api.NodeOpHostingSuspend, user, req.OpID, nil)
}

// HostingUnsuspend restores a suspended account.
func (m *Manager) HostingUnsuspend(ctx context.Context, user string, req api.NodeOpRequest) (*api.NodeOperation, error) {
	return m.hostingSimple(ctx, api.NodeOpHostingUnsuspend, user, req.OpID, nil)
}

// HostingDelete removes an account and everything it has on the node.
func (m *Manager) HostingDelete(ctx context.Context, user string, req api.NodeOpRequest) (*api.NodeOperation, error) {
	return m.hostingSimple(ctx, api.NodeOpHostingDelete, user, req.OpID, nil)
}

// hostingPHPInput is the journaled input of a PHP move.
type hostingPHPInput struct {
	PHPVersion string `json:"php_version"`
}

// HostingSetPHP moves an account's pool to another installed PHP version; a
// version that is not installed is refused (invalid_input, listing those
// that are) before anything is journaled.
func (m *Manager) HostingSetPHP(ctx context.Context, user, version, opID string) (*api.NodeOperation, error) {
	if err := m.needHosting(); err != nil {
		return nil, err
	}
	if err := m.hosting.CheckPHP(version); err != nil {
		return nil, err
	}
	return m.hostingSimple(ctx, api.NodeOpHostingSetPHP, user, opID, &hostingPHPInput{PHPVersion: version})
}

func (m *Manager) hostingSimple(ctx context.Context, kind, user, opID string, in *hostingPHPInput) (*api.NodeOperation, error) {
	if err := m.needHosting(); err != nil {
		return nil, err
	}
	if err := validate.HostingUsername(user); err != nil {
		return nil, err
	}
	var input any = struct{}{}
	if in != nil {
		input = in
	}
	return m.do(ctx, spec{id: opID, kind: kind, target: user, lock: hostingLock(user), input: input, stored: input,
		precheck: func(context.Context) error {
			if kind == api.NodeOpHostingDelete {
				return nil // Delete checks itself (a half-created account can be deleted)
			}
			_, err := m.hosting.View(user)
			return hostingErr(err)
		},
		exec: func(ctx context.Context, r *run) (*api.NodeOpResult, error) {
			return m.hostingRun(ctx, r, kind, user, in)
		}})
}

func (m *Manager) hostingRun(ctx context.Context, r *run, kind, user string, in *hostingPHPInput) (*api.NodeOpResult, error) {
	var (
		v   *api.NodeHostingAccount
		err error
		msg string
	)
	switch kind {
	case api.NodeOpHostingSuspend:
		msg = "hosting account suspended"
		v, err = m.hosting.Suspend(ctx, user, r.step)
	case api.NodeOpHostingUnsuspend:
		msg = "hosting account unsuspended"
		v, err = m.hosting.Unsuspend(ctx, user, r.step)
	case api.NodeOpHostingDelete:
		msg = "hosting account deleted"
		v, err = m.hosting.Delete(ctx, user, r.step)
	case api.NodeOpHostingSetPHP:
		msg = "php version set"
		if in == nil {
			return nil, fmt.Errorf("%s %s: no php version", kind, user)
		}
		v, err = m.hosting.SetPHP(ctx, user, in.PHPVersion, r.step)
	default:
		return nil, fmt.Errorf("unknown hosting operation %s", kind)
	}
	if err != nil {
		return nil, hostingErr(err)
	}
	return &api.NodeOpResult{Hosting: v, Message: msg}, nil
}

// recoverHosting resumes a hosting operation a crash interrupted: every step
// is idempotent and the journal holds all the input (hashes, not passwords),
// so it is run again to its end, once.
func (m *Manager) recoverHosting(ctx context.Context, r *run) (*api.NodeOpResult, error) {
	if m.hosting == nil {
		return nil, interrupted("%s %s interrupted by an agent restart; the hosting role is no longer configured", r.rec.Kind, r.rec.Target)
	}
	var (
		res *api.NodeOpResult
		err error
	)
	if r.rec.Kind == api.NodeOpHostingCert || r.rec.Kind == api.NodeOpHostingUncert {
		return m.recoverCert(ctx, r)
	}
	if r.rec.Kind == api.NodeOpHostingPasswordReset {
		var in hosting.PasswordInput
		if err := json.Unmarshal(r.rec.Input, &in); err != nil {
			return nil, fmt.Errorf("recover %s: input: %w", r.rec.ID, err)
		}
		res, err = m.hostingPasswordReset(ctx, r, r.rec.Target, in)
	} else if r.rec.Kind == api.NodeOpHostingCreate {
		var in hosting.CreateInput
		if err := json.Unmarshal(r.rec.Input, &in); err != nil {
			return nil, fmt.Errorf("recover %s: input: %w", r.rec.ID, err)
		}
		res, err = m.hostingCreate(ctx, r, in)
	} else {
		var in *hostingPHPInput
		if r.rec.Kind == api.NodeOpHostingSetPHP {
			in = &hostingPHPInput{}
			if err := json.Unmarshal(r.rec.Input, in); err != nil {
				return nil, fmt.Errorf("recover %s: input: %w", r.rec.ID, err)
			}
		}
		res, err = m.hostingRun(ctx, r, r.rec.Kind, r.rec.Target, in)
	}
	if res != nil {
		res.Message = "resumed after an agent restart; " + res.Message
	}
	return res, err
}

func isHostingKind(kind string) bool {
	switch kind {
	case api.NodeOpHostingCreate, api.NodeOpHostingSuspend, api.NodeOpHostingUnsuspend, api.NodeOpHostingDelete, api.NodeOpHostingSetPHP,
		api.NodeOpHostingCert, api.NodeOpHostingUncert, api.NodeOpHostingPasswordReset:
		return true
	}
	return false
}
