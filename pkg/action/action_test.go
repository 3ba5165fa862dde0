package action

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/internal/plainjson/codectest"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
	hostplanepb "github.com/hostplane/hostplane/proto"
)

const provParams = `{"template":"base","plan":{"vcpus":1,"memory_mib":128,"disk_gib":1}}`

const rootSecret = `{"root_password":"s3cret-Root-pw"}`

// agent12Keys are the params keys a running 1.2 agent knows, per command (its
// private structs before this package). It refuses any other key, so the
// contract may never send one: this list only grows with a protocol bump.
var agent12Keys = map[string][]string{
	api.ActionServerProvision:     {"gateway4", "hostname", "ipv4", "mac", "name", "network", "plan", "root_password", "ssh_keys", "template"},
	api.ActionServerStart:         {},
	api.ActionServerStop:          {"force", "grace_seconds"},
	api.ActionServerReboot:        {"force", "grace_seconds"},
	api.ActionServerReinstall:     {"root_password", "ssh_keys", "template"},
	api.ActionServerTerminate:     {},
	api.ActionServerPasswordReset: {"password", "user"},
	api.ActionSnapshotCreate:      {"description", "name"},
	api.ActionSnapshotDelete:      {"name"},
	api.ActionSnapshotRevert:      {"name"},
}

// added13 are the keys protocol 1.3 added (all omitempty, sent only to 1.3
// agents).
var added13 = map[string][]string{
	api.ActionServerProvision: {"bridge", "gateway6", "ipv6", "resolvers"},
}

var agent12Secrets = map[string]string{
	api.ActionServerProvision: "root_password", api.ActionServerReinstall: "root_password", api.ActionServerPasswordReset: "password",
}

func jsonKeys(p Params) []string {
	t := reflect.TypeOf(p).Elem()
	keys := []string{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		keys = append(keys, name)
	}
	return keys
}

// TestContractIsWhatA12AgentExpects: the same commands, the same keys (in
// sorted order, so stored params keep their bytes), the same secret keys.
func TestContractIsWhatA12AgentExpects(t *testing.T) {
	for cmd := range Commands {
		if _, ok := agent12Keys[cmd]; !ok && hostplanepb.ProtocolVersion <= 102 {
			// A 1.2 agent answers "unsupported" to it: a new command comes
			// with a protocol bump (and a line in the version history), and
			// the coordinator sends it only to agents that speak that version.
			t.Errorf("command %s is new but the protocol is still %d", cmd, hostplanepb.ProtocolVersion)
		}
	}
	for cmd, want := range agent12Keys {
		spec, ok := Commands[cmd]
		if !ok {
			t.Fatalf("command %s missing", cmd)
		}
		got := jsonKeys(spec.New())
		known := slices.Sorted(slices.Values(append(slices.Clone(want), added13[cmd]...)))
		if !slices.Equal(got, known) {
			t.Errorf("%s keys %v, a 1.2 agent knows %v and 1.3 added %v", cmd, got, want, added13[cmd])
		}
		if len(added13[cmd]) > 0 && hostplanepb.ProtocolVersion < 103 {
			t.Errorf("%s has 1.3 keys but the protocol is %d", cmd, hostplanepb.ProtocolVersion)
		}
		typ := reflect.TypeOf(spec.New()).Elem()
		for i := range typ.NumField() {
			name, opts, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if slices.Contains(added13[cmd], name) && !strings.Contains(opts, "omitempty") {
				t.Errorf("%s: 1.3 key %s is not omitempty, so a 1.2 agent would get it", cmd, name)
			}
		}
		if !slices.IsSorted(got) {
			t.Errorf("%s: fields are not declared in key order: %v", cmd, got)
		}
		if spec.SecretKey != agent12Secrets[cmd] {
			t.Errorf("%s secret key %q, want %q", cmd, spec.SecretKey, agent12Secrets[cmd])
		}
		_, takes := spec.New().Secret()
		if takes != (spec.SecretKey != "") {
			t.Errorf("%s: Secret says takes=%v, secret key %q", cmd, takes, spec.SecretKey)
		}
	}
}

