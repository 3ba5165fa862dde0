// Package action is the one typed contract of an action between a coordinator
// and an agent: for each command (api.Action*), the params the coordinator
// puts in ActionAssign.params (JSON), the one secret key it may put in
// ActionAssign.secret_params (never in the Raft log), and the result the agent
// sends back in ActionResult.result. The coordinator encodes these types; the
// agent decodes them strictly (Decode). Neither side declares them again.
//
// Evolution rules, as for the envelope (proto/hostplane.proto): a key is only
// ever added, never renamed, retyped or reused. An agent decodes params with
// unknown keys refused, so a coordinator must not send a key an older agent
// of the same protocol major does not know: a new key is either omitempty and
// left empty for older agents (check session.ProtocolVersion), or it comes with
// a new command.
//
// Adding a command: its name in pkg/api (Action*), its params type and
// Commands entry here (fields in key order, a Secret method), a protocol bump
// with a line below, the route that encodes it on the coordinator, and its
// case in the agent's executor (agent/internal/actions). A new key of an
// existing command follows the evolution rules above.
//
// Version history (the protocol version is hostplanepb.ProtocolVersion):
//
//	1.0, 1.1 (100, 101): no actions over the session.
//	1.2 (102): every command of Commands with the keys below; secret_params
//	     holds root_password (provision, reinstall) or password
//	     (password_reset); ActionAssign.resend; result is Result.
//	     Agents built with this package also accept template names with '.'
//	     and '_' (validate.TemplateName); an older 1.2 agent refuses them
//	     with invalid_input, nothing else differs on the wire.
//	1.3 (103): server.provision gains bridge, gateway6, ipv6 and resolvers
//	     (all omitempty). A coordinator sends them only to agents of 1.3 or
//	     later; a 1.2 agent gets the 1.2 keys alone.
//	     New commands for agents with the hosting role (an older agent
//	     answers unsupported): hosting.create (secret_params holds
//	     sftp_password and db_password), hosting.suspend, hosting.unsuspend,
//	     hosting.delete (empty params), hosting.php; their result is
//	     Result.hosting. The target is the account's username.
//	     hosting.cert (domain, chain_pem; secret_params holds key_pem): a
//	     custom domain's certificate installed on the node and the domain
//	     routed to the account; hosting.uncert (domain) removes both.
//	     hosting.challenge (token, key_authorization, remove): an HTTP-01
//	     key authorization served by the node's responder during an ACME
//	     order (public, no secret_params), or forgotten with remove.
//	1.4 (104; on the wire, several actions on one stream: proto/doc.go,
//	     ProtocolActionBatch): hosting.password_reset (target "sftp", "db" or "both";
//	     secret_params holds sftp_password and/or db_password, those of the
//	     target): new passwords for the account's system user and its
//	     MariaDB user; result is Result.hosting. An older agent answers
//	     unsupported and nothing changes on the node (the old passwords
//	     keep working).
package action

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

// MaxParams bounds params and secret_params (each), in bytes.
const MaxParams = 256 << 10

// Params is the params of one command. Fields are declared in the order of
// their JSON keys, so an encoding is the same bytes as the sorted-map encoding
// the coordinator wrote before this package existed (stored actions compare
// equal).
type Params interface {
	// Secret returns the secret the params carry (merged in from
	// secret_params) and whether the command takes one.
	Secret() (value string, takes bool)
}

