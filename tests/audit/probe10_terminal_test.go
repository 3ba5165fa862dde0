package audit

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"unicode"

	"github.com/hostplane/hostplane/pkg/api"
)

// hostileText is what a customer (or anyone who can register an OAuth
// client) writes to reach an operator's terminal: a bidi override that
// reorders the line, C1 controls (CSI, NEL: on a terminal that takes UTF-8
// C1 controls, a screen clear and a new line) and a line separator. Each of
// them passes a check that refuses only C0 controls.
const hostileText = "evil\u202egnp.exe \u009b2J\u009b31mred\u0085forged row\u2028x"

// terminalUnsafe lists the runes of out that an operator's terminal takes
// as other than text: control characters but the newline (and the tab
// when multiline), bidi controls, line and paragraph separators.
func terminalUnsafe(out string, multiline bool) []string {
	var bad []string
	for _, r := range out {
		switch {
		case r == '\n', multiline && r == '\t':
		case unicode.IsControl(r), unicode.Is(unicode.Bidi_Control, r), r == '\u2028', r == '\u2029':
			bad = append(bad, fmt.Sprintf("%U", r))
		}
	}
	return bad
}

// TestProbe10OAuthClientNameInOperatorOutput: dynamic client registration
// is open to anyone, and a device's client_name is shown to the operator by
// `hostplanectl oauth approve`, `deny`, `apps` and `revoke`. A name with a
// bidi override, C1 controls and a line separator (registration refuses
// only C0 controls) is accepted; hostplanectl prints it with those
// characters made visible, not raw: no output of the four commands holds a
// control, bidi or separator character, and `oauth apps` prints one line
// per app under its header. --json keeps the name as registered.
func TestProbe10OAuthClientNameInOperatorOutput(t *testing.T) {
	r := newLightRig(t)
	f := r.follower()
	base := r.c.URL(f)
	p := r.c.Nodes[f]
	st, out, raw := registerRaw(t, base, map[string]any{"client_name": hostileText, "grant_types": []string{"urn:ietf:params:oauth:grant-type:device_code"},
		"token_endpoint_auth_method": "none"})
	client, _ := out["client_id"].(string)
	if st != 201 || client == "" {
		t.Fatalf("register a device client named %q: %d %.300s", hostileText, st, raw)
	}
	check := func(run ctlRun) {
		t.Helper()
		if run.code != 0 {
			t.Fatalf("%s", run)
		}
		if bad := terminalUnsafe(run.stdout+run.stderr, false); len(bad) > 0 {
			t.Errorf("hostplanectl %s prints %v raw: %q", strings.Join(run.args, " "), bad, run.stdout)
		}
	}
	o := oauthSide{t: t, base: base}

	// Approved, and the device takes its token: a connected app.
	st, da, err := deviceAuthorize(t, base, client, nil)
	if st != 200 || err != nil || da.UserCode == "" {
		t.Fatalf("device authorization: %d %+v %v", st, da, err)
	}
	check(ctl(t, p, "oauth", "approve", da.UserCode, "--account", r.accA.ID))
	if st, tok := o.token(url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {client}}); st != 200 || tok["access_token"] == nil {
		t.Fatalf("device token after approval: %d %v", st, tok)
	}
	apps := ctl(t, p, "oauth", "apps", r.accA.ID)
	check(apps)
	if lines := strings.Split(strings.TrimRight(apps.stdout, "\n"), "\n"); len(lines) != 2 {
		t.Errorf("oauth apps with one app prints %d lines; want the header and one row: %q", len(lines), apps.stdout)
	}
	var l api.ConnectedAppList
	if run := ctl(t, p, "--json", "oauth", "apps", r.accA.ID); run.code != 0 || json.Unmarshal([]byte(run.stdout), &l) != nil || len(l.Data) != 1 || l.Data[0].ClientName != hostileText {
		t.Fatalf("oauth apps --json: %s; want the one app named as registered", run)
	}
	check(ctl(t, p, "oauth", "revoke", l.Data[0].ID))

	// Denied.
	st, da, err = deviceAuthorize(t, base, client, nil)
	if st != 200 || err != nil || da.UserCode == "" {
		t.Fatalf("second device authorization: %d %+v %v", st, da, err)
	}
	check(ctl(t, p, "oauth", "deny", da.UserCode))
}