// TestEncodeDecodeRoundTrip: what the coordinator encodes (params plus the
// secret apart) the agent decodes to the same value.
func TestEncodeDecodeRoundTrip(t *testing.T) {
	cases := map[string]Params{
		api.ActionServerProvision: &Provision{Template: "ubuntu-24.04", Plan: api.NodePlan{VCPUs: 2, MemoryMiB: 2048, DiskGiB: 20},
			Hostname: "web1.example.com", SSHKeys: []string{"ssh-ed25519 AAAA x"}, IPv4: "192.0.2.10/24", Gateway4: "192.0.2.1", Network: "bridge:br0"},
		api.ActionServerStop:          &Power{GraceSeconds: 30, Force: true},
		api.ActionServerReinstall:     &Reinstall{Template: "debian-12", SSHKeys: []string{"ssh-ed25519 AAAA x"}},
		api.ActionServerPasswordReset: &PasswordReset{},
		api.ActionSnapshotCreate:      &SnapshotCreate{Name: "snp-01abc", Description: "before"},
		api.ActionSnapshotRevert:      &Snapshot{Name: "snp-01abc"},
		api.ActionServerStart:         &None{},
	}
	for cmd, p := range cases {
		b, err := Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		var sec []byte
		if Commands[cmd].SecretKey != "" {
			if sec, err = EncodeSecret(cmd, "s3cret-Root-pw"); err != nil {
				t.Fatal(err)
			}
		}
		got, err := Decode(cmd, b, sec)
		if err != nil {
			t.Fatalf("%s: %s: %v", cmd, b, err)
		}
		if v, _ := got.Secret(); sec != nil && v != "s3cret-Root-pw" {
			t.Fatalf("%s: secret not merged: %q", cmd, v)
		}
		if sec != nil { // compare the rest
			reflect.ValueOf(got).Elem().FieldByName(map[bool]string{true: "Password", false: "RootPassword"}[cmd == api.ActionServerPasswordReset]).SetString("")
		}
		if !reflect.DeepEqual(got, p) {
			t.Fatalf("%s: round trip %+v, want %+v", cmd, got, p)
		}
		// Declared in key order: the same bytes as a sorted map of the
		// top-level keys (as the coordinator wrote them before).
		var m map[string]json.RawMessage
		_ = json.Unmarshal(b, &m)
		if mb, _ := json.Marshal(m); string(mb) != string(b) {
			t.Fatalf("%s: %s is not in key order (%s)", cmd, b, mb)
		}
	}
	if _, err := EncodeSecret(api.ActionServerStart, "x"); err == nil {
		t.Fatal("a secret for a command that takes none")
	}
	if b, _ := Encode(nil); string(b) != "{}" {
		t.Fatalf("Encode(nil) = %s", b)
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, c := range []struct{ cmd, params, secret string }{
		{api.ActionServerStart, `{"force":true}`, ""},
		{api.ActionServerStop, `{"grace_seconds":"5"}`, ""},
		{api.ActionServerStop, `{"force":true,"force":false}`, ""},
		{api.ActionServerStop, `{} {}`, ""},
		{api.ActionServerStop, `[]`, ""},
		{api.ActionServerProvision, provParams, `{"password":"abcdefgh"}`},
		{api.ActionServerStart, `{}`, `{"root_password":"abcdefgh"}`},
		{api.ActionServerProvision, provParams, `{"root_password":1}`},
		{api.ActionServerProvision, `{"template":"base","root_password":"x","root_password":"y"}`, ""},
		{api.ActionServerProvision, strings.Repeat(" ", MaxParams) + `{}`, ""},
	} {
		if _, err := Decode(c.cmd, []byte(c.params), []byte(c.secret)); !errors.Is(err, validate.ErrInvalid) {
			t.Errorf("Decode(%s, %.40q, %q) = %v, want invalid", c.cmd, c.params, c.secret, err)
		}
	}
	if _, err := Decode("server.nope", nil, nil); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("unknown command: %v", err)
	}
}

