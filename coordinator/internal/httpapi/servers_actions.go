package httpapi

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/action"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

const (
	maxSnapshotName        = 64
	maxSnapshotDescription = 500
	maxSnapshotsPerServer  = 10
	maxServerLabel         = 64
	maxOSName              = 32
	maxSSHKeys             = 16
	maxSSHKey              = 4096
	maxGraceSeconds        = 600
	passwordLength         = 20
	// defaultActionDeadline applies when ServerDeps.ActionDeadline is unset.
	defaultActionDeadline = 15 * time.Minute
)

// DecodePower validates the optional body of POST
// /v1/servers/:id/power/:action; an empty body means the defaults.
func DecodePower(action string, body []byte) (api.PowerRequest, error) {
	var req api.PowerRequest
	if err := oneOf("action", action, api.PowerActions); err != nil {
		return req, badRequest("unknown power action %q: use one of %s", shorten(action), strings.Join(api.PowerActions, ", "))
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return req, nil
	}
	// Decode through pointers to tell an explicit value from an absent one.
	var raw struct {
		Force        *bool `json:"force"`
		GraceSeconds *int  `json:"grace_seconds"`
	}
	if err := decodeStrict(body, &raw); err != nil {
		return req, err
	}
	if action == "start" && (raw.Force != nil || raw.GraceSeconds != nil) {
		return req, badRequest("start takes no options: force and grace_seconds apply to stop and reboot")
	}
	if raw.GraceSeconds != nil {
		if *raw.GraceSeconds < 1 || *raw.GraceSeconds > maxGraceSeconds {
			return req, invalidField("grace_seconds", "must be from 1 to %d", maxGraceSeconds)
		}
		req.GraceSeconds = *raw.GraceSeconds
	}
	if raw.Force != nil {
		req.Force = *raw.Force
	}
	return req, nil
}

// DecodeSnapshotCreate validates a POST /v1/servers/:id/snapshots body.
func DecodeSnapshotCreate(body []byte) (api.SnapshotCreateRequest, error) {
	return decodeChecked(body, func(req *api.SnapshotCreateRequest) error {
		return firstErr(
			text("name", req.Name, 1, maxSnapshotName),
			nameChars("name", req.Name),
			text("description", req.Description, 0, maxSnapshotDescription),
			snapshotDescription(req.Description),
		)
	})
}

// snapshotDescription refuses a description the node agent would refuse
// (validate.SnapshotDescription: a line break, or over 1024 bytes, which
// 500 characters can be): else the customer's 202 ends in a failed action.
func snapshotDescription(d string) error {
	if validate.SnapshotDescription(d) != nil {
		return invalidField("description", "must be one line (no line break or control character but a tab) of at most %d bytes in UTF-8", validate.MaxSnapshotDescription)
	}
	return nil
}

// nameChars allows letters, digits, space, '-', '_' and '.', with no space at
// either end.
func nameChars(field, s string) error {
	for _, r := range s {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune(" -_.", r) {
			return invalidField(field, "may hold only letters, digits, spaces, '-', '_' and '.'")
		}
	}
	if strings.TrimSpace(s) != s {
		return invalidField(field, "must not start or end with a space")
	}
	return nil
}

// DecodeReinstall validates a POST /v1/servers/:id/reinstall body. Whether the
// server's node offers the template is checked by the handler.
func DecodeReinstall(body []byte) (api.ReinstallRequest, error) {
	return decodeChecked(body, func(req *api.ReinstallRequest) error {
		if err := templateName("osTemplate", req.OSTemplate); err != nil {
			return err
		}
		if req.OS != "" {
			if err := firstErr(text("os", req.OS, 1, maxOSName), nameChars("os", req.OS)); err != nil {
				return err
			}
		}
		return sshKeys(req.SSHKeys)
	})
}

// sshKeys checks the ssh_keys field: at most 16 OpenSSH public keys, each
// checked in full (validate.SSHKey, the check the agent applies before it
// writes authorized_keys), so a key the agent would refuse is a 400 here, not
// an order charged and then a failed provisioning.
func sshKeys(keys []string) error {
	if len(keys) > maxSSHKeys {
		return invalidField("ssh_keys", "lists more than %d keys", maxSSHKeys)
	}
	for i, k := range keys {
		field := "ssh_keys[" + strconv.Itoa(i) + "]"
		if err := text(field, k, 1, maxSSHKey); err != nil {
			return err
		}
		if _, err := validate.SSHKey(k); err != nil {
			return invalidField(field, "%s", validate.Reason(err))
		}
	}
	return nil
}