// Provision is the params of server.provision.
type Provision struct {
	// Bridge is the Linux bridge the guest's NIC joins, from the IP pool of
	// its addresses (node configuration); empty: the libvirt Network below.
	// With a bridge the agent applies libvirt's clean-traffic nwfilter with
	// the guest's MAC and addresses.
	Bridge   string `json:"bridge,omitempty"`
	Gateway4 string `json:"gateway4,omitempty"`
	// Gateway6 is the IPv6 default route of the guest (an address of the
	// pool's gateway), empty for none.
	Gateway6 string `json:"gateway6,omitempty"`
	Hostname string `json:"hostname,omitempty"`
	// IPv4 is the guest's address with its prefix length (CIDR form,
	// 198.51.100.10/24).
	IPv4 string `json:"ipv4,omitempty"`
	// IPv6 is the guest's IPv6 address in CIDR form with the delegated
	// prefix's length (2001:db8:0:5::1/64): the server owns the whole prefix.
	IPv6    string       `json:"ipv6,omitempty"`
	MAC     string       `json:"mac,omitempty"`
	Name    string       `json:"name,omitempty"` // if set, the action's target
	Network string       `json:"network,omitempty"`
	Plan    api.NodePlan `json:"plan"`
	// Resolvers are the DNS resolvers written into the guest's network-config.
	Resolvers []string `json:"resolvers,omitempty"`
	// RootPassword comes in secret_params (key root_password), never in params
	// the coordinator stores.
	RootPassword string   `json:"root_password,omitempty"`
	SSHKeys      []string `json:"ssh_keys,omitempty"`
	Template     string   `json:"template"`
}

// None is the params of server.start and server.terminate: an empty object.
type None struct{}

// Power is the params of server.stop and server.reboot.
type Power struct {
	Force        bool `json:"force,omitempty"`
	GraceSeconds int  `json:"grace_seconds,omitempty"`
}

// Reinstall is the params of server.reinstall.
type Reinstall struct {
	// RootPassword comes in secret_params (key root_password).
	RootPassword string   `json:"root_password,omitempty"`
	SSHKeys      []string `json:"ssh_keys,omitempty"`
	Template     string   `json:"template"`
}

// PasswordReset is the params of server.password_reset.
type PasswordReset struct {
	// Password comes in secret_params (key password).
	Password string `json:"password,omitempty"`
	User     string `json:"user,omitempty"`
}

// SnapshotCreate is the params of snapshot.create.
type SnapshotCreate struct {
	Description string `json:"description,omitempty"`
	Name        string `json:"name"`
}

// Snapshot is the params of snapshot.delete and snapshot.revert.
type Snapshot struct {
	Name string `json:"name"`
}

// HostingCreate is the params of hosting.create. The two passwords come in
// secret_params (keys sftp_password and db_password), never in params the
// coordinator stores.
type HostingCreate struct {
	DBPassword   string          `json:"db_password,omitempty"`
	Domain       string          `json:"domain"`
	PHPVersion   string          `json:"php_version"`
	Plan         api.HostingPlan `json:"plan"`
	SFTPPassword string          `json:"sftp_password,omitempty"`
}

// HostingCert is the params of hosting.cert: the custom domain (ASCII form)
// and its PEM chain, leaf first. The private key (PEM) comes in
// secret_params (key key_pem).
type HostingCert struct {
	ChainPEM string `json:"chain_pem"`
	Domain   string `json:"domain"`
	KeyPEM   string `json:"key_pem,omitempty"`
}

// HostingChallenge is the params of hosting.challenge: an ACME HTTP-01
// token and its key authorization (public: the node serves it to anyone
// at /.well-known/acme-challenge/<token>); Remove forgets the token.
type HostingChallenge struct {
	KeyAuthorization string `json:"key_authorization,omitempty"`
	Remove           bool   `json:"remove,omitempty"`
	Token            string `json:"token"`
}

// Secret implements Params.
func (*HostingChallenge) Secret() (string, bool) { return "", false }

// HostingPasswordReset is the params of hosting.password_reset: Target
// (api.HostingPasswordSFTP, DB or Both) says which passwords are set; they
// come in secret_params (keys sftp_password and db_password), never in
// params the coordinator stores.
type HostingPasswordReset struct {
	DBPassword   string `json:"db_password,omitempty"`
	SFTPPassword string `json:"sftp_password,omitempty"`
	Target       string `json:"target"`
}