func TestResult(t *testing.T) {
	r := &Result{PowerMethod: "acpi", SnapshotsRemoved: []string{"s1"}}
	got, err := DecodeResult(EncodeResult(r))
	if err != nil || !reflect.DeepEqual(&got, r) {
		t.Fatalf("result round trip %+v %v", got, err)
	}
	if EncodeResult(nil) != nil {
		t.Fatal("nil result encoded")
	}
	if got, err := DecodeResult(nil); err != nil || !reflect.DeepEqual(got, Result{}) {
		t.Fatalf("empty result %+v %v", got, err)
	}
	if _, err := DecodeResult([]byte(`{"power_method":"acpi","added_later":1}`)); err != nil {
		t.Fatalf("a newer agent's key: %v", err)
	}
}

// FuzzDecode (was FuzzDecodeParams of the agent's actions package) feeds the
// strict decoder every shape: an error never comes with params or quotes a
// secret, and only catalogue commands decode.
func FuzzDecode(f *testing.F) {
	f.Add(api.ActionServerProvision, []byte(provParams), []byte(rootSecret))
	f.Add(api.ActionServerStop, []byte(`{"grace_seconds":5,"force":true}`), []byte(nil))
	f.Add(api.ActionServerPasswordReset, []byte(`{"user":"root"}`), []byte(`{"password":"abcdefgh"}`))
	f.Add(api.ActionSnapshotCreate, []byte(`{"name":"s1","description":"d"}`), []byte(`{}`))
	f.Add(api.ActionServerStart, []byte(`{"a":1,"a":2}`), []byte(`{"root_password":1}`))
	f.Add("nope", []byte(`{`), []byte(`}`))
	f.Add(api.ActionHostingCreate, []byte(`{"domain":"example.com","php_version":"8.2","plan":{"php_workers":1}}`),
		[]byte(`{"sftp_password":"SftpPw1234567890","db_password":"DbPw1234567890ab"}`))
	f.Add(api.ActionHostingSetPHP, []byte(`{"php_version":"8.2"}`), []byte(`{"db_password":"x"}`))
	f.Add(api.ActionHostingPasswordReset, []byte(`{"target":"db"}`), []byte(`{"db_password":"DbPw1234567890ab"}`))
	f.Add(api.ActionHostingPasswordReset, []byte(`{"target":"both","sftp_password":"x"}`), []byte(`{"password":"SftpPw1234567890"}`))
	f.Fuzz(func(t *testing.T, command string, params, secret []byte) {
		p, err := Decode(command, params, secret)
		if err != nil {
			if p != nil {
				t.Fatal("params and an error")
			}
			if len(secret) >= 8 && strings.Contains(err.Error(), string(secret)) {
				t.Fatalf("secret_params echoed: %v", err)
			}
			return
		}
		if _, ok := Commands[command]; !ok {
			t.Fatalf("unknown command %q decoded", command)
		}
		if _, err := json.Marshal(p); err != nil {
			t.Fatal(err)
		}
	})
}