// templateName checks a template name with the rule the agent applies
// (validate.TemplateName).
func templateName(field, s string) error {
	if s == "" {
		return invalidField(field, "is required")
	}
	if validate.TemplateName(s) != nil {
		return invalidField(field, "must be 1-%d characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit", validate.MaxTemplateName)
	}
	return nil
}

// DecodeLabel validates a PATCH /v1/servers/:id/label body.
func DecodeLabel(body []byte) (api.LabelRequest, error) {
	return decodeChecked(body, func(req *api.LabelRequest) error {
		return checkLabel(req.Label, 1)
	})
}

// checkLabel checks a server label (PATCH /v1/servers/:id/label, and an
// order's optional label with min 0): at most 64 printable characters, so no
// line break, C1 control or bidirectional override rewrites how a listing
// reads.
func checkLabel(label string, min int) error {
	if err := text("label", label, min, maxServerLabel); err != nil {
		return err
	}
	for _, r := range label {
		if !unicode.IsPrint(r) {
			return invalidField("label", "may hold only printable characters")
		}
	}
	return nil
}

// decodeNoBody accepts an empty (or blank) body or an empty JSON object.
func decodeNoBody(body []byte) error {
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	return decodeEmptyObject(body)
}

// decodeEmptyObject accepts no body at all or an empty JSON object (a blank
// body is malformed here, as decodeStrict says).
func decodeEmptyObject(body []byte) error {
	if len(body) == 0 {
		return nil
	}
	var empty struct{}
	return decodeStrict(body, &empty)
}