// Secret implements Params: the password the target needs, or "" when one
// it needs is missing (so the agent refuses rather than sets half).
func (p *HostingPasswordReset) Secret() (string, bool) {
	sftp, db := p.Target != api.HostingPasswordDB, p.Target != api.HostingPasswordSFTP
	if sftp && p.SFTPPassword == "" || db && p.DBPassword == "" {
		return "", true
	}
	if sftp {
		return p.SFTPPassword, true
	}
	return p.DBPassword, true
}

// HostingUncert is the params of hosting.uncert: the custom domain to remove.
type HostingUncert struct {
	Domain string `json:"domain"`
}

// Secret implements Params: the private key.
func (p *HostingCert) Secret() (string, bool) { return p.KeyPEM, true }

// Secret implements Params.
func (*HostingUncert) Secret() (string, bool) { return "", false }

// HostingPHP is the params of hosting.php.
type HostingPHP struct {
	PHPVersion string `json:"php_version"`
}

// Secret implements Params: the SFTP password (DBPassword is the second
// secret key of the command).
func (p *HostingCreate) Secret() (string, bool) { return p.SFTPPassword, true }

// Secret implements Params.
func (*HostingPHP) Secret() (string, bool) { return "", false }

// Secret implements Params.
func (p *Provision) Secret() (string, bool) { return p.RootPassword, true }

// Secret implements Params.
func (p *Reinstall) Secret() (string, bool) { return p.RootPassword, true }

// Secret implements Params.
func (p *PasswordReset) Secret() (string, bool) { return p.Password, true }

// Secret implements Params.
func (*None) Secret() (string, bool) { return "", false }

// Secret implements Params.
func (*Power) Secret() (string, bool) { return "", false }

// Secret implements Params.
func (*SnapshotCreate) Secret() (string, bool) { return "", false }

// Secret implements Params.
func (*Snapshot) Secret() (string, bool) { return "", false }

// Secret keys: what secret_params may hold.
const (
	SecretRootPassword = "root_password"
	SecretPassword     = "password"
	SecretSFTPPassword = "sftp_password"
	SecretDBPassword   = "db_password"
	SecretKeyPEM       = "key_pem"
)

// Spec is what the contract says of one command.
type Spec struct {
	// SecretKey is the key secret_params holds ("" for none).
	SecretKey string
	// MoreSecretKeys are further keys secret_params may hold (a command with
	// more than one secret).
	MoreSecretKeys []string
	// New returns a pointer to an empty params value of the command.
	New func() Params
}

// Commands is the catalogue of commands.
var Commands = map[string]Spec{
	api.ActionServerProvision:     {SecretKey: SecretRootPassword, New: func() Params { return &Provision{} }},
	api.ActionServerStart:         {New: func() Params { return &None{} }},
	api.ActionServerStop:          {New: func() Params { return &Power{} }},
	api.ActionServerReboot:        {New: func() Params { return &Power{} }},
	api.ActionServerReinstall:     {SecretKey: SecretRootPassword, New: func() Params { return &Reinstall{} }},
	api.ActionServerTerminate:     {New: func() Params { return &None{} }},
	api.ActionServerPasswordReset: {SecretKey: SecretPassword, New: func() Params { return &PasswordReset{} }},
	api.ActionSnapshotCreate:      {New: func() Params { return &SnapshotCreate{} }},
	api.ActionSnapshotDelete:      {New: func() Params { return &Snapshot{} }},
	api.ActionSnapshotRevert:      {New: func() Params { return &Snapshot{} }},
	api.ActionHostingCreate: {SecretKey: SecretSFTPPassword, MoreSecretKeys: []string{SecretDBPassword},
		New: func() Params { return &HostingCreate{} }},
	api.ActionHostingSuspend:   {New: func() Params { return &None{} }},
	api.ActionHostingUnsuspend: {New: func() Params { return &None{} }},
	api.ActionHostingDelete:    {New: func() Params { return &None{} }},
	api.ActionHostingSetPHP:    {New: func() Params { return &HostingPHP{} }},
	api.ActionHostingCert:      {SecretKey: SecretKeyPEM, New: func() Params { return &HostingCert{} }},
	api.ActionHostingUncert:    {New: func() Params { return &HostingUncert{} }},
	api.ActionHostingChallenge: {New: func() Params { return &HostingChallenge{} }},
	api.ActionHostingPasswordReset: {SecretKey: SecretSFTPPassword, MoreSecretKeys: []string{SecretDBPassword},
		New: func() Params { return &HostingPasswordReset{} }},
}