// The hosting commands (1.3): keys in sorted order, both passwords only in
// secret_params, nothing else accepted there.
func TestHostingCommands(t *testing.T) {
	if hostplanepb.ProtocolVersion < 103 {
		t.Fatalf("hosting commands need protocol 1.3, have %d", hostplanepb.ProtocolVersion)
	}
	for _, cmd := range []string{api.ActionHostingCreate, api.ActionHostingSuspend, api.ActionHostingUnsuspend,
		api.ActionHostingDelete, api.ActionHostingSetPHP} {
		spec, ok := Commands[cmd]
		if !ok {
			t.Fatalf("%s missing", cmd)
		}
		if keys := jsonKeys(spec.New()); !slices.IsSorted(keys) {
			t.Errorf("%s keys not sorted: %v", cmd, keys)
		}
	}
	params := `{"domain":"example.com","php_version":"8.2","plan":{"php_workers":2,"php_memory_mib":64,"max_execution_seconds":30,"upload_mib":8,"disk_mib":100}}`
	sec, err := EncodeSecrets(api.ActionHostingCreate, map[string]string{SecretSFTPPassword: "SftpPw1234567890", SecretDBPassword: "DbPw12345678901234"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Decode(api.ActionHostingCreate, []byte(params), sec)
	if err != nil {
		t.Fatal(err)
	}
	hc := p.(*HostingCreate)
	if hc.SFTPPassword != "SftpPw1234567890" || hc.DBPassword != "DbPw12345678901234" || hc.Domain != "example.com" || hc.Plan.PHPWorkers != 2 {
		t.Fatalf("decoded %+v", hc)
	}
	if s, takes := hc.Secret(); !takes || s != "SftpPw1234567890" {
		t.Fatalf("Secret() = %q %v", s, takes)
	}
	if _, err := EncodeSecrets(api.ActionHostingCreate, map[string]string{"root_password": "x"}); err == nil {
		t.Fatal("EncodeSecrets accepted an unknown key")
	}
	if _, err := Decode(api.ActionHostingCreate, []byte(params), []byte(`{"root_password":"SftpPw1234567890"}`)); !errors.Is(err, validate.ErrInvalid) || strings.Contains(err.Error(), "SftpPw") {
		t.Fatalf("unknown secret key: %v", err)
	}
	if _, err := Decode(api.ActionHostingSetPHP, []byte(`{"php_version":"8.2","x":1}`), nil); !errors.Is(err, validate.ErrInvalid) {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := Decode(api.ActionHostingDelete, []byte(`{}`), []byte(`{"sftp_password":"x"}`)); !errors.Is(err, validate.ErrInvalid) {
		t.Fatalf("secret on delete: %v", err)
	}
}

// hosting.cert carries the private key in secret_params only (key_pem);
// hosting.uncert takes no secret.
func TestHostingCertCommands(t *testing.T) {
	for _, cmd := range []string{api.ActionHostingCert, api.ActionHostingUncert, api.ActionHostingChallenge} {
		if keys := jsonKeys(Commands[cmd].New()); !slices.IsSorted(keys) {
			t.Errorf("%s keys not sorted: %v", cmd, keys)
		}
	}
	params, _ := Encode(&HostingCert{Domain: "shop.example.com", ChainPEM: "-----BEGIN CERTIFICATE-----"})
	if strings.Contains(string(params), "key_pem") {
		t.Fatalf("params carry the key: %s", params)
	}
	sec, err := EncodeSecret(api.ActionHostingCert, "-----BEGIN PRIVATE KEY-----")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Decode(api.ActionHostingCert, params, sec)
	if err != nil {
		t.Fatal(err)
	}
	if hc := p.(*HostingCert); hc.KeyPEM != "-----BEGIN PRIVATE KEY-----" || hc.Domain != "shop.example.com" {
		t.Fatalf("decoded %+v", hc)
	}
	if _, err := Decode(api.ActionHostingUncert, []byte(`{"domain":"shop.example.com"}`), sec); !errors.Is(err, validate.ErrInvalid) {
		t.Fatalf("uncert with a secret: %v", err)
	}
}

// hosting.challenge carries the token and key authorization in params (they
// are public) and takes no secret.
func TestHostingChallengeCommand(t *testing.T) {
	params, _ := Encode(&HostingChallenge{Token: "tok", KeyAuthorization: "tok.thumb"})
	if string(params) != `{"key_authorization":"tok.thumb","token":"tok"}` {
		t.Fatalf("params: %s", params)
	}
	p, err := Decode(api.ActionHostingChallenge, params, nil)
	if err != nil || p.(*HostingChallenge).KeyAuthorization != "tok.thumb" {
		t.Fatalf("decoded %+v %v", p, err)
	}
	if _, err := Decode(api.ActionHostingChallenge, params, []byte(`{"key_pem":"x"}`)); !errors.Is(err, validate.ErrInvalid) {
		t.Fatalf("challenge with a secret: %v", err)
	}
	if _, err := Decode(api.ActionHostingChallenge, []byte(`{"token":"tok","path":"../x"}`), nil); !errors.Is(err, validate.ErrInvalid) {
		t.Fatalf("unknown key: %v", err)
	}
}

// hosting.password_reset: the target in params, the passwords in
// secret_params only; Secret is empty (so the agent refuses) when a
// password the target needs is missing.
func TestHostingPasswordResetCommand(t *testing.T) {
	if keys := jsonKeys(Commands[api.ActionHostingPasswordReset].New()); !slices.IsSorted(keys) {
		t.Fatalf("keys not sorted: %v", keys)
	}
	params, _ := Encode(&HostingPasswordReset{Target: api.HostingPasswordBoth})
	if string(params) != `{"target":"both"}` {
		t.Fatalf("params %s", params)
	}
	sec, err := EncodeSecrets(api.ActionHostingPasswordReset, map[string]string{SecretSFTPPassword: "SftpPw1234567890", SecretDBPassword: "DbPw1234567890ab"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Decode(api.ActionHostingPasswordReset, params, sec)
	if err != nil {
		t.Fatal(err)
	}
	if r := p.(*HostingPasswordReset); r.SFTPPassword != "SftpPw1234567890" || r.DBPassword != "DbPw1234567890ab" || r.Target != "both" {
		t.Fatalf("decoded %+v", r)
	}
	for _, c := range []struct {
		target, sftp, db, want string
	}{
		{"both", "S", "D", "S"}, {"both", "S", "", ""}, {"both", "", "D", ""},
		{"sftp", "S", "", "S"}, {"sftp", "", "D", ""}, {"db", "", "D", "D"}, {"db", "S", "", ""},
	} {
		if got, takes := (&HostingPasswordReset{Target: c.target, SFTPPassword: c.sftp, DBPassword: c.db}).Secret(); !takes || got != c.want {
			t.Errorf("%+v: Secret() = %q %v, want %q", c, got, takes, c.want)
		}
	}
	if _, err := EncodeSecrets(api.ActionHostingPasswordReset, map[string]string{SecretPassword: "x"}); err == nil {
		t.Fatal("EncodeSecrets accepted the server reset's key")
	}
	if _, err := Decode(api.ActionHostingPasswordReset, []byte(`{"target":"db","x":1}`), nil); !errors.Is(err, validate.ErrInvalid) {
		t.Fatalf("unknown key: %v", err)
	}
}

// secretValues are secret values as a caller may hand them: a generated
// password, and text json.Marshal escapes or rewrites (quotes, backslashes,
// control characters, the HTML characters, invalid UTF-8, U+2028/2029,
// non-ASCII, a PEM key's newlines).
var secretValues = []string{
	"", "s3cret-Root-pw", "aZ09aZ09aZ09aZ09aZ09", `quo"te`, `back\slash`, "tab\tnl\ncr\r", "\x00\x01\x1f\x7f",
	"<script>&amp;</script>", "a<b", "a>b", "a&b", "\xff\xfe invalid", "a\xe2\x80", "sep\u2028\u2029", "é✓日本", "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
	"~!@#$%^*()_+{}|:?`-=[];',./ ",
}

// TestEncodeSecretIsJSONMarshal: EncodeSecret writes, for every command
// that takes a secret and every value, the bytes json.Marshal writes for
// the one-key map (what it wrote before it stopped going through
// reflection).
func TestEncodeSecretIsJSONMarshal(t *testing.T) {
	for cmd, spec := range Commands {
		if spec.SecretKey == "" {
			continue
		}
		for _, v := range secretValues {
			checkEncodeSecret(t, cmd, v)
		}
	}
}

func checkEncodeSecret(t *testing.T, cmd, v string) {
	t.Helper()
	got, err := EncodeSecret(cmd, v)
	if err != nil {
		t.Fatalf("%s %q: %v", cmd, v, err)
	}
	want, err := json.Marshal(map[string]string{Commands[cmd].SecretKey: v})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s %q: EncodeSecret wrote %s, json.Marshal %s", cmd, v, got, want)
	}
}

// FuzzEncodeSecret holds EncodeSecret to json.Marshal's bytes for any value.
func FuzzEncodeSecret(f *testing.F) {
	for _, v := range secretValues {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		checkEncodeSecret(t, api.ActionServerProvision, v)
		checkEncodeSecret(t, api.ActionServerPasswordReset, v)
	})
}

// BenchmarkEncodeSecret: a provisioning's root password (20 letters and
// digits), as an order encodes it.
func BenchmarkEncodeSecret(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeSecret(api.ActionServerProvision, "aZ09aZ09aZ09aZ09aZ09"); err != nil {
			b.Fatal(err)
		}
	}
}

// provisionFields are Provision's and its plan's JSON keys in the order
// encodePlain writes them: a field added to either fails
// TestEncodeProvisionIsJSONMarshal until encodePlain writes it.
var provisionFields = []string{"bridge", "gateway4", "gateway6", "hostname", "ipv4", "ipv6", "mac", "name", "network",
	"plan", "plan.vcpus", "plan.memory_mib", "plan.disk_gib", "resolvers", "root_password", "ssh_keys", "template"}

// structKeys lists t's JSON keys, and its struct fields' (as "field.key"), in
// field order.
func structKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		out = append(out, prefix+name)
		if f.Type.Kind() == reflect.Struct {
			out = append(out, structKeys(f.Type, prefix+name+".")...)
		}
	}
	return out
}