func shorten(s string) string {
	if len(s) > 32 {
		s = s[:32] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// newPassword makes a 20-character password of letters and digits from
// crypto/rand, with at least one lower-case letter, upper-case letter and digit.
// Each character is a random byte below 248 (4 × 62) taken modulo 62, a
// byte of 248 or more drawn again: uniform over the 62 characters, as
// rand.Int was, from one read of the random source per 64 bytes instead of
// one read and a big.Int per character (13 µs of an order's CPU on the
// leader; BenchmarkNewPassword).
func newPassword() (string, error) {
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	const below = 256 / len(chars) * len(chars) // 248: the bytes taken
	var pool [64]byte
	next := len(pool) // pool used up
	b := make([]byte, passwordLength)
	for {
		for i := range b {
			for {
				if next == len(pool) {
					if _, err := rand.Read(pool[:]); err != nil {
						return "", fmt.Errorf("password: %w", err)
					}
					next = 0
				}
				c := pool[next]
				next++
				if int(c) < below {
					b[i] = chars[int(c)%len(chars)]
					break
				}
			}
		}
		pw := string(b)
		if strings.ContainsAny(pw, chars[:26]) && strings.ContainsAny(pw, chars[26:52]) && strings.ContainsAny(pw, chars[52:]) {
			clear(pool[:])
			return pw, nil
		}
	}
}

// actionSpec is what one action route asks for.
type actionSpec struct {
	command    string
	params     action.Params // nil: an empty object
	secret     string        // the command's secret (action.Spec.SecretKey), handed to the dispatcher, never stored
	snapshotID string
	snapshot   *api.ServerSnapshot
	meta       map[string]string
}

// startAction commits a new action on the server and wakes the dispatcher.
// The secret, if any, goes to the dispatcher before the proposal (the node may
// ask for it as soon as the entry commits) and is dropped if nothing was
// committed. It returns the action id with the response.
func (a *API) startAction(rq *request, deps *ServerDeps, s store.Server, spec actionSpec) (int, any, error) {
	params, err := action.Encode(spec.params)
	if err != nil {
		return 0, nil, err
	}
	act := store.Action{
		Action: api.Action{
			ID: ids.New(actionIDPrefix, rq.now), Command: spec.command, ResourceType: "server", ResourceID: s.ID,
		},
		AccountID: rq.caller.accountID, NodeID: s.NodeID, Target: s.VMName, Params: params,
		NeedsSecret: spec.secret != "",
		// Every server action is mutating: one at a time per server.
		Mutating: true, Deadline: rq.now.Add(deps.actionDeadline()),
		SnapshotID: spec.snapshotID, Snapshot: spec.snapshot, Meta: spec.meta,
	}
	if spec.secret != "" {
		sec, err := action.EncodeSecret(spec.command, spec.secret)
		if err != nil {
			return 0, nil, err
		}
		deps.PutSecret(act.ID, sec)
	}
	status, v, err := a.propose(rq.Context(), rq, fsm.CmdActionCreate, fsm.ActionCreate{Action: act}, http.StatusAccepted)
	if err != nil {
		if spec.secret != "" {
			deps.DropSecret(act.ID)
		}
		return 0, nil, err
	}
	if _, ok := v.(api.ActionAccepted); !ok && spec.secret != "" {
		// A replayed response (Idempotency-Key): our action was not created.
		deps.DropSecret(act.ID)
	}
	deps.Kick()
	return status, v, nil
}

// withPassword adds the password to a fresh 202; a replayed body stays as
// stored (without it).
func withPassword(v any, pw string) any {
	if acc, ok := v.(api.ActionAccepted); ok {
		acc.RootPassword = pw
		return acc
	}
	return v
}

// serverAndDeps resolves the {id} server first (another account's, or a
// malformed id, is a 404 before any body or availability error), then the
// dispatcher dependencies.
func (a *API) serverAndDeps(rq *request) (store.Server, *ServerDeps, error) {
	return withDeps(a, rq, a.loadServer)
}

// withDeps resolves the request's object with load first (its 404 before a
// 503 of the dispatcher), then the dispatcher dependencies.
func withDeps[T any](a *API, rq *request, load func(*request) (T, error)) (T, *ServerDeps, error) {
	v, err := load(rq)
	if err != nil {
		return v, nil, err
	}
	deps, err := a.serverDeps()
	return v, deps, err
}

// loadAndBody resolves the request's object with load, then decodes the body
// with decode (so a body error never hides a 404).
func loadAndBody[T, R any](rq *request, load func(*request) (T, error), decode func([]byte) (R, error)) (T, R, error) {
	var req R
	v, err := load(rq)
	if err != nil {
		return v, req, err
	}
	req, err = decode(rq.body)
	return v, req, err
}

// depsAndBody is withDeps followed by decoding the body with decode (so a
// body error never hides a 404 or a 503).
func depsAndBody[T, R any](a *API, rq *request, load func(*request) (T, error), decode func([]byte) (R, error)) (T, *ServerDeps, R, error) {
	var req R
	v, deps, err := withDeps(a, rq, load)
	if err != nil {
		return v, deps, req, err
	}
	req, err = decode(rq.body)
	return v, deps, req, err
}

// serverDepsAndBody is depsAndBody of the {id} server.
func serverDepsAndBody[R any](a *API, rq *request, decode func([]byte) (R, error)) (store.Server, *ServerDeps, R, error) {
	return depsAndBody(a, rq, a.loadServer, decode)
}

// noBody is decodeNoBody as a decoder for serverDepsAndBody.
func noBody(body []byte) (struct{}, error) { return struct{}{}, decodeNoBody(body) }

func (a *API) powerServer(rq *request) (int, any, error) {
	word := rq.PathValue("action")
	s, deps, req, err := serverDepsAndBody(a, rq, func(body []byte) (api.PowerRequest, error) { return DecodePower(word, body) })
	if err != nil {
		return 0, nil, err
	}
	cmd := map[string]string{"start": api.ActionServerStart, "stop": api.ActionServerStop, "reboot": api.ActionServerReboot}[word]
	var params action.Params = &action.None{}
	if cmd != api.ActionServerStart {
		params = &action.Power{Force: req.Force, GraceSeconds: req.GraceSeconds}
	}
	return a.startAction(rq, deps, s, actionSpec{command: cmd, params: params})
}

func (a *API) createSnapshot(rq *request) (int, any, error) {
	s, deps, req, err := serverDepsAndBody(a, rq, DecodeSnapshotCreate)
	if err != nil {
		return 0, nil, err
	}
	if len(s.Snapshots) >= maxSnapshotsPerServer {
		return 0, nil, errf(http.StatusConflict, "snapshot_limit", "server %s has %d snapshots, the most it may keep; delete one first", s.ID, len(s.Snapshots))
	}
	id := ids.New(snapshotIDPrefix, rq.now)
	return a.startAction(rq, deps, s, actionSpec{
		command: api.ActionSnapshotCreate, params: &action.SnapshotCreate{Name: id, Description: req.Description}, snapshotID: id,
		snapshot: &api.ServerSnapshot{ID: id, Name: req.Name, Description: req.Description},
	})
}

// snapshotAction starts snapshot.delete or snapshot.revert on an existing
// snapshot.
func (a *API) snapshotAction(rq *request, command string) (int, any, error) {
	s, deps, err := a.serverAndDeps(rq)
	if err != nil {
		return 0, nil, err
	}
	sid := rq.PathValue("snapshotId")
	if !ids.Valid(snapshotIDPrefix, sid) || !slices.ContainsFunc(s.Snapshots, func(sn api.ServerSnapshot) bool { return sn.ID == sid }) {
		return 0, nil, notFound("snapshot")
	}
	if err := decodeNoBody(rq.body); err != nil {
		return 0, nil, err
	}
	return a.startAction(rq, deps, s, actionSpec{command: command, params: &action.Snapshot{Name: sid}, snapshotID: sid})
}

func (a *API) deleteSnapshot(rq *request) (int, any, error) {
	return a.snapshotAction(rq, api.ActionSnapshotDelete)
}

func (a *API) revertSnapshot(rq *request) (int, any, error) {
	return a.snapshotAction(rq, api.ActionSnapshotRevert)
}

func (a *API) resetServerPassword(rq *request) (int, any, error) {
	s, deps, _, err := serverDepsAndBody(a, rq, noBody)
	if err != nil {
		return 0, nil, err
	}
	return a.startWithPassword(rq, deps, s, actionSpec{command: api.ActionServerPasswordReset, params: &action.PasswordReset{}})
}

// startWithPassword starts an action that sets a new root password: a fresh
// password rides in the action's sealed secret and is returned once, in this
// response only.
func (a *API) startWithPassword(rq *request, deps *ServerDeps, s store.Server, spec actionSpec) (int, any, error) {
	pw, err := newPassword()
	if err != nil {
		return 0, nil, err
	}
	spec.secret = pw
	status, v, err := a.startAction(rq, deps, s, spec)
	if err != nil {
		return 0, nil, err
	}
	return status, withPassword(v, pw), nil
}

func (a *API) reinstallServer(rq *request) (int, any, error) {
	s, deps, req, err := serverDepsAndBody(a, rq, DecodeReinstall)
	if err != nil {
		return 0, nil, err
	}
	if deps.NodeTemplates != nil {
		// An unknown list (the node has not reported one) lets the agent decide.
		if tpls, ok := deps.NodeTemplates(s.NodeID); ok && !slices.Contains(tpls, req.OSTemplate) {
			return 0, nil, invalidField("osTemplate", "names template %q, which is not available for this server", req.OSTemplate)
		}
	}
	// os: as given; else the server's, when the template stays; else the
	// template's family: its operator label's, else as the admin create
	// derives it (debian-12 → debian).
	osName := req.OS
	if osName == "" {
		osName = s.OS
		if req.OSTemplate != s.OSTemplate || osName == "" {
			osName = a.templateFamily(req.OSTemplate)
		}
	} else if family, ok := a.templateRecordedFamily(req.OSTemplate); ok && !strings.EqualFold(family, osName) {
		// As an order's os_family: a server showing "windows" for a
		// debian image would mislead its owner (and support).
		return 0, nil, invalidField("os", "is %q but template %s is of the %s family: give %s or leave os out", osName, req.OSTemplate, family, family)
	}
	params := &action.Reinstall{Template: req.OSTemplate, SSHKeys: req.SSHKeys}
	return a.startWithPassword(rq, deps, s, actionSpec{
		command: api.ActionServerReinstall, params: params,
		meta: map[string]string{"os_template": req.OSTemplate, "os": osName},
	})
}

func (a *API) terminateServer(rq *request) (int, any, error) {
	s, deps, err := a.serverAndDeps(rq)
	if err != nil {
		return 0, nil, err
	}
	return a.startAction(rq, deps, s, actionSpec{command: api.ActionServerTerminate})
}

func (a *API) labelServer(rq *request) (int, any, error) {
	_, req, err := loadAndBody(rq, a.loadServer, DecodeLabel)
	if err != nil {
		return 0, nil, err
	}
	// The label the server has answers it as it is (a terminated server's
	// refusal is the command's).
	s, same, err := unchanged(a, rq, func() (store.Server, error) { return a.loadServer(rq) }, func(s store.Server) bool {
		return s.Label == req.Label && s.Status != api.ServerTerminated
	})
	if err != nil {
		return 0, nil, err
	}
	if same {
		return http.StatusOK, s.Public(), nil
	}
	return a.propose(rq.Context(), rq, fsm.CmdServerLabel, fsm.ServerLabel{AccountID: rq.caller.accountID, ServerID: s.ID, Label: req.Label}, http.StatusOK)
}
