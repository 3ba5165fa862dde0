package actions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

// maxParams bounds params and secret_params (each).
const maxParams = 256 << 10

// Params of each command (ActionAssign.params, with secret_params merged over).
type (
	provisionParams struct {
		Name         string       `json:"name,omitempty"`
		Template     string       `json:"template"`
		Plan         api.NodePlan `json:"plan"`
		MAC          string       `json:"mac,omitempty"`
		Network      string       `json:"network,omitempty"`
		Hostname     string       `json:"hostname,omitempty"`
		SSHKeys      []string     `json:"ssh_keys,omitempty"`
		IPv4         string       `json:"ipv4,omitempty"`
		Gateway4     string       `json:"gateway4,omitempty"`
		RootPassword string       `json:"root_password,omitempty"`
	}
	noParams   struct{}
	stopParams struct {
		GraceSeconds int  `json:"grace_seconds,omitempty"`
		Force        bool `json:"force,omitempty"`
	}
	reinstallParams struct {
		Template     string   `json:"template"`
		SSHKeys      []string `json:"ssh_keys,omitempty"`
		RootPassword string   `json:"root_password,omitempty"`
	}
	passwordParams struct {
		User     string `json:"user,omitempty"`
		Password string `json:"password,omitempty"`
	}
	snapshotCreateParams struct {
		Name        string `json:"name"`
		Description string `json:"description,omitempty"`
	}
	snapshotParams struct {
		Name string `json:"name"`
	}
)

// command is what the executor knows of an action command.
type command struct {
	kind      string     // the ops kind journaled for it
	secret    string     // the one key secret_params may hold ("" for none)
	newParams func() any // pointer to the command's params struct
}

var commands = map[string]command{
	api.ActionServerProvision:     {kind: api.NodeOpProvision, secret: "root_password", newParams: func() any { return &provisionParams{} }},
	api.ActionServerStart:         {kind: api.NodeOpStart, newParams: func() any { return &noParams{} }},
	api.ActionServerStop:          {kind: api.NodeOpStop, newParams: func() any { return &stopParams{} }},
	api.ActionServerReboot:        {kind: api.NodeOpReboot, newParams: func() any { return &stopParams{} }},
	api.ActionServerReinstall:     {kind: api.NodeOpReinstall, secret: "root_password", newParams: func() any { return &reinstallParams{} }},
	api.ActionServerTerminate:     {kind: api.NodeOpTerminate, newParams: func() any { return &noParams{} }},
	api.ActionServerPasswordReset: {kind: api.NodeOpPasswordReset, secret: "password", newParams: func() any { return &passwordParams{} }},
	api.ActionSnapshotCreate:      {kind: api.NodeOpSnapshotCreate, newParams: func() any { return &snapshotCreateParams{} }},
	api.ActionSnapshotDelete:      {kind: api.NodeOpSnapshotDelete, newParams: func() any { return &snapshotParams{} }},
	api.ActionSnapshotRevert:      {kind: api.NodeOpSnapshotRevert, newParams: func() any { return &snapshotParams{} }},
}

// errUnsupported: the command is not one this agent knows.
var errUnsupported = errors.New("unsupported command")

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", validate.ErrInvalid, fmt.Sprintf(format, a...))
}

// decodeObject parses a JSON object strictly: nothing after it, no duplicate
// keys. Empty input is an empty object. what names the field in errors; when
// secret is set, no part of the input appears in an error.
func decodeObject(what string, b []byte, secret bool) (map[string]json.RawMessage, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return map[string]json.RawMessage{}, nil
	}
	if len(b) > maxParams {
		return nil, invalid("%s larger than %d bytes", what, maxParams)
	}
	bad := func(err error) error {
		if secret {
			return invalid("%s is not a JSON object", what)
		}
		return invalid("%s is not a JSON object: %v", what, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return nil, bad(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, bad(errors.New("does not start with {"))
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, bad(err)
		}
		k, ok := kt.(string)
		if !ok {
			return nil, bad(errors.New("key is not a string"))
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, bad(err)
		}
		if _, dup := out[k]; dup {
			if secret {
				return nil, invalid("%s repeats a key", what)
			}
			return nil, invalid("%s repeats the key %q", what, k)
		}
		out[k] = v
	}
	if _, err := dec.Token(); err != nil { // the closing }
		return nil, bad(err)
	}
	if _, err := dec.Token(); err == nil {
		return nil, bad(errors.New("data after the object"))
	}
	return out, nil
}

// decodeParams merges secret over params and decodes the result strictly into
// the command's params struct. secret may only hold the command's secret key,
// as a JSON string. No error carries a secret's value.
func decodeParams(cmdName string, params, secret []byte) (any, error) {
	cmd, ok := commands[cmdName]
	if !ok {
		return nil, errUnsupported
	}
	obj, err := decodeObject("params", params, false)
	if err != nil {
		return nil, err
	}
	sec, err := decodeObject("secret_params", secret, true)
	if err != nil {
		return nil, err
	}
	for k, v := range sec {
		if k != cmd.secret {
			if cmd.secret == "" {
				return nil, invalid("%s takes no secret parameters", cmdName)
			}
			return nil, invalid("%s takes only %q as a secret parameter", cmdName, cmd.secret)
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, invalid("secret parameter %q must be a string", k)
		}
		obj[k] = v
	}
	merged, err := json.Marshal(obj)
	if err != nil {
		return nil, invalid("params: %v", err)
	}
	p := cmd.newParams()
	dec := json.NewDecoder(bytes.NewReader(merged))
	dec.DisallowUnknownFields()
	if err := dec.Decode(p); err != nil {
		// Type errors name the field, never its value; but a secret key with
		// the wrong shape must not echo anything either.
		return nil, invalid("params of %s: %v", cmdName, redactJSONError(err))
	}
	return p, nil
}

// redactJSONError keeps what a caller needs (field and expected type) from a
// decode error and drops anything that could quote the input.
func redactJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q must be %s, not %s", te.Field, te.Type, te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return "malformed JSON"
	}
	return err.Error() // unknown field "x": names the key only
}

// secretOf returns the secret value carried in decoded params, and whether
// the command needs one.
func secretOf(p any) (value string, needed bool) {
	switch p := p.(type) {
	case *provisionParams:
		return p.RootPassword, true
	case *reinstallParams:
		return p.RootPassword, true
	case *passwordParams:
		return p.Password, true
	}
	return "", false
}