// provisionOf is a Provision with every string field s (the template tmpl)
// and lists l, its plan n.
func provisionOf(s, tmpl string, l []string, n uint64) *Provision {
	return &Provision{Bridge: s, Gateway4: s, Gateway6: s, Hostname: s, IPv4: s, IPv6: s, MAC: s, Name: s, Network: s,
		Plan: api.NodePlan{VCPUs: uint32(n), MemoryMiB: n * 1024, DiskGiB: n}, Resolvers: l, RootPassword: s, SSHKeys: l, Template: tmpl}
}

// checkEncodeProvision checks that Encode writes json.Marshal's bytes of p,
// whichever path it takes.
func checkEncodeProvision(t *testing.T, p *Provision) {
	t.Helper()
	codectest.Encoding(t, "Encode", func(p *Provision) ([]byte, bool) {
		b, err := Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		return b, true
	}, *p)
}

// TestEncodeProvisionIsJSONMarshal: Encode writes a server.provision's
// params as json.Marshal does (what it wrote before an order's params
// stopped going through reflection), for the params an order makes,
// empty and full ones, lists empty, nil and long, and strings json.Marshal
// escapes (those go through it).
func TestEncodeProvisionIsJSONMarshal(t *testing.T) {
	if got := structKeys(reflect.TypeFor[Provision](), ""); !slices.Equal(got, provisionFields) {
		t.Fatalf("Provision's JSON keys are %v; encodePlain writes %v: write the new field there", got, provisionFields)
	}
	checkEncodeProvision(t, &Provision{})
	checkEncodeProvision(t, &Provision{Template: "debian-12", Plan: api.NodePlan{VCPUs: 1, MemoryMiB: 1024, DiskGiB: 25},
		Hostname: "web.example.com", SSHKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx3b3JkcyBvZiBhIHRlc3Qga2V5IGZvciB0aGUgYmVuY2ggb25seQ bench@example"}})
	checkEncodeProvision(t, &Provision{Template: "t", Resolvers: []string{}, SSHKeys: []string{}})
	checkEncodeProvision(t, &Provision{Template: "t", Plan: api.NodePlan{VCPUs: ^uint32(0), MemoryMiB: ^uint64(0), DiskGiB: 1 << 40}})
	// The cases fsm's appendProvision was held to before this encoder
	// replaced it.
	full := Provision{Bridge: "br0", Gateway4: "198.51.100.1", Gateway6: "fe80::1", Hostname: "web-1",
		IPv4: "198.51.100.7/24", IPv6: "2001:db8::1/64", MAC: "52:54:00:12:34:56", Name: "hp-srv_1", Network: "default",
		Plan: api.NodePlan{VCPUs: 4294967295, MemoryMiB: 18446744073709551615, DiskGiB: 0}, Resolvers: []string{"198.51.100.53", "2001:db8::53"},
		RootPassword: "x", SSHKeys: []string{"ssh-ed25519 AAAAC3Nz+/= me@host"}, Template: "debian-12"}
	for _, pr := range []Provision{full, {Resolvers: []string{}, SSHKeys: []string{""}, Template: ""}} {
		if _, ok := pr.encodePlain(); !ok {
			t.Fatalf("encodePlain gave up on %+v", pr)
		}
		checkEncodeProvision(t, &pr)
	}
	// Strings encoding/json escapes: encodePlain leaves them to it.
	for _, s := range []string{"a<b", "a&b", `a"b`, `a\b`, "a\nb", "é", "\u2028"} {
		pr := full
		pr.Hostname = s
		if _, ok := pr.encodePlain(); ok {
			t.Errorf("encodePlain wrote %q itself", s)
		}
		checkEncodeProvision(t, &pr)
		pr = full
		pr.SSHKeys = []string{"k", s}
		if _, ok := pr.encodePlain(); ok {
			t.Errorf("encodePlain wrote %q itself", s)
		}
		checkEncodeProvision(t, &pr)
	}
	for _, s := range secretValues {
		for _, l := range [][]string{nil, {s}, {"a", s, "b"}} {
			checkEncodeProvision(t, provisionOf(s, s, l, 3))
			checkEncodeProvision(t, provisionOf("", "debian-12", l, 0))
			checkEncodeProvision(t, provisionOf(s, "debian-12", nil, 7))
		}
	}
}

// FuzzEncodeProvision holds Encode of a Provision to json.Marshal's bytes.
func FuzzEncodeProvision(f *testing.F) {
	for _, v := range secretValues {
		f.Add(v, "debian-12", v, uint64(2))
	}
	f.Fuzz(func(t *testing.T, s, tmpl, item string, n uint64) {
		checkEncodeProvision(t, provisionOf(s, tmpl, []string{item, s}, n))
		checkEncodeProvision(t, provisionOf("", tmpl, []string{item}, n))
		checkEncodeProvision(t, &Provision{Hostname: s, Template: tmpl, SSHKeys: []string{item}})
	})
}

// BenchmarkEncodeProvision: a server order's provision params, through
// Encode and, the baseline, json.Marshal.
func BenchmarkEncodeProvision(b *testing.B) {
	p := &Provision{Template: "debian-12", Plan: api.NodePlan{VCPUs: 1, MemoryMiB: 1024, DiskGiB: 25},
		Hostname: "web.example.com", SSHKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx3b3JkcyBvZiBhIHRlc3Qga2V5IGZvciB0aGUgYmVuY2ggb25seQ bench@example"}}
	for _, enc := range []struct {
		name string
		fn   func(Params) ([]byte, error)
	}{{"Encode", Encode}, {"json.Marshal", func(p Params) ([]byte, error) { return json.Marshal(p) }}} {
		b.Run(enc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := enc.fn(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