// Encode is the params JSON of p (nil: an empty object).
func Encode(p Params) ([]byte, error) {
	if p == nil {
		return []byte("{}"), nil
	}
	if v, ok := p.(*Provision); ok && v != nil {
		if b, ok := v.encodePlain(); ok {
			return b, nil
		}
	}
	return json.Marshal(p)
}

// encodePlain is json.Marshal of p without its reflection when each of p's
// strings is plain, which json.Marshal writes between quotes as it is; ok
// is false for any other p, which json.Marshal then writes. Every server
// order's leader encodes one, and every replica again when the apply fills
// in the server's addresses (fsm primaryAddrs). The fields in the struct's
// order, each omitempty one left out when empty:
// TestEncodeProvisionIsJSONMarshal, FuzzEncodeProvision.
func (p *Provision) encodePlain() (b []byte, ok bool) {
	strs := [...]string{p.Bridge, p.Gateway4, p.Gateway6, p.Hostname, p.IPv4, p.IPv6, p.MAC, p.Name, p.Network, p.RootPassword, p.Template}
	n := 160
	for _, s := range strs {
		if !plain(s) {
			return nil, false
		}
		n += len(s)
	}
	for _, l := range [][]string{p.Resolvers, p.SSHKeys} {
		for _, s := range l {
			if !plain(s) {
				return nil, false
			}
			n += len(s) + 3
		}
	}
	b = make([]byte, 0, n)
	b = append(b, '{')
	str := func(key, v string, omitEmpty bool) {
		if omitEmpty && v == "" {
			return
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(append(append(append(append(b, '"'), key...), `":"`...), v...), '"')
	}
	list := func(key string, l []string) {
		if len(l) == 0 {
			return
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(append(append(b, '"'), key...), `":[`...)
		for i, s := range l {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(append(append(b, '"'), s...), '"')
		}
		b = append(b, ']')
	}
	str("bridge", p.Bridge, true)
	str("gateway4", p.Gateway4, true)
	str("gateway6", p.Gateway6, true)
	str("hostname", p.Hostname, true)
	str("ipv4", p.IPv4, true)
	str("ipv6", p.IPv6, true)
	str("mac", p.MAC, true)
	str("name", p.Name, true)
	str("network", p.Network, true)
	if len(b) > 1 {
		b = append(b, ',')
	}
	b = append(b, `"plan":{"vcpus":`...)
	b = strconv.AppendUint(b, uint64(p.Plan.VCPUs), 10)
	b = append(b, `,"memory_mib":`...)
	b = strconv.AppendUint(b, p.Plan.MemoryMiB, 10)
	b = append(b, `,"disk_gib":`...)
	b = strconv.AppendUint(b, p.Plan.DiskGiB, 10)
	b = append(b, '}')
	list("resolvers", p.Resolvers)
	str("root_password", p.RootPassword, true)
	list("ssh_keys", p.SSHKeys)
	str("template", p.Template, false)
	return append(b, '}'), true
}

// EncodeSecret is the secret_params JSON of command's secret value.
func EncodeSecret(command, value string) ([]byte, error) {
	spec, ok := Commands[command]
	if !ok || spec.SecretKey == "" {
		return nil, fmt.Errorf("%s takes no secret parameters", command)
	}
	if !plain(spec.SecretKey) || !plain(value) {
		return json.Marshal(map[string]string{spec.SecretKey: value})
	}
	// What json.Marshal writes for the one-key map, without its reflection
	// (a generated password is plain): TestEncodeSecretIsJSONMarshal.
	b := make([]byte, 0, len(spec.SecretKey)+len(value)+7)
	b = append(append(append(b, `{"`...), spec.SecretKey...), `":"`...)
	return append(append(b, value...), `"}`...), nil
}

// plain reports whether json.Marshal writes s as '"' + s + '"': printable
// ASCII without '"', '\\' or the characters it escapes for HTML ('<', '>',
// '&'). (internal/plainjson.Plain; pkg/ imports nothing of internal/.)
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// EncodeSecrets is the secret_params JSON of a command with several secret
// keys (values by key).
func EncodeSecrets(command string, values map[string]string) ([]byte, error) {
	spec, ok := Commands[command]
	if !ok || spec.SecretKey == "" {
		return nil, fmt.Errorf("%s takes no secret parameters", command)
	}
	for k := range values {
		if k != spec.SecretKey && !slices.Contains(spec.MoreSecretKeys, k) {
			return nil, fmt.Errorf("%s takes no secret parameter %q", command, k)
		}
	}
	return json.Marshal(values)
}

// ErrUnsupported: the command is not in the catalogue.
var ErrUnsupported = errors.New("unsupported command")

// Decode merges secret over params and decodes the result strictly into the
// command's params type: a JSON object, no duplicate or unknown keys, nothing
// after it. secret may only hold the command's secret key, as a JSON string.
// Errors wrap validate.ErrInvalid (or are ErrUnsupported) and never carry a
// secret's value.
func Decode(command string, params, secret []byte) (Params, error) {
	spec, ok := Commands[command]
	if !ok {
		return nil, ErrUnsupported
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
		if k != spec.SecretKey && !slices.Contains(spec.MoreSecretKeys, k) {
			if spec.SecretKey == "" {
				return nil, validate.Invalid("%s takes no secret parameters", command)
			}
			return nil, validate.Invalid("%s takes only %q as a secret parameter", command, spec.SecretKey)
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, validate.Invalid("secret parameter %q must be a string", k)
		}
		obj[k] = v
	}
	merged, err := json.Marshal(obj)
	if err != nil {
		return nil, validate.Invalid("params: %v", err)
	}
	p := spec.New()
	dec := json.NewDecoder(bytes.NewReader(merged))
	dec.DisallowUnknownFields()
	if err := dec.Decode(p); err != nil {
		// Type errors name the field, never its value; but a secret key with
		// the wrong shape must not echo anything either.
		return nil, validate.Invalid("params of %s: %v", command, redactJSONError(err))
	}
	return p, nil
}

// decodeObject parses a JSON object strictly: nothing after it, no duplicate
// keys. Empty input is an empty object. what names the field in errors; when
// secret is set, no part of the input appears in an error.
func decodeObject(what string, b []byte, secret bool) (map[string]json.RawMessage, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return map[string]json.RawMessage{}, nil
	}
	if len(b) > MaxParams {
		return nil, validate.Invalid("%s larger than %d bytes", what, MaxParams)
	}
	bad := func(err error) error {
		if secret {
			return validate.Invalid("%s is not a JSON object", what)
		}
		return validate.Invalid("%s is not a JSON object: %v", what, err)
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
				return nil, validate.Invalid("%s repeats a key", what)
			}
			return nil, validate.Invalid("%s repeats the key %q", what, k)
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

// Result is ActionResult.result of every command: the finished operation's
// result on the node (only the fields of its kind are set).
type Result = api.NodeOpResult

// EncodeResult is the ActionResult.result JSON of r (nil: none).
func EncodeResult(r *Result) []byte {
	if r == nil {
		return nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil
	}
	return b
}

// DecodeResult reads ActionResult.result; empty input is an empty result. The
// result is informational: keys it does not know (a newer agent) are ignored.
func DecodeResult(b []byte) (Result, error) {
	var r Result
	if len(bytes.TrimSpace(b)) == 0 {
		return r, nil
	}
	err := json.Unmarshal(b, &r)
	return r, err
}
