package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/hostplane/hostplane/internal/socktest"
	"github.com/hostplane/hostplane/internal/termtest"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// hostileText is what a customer (or anyone who can register an OAuth
// client) writes to reach an operator's terminal: a bidi override that
// reorders the line, C1 controls (CSI, NEL: on a terminal that takes UTF-8
// C1 controls, a screen clear and a new line) and a line separator. Each of
// them passes a check that refuses only C0 controls.
const hostileText = "evil\u202egnp.exe \u009b2J\u009b31mred\u0085forged row\u2028x"

// oneLineText is s as a one-line field (a key's name, a ticket's subject)
// takes it: without control characters, U+2028/U+2029 and, since mcp60, bidi
// controls (a one-line field refuses them; before, its bidi override stayed).
func oneLineText(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r) {
			return -1
		}
		return r
	}, s)
}

// TestProbe10OAuthClientNameInOperatorOutput: dynamic client registration
// is open to anyone, and a device's client_name is shown to the operator by
// `hostplanectl oauth approve`, `deny`, `apps` and `revoke`. A name with a
// bidi override, C1 controls and a line separator is refused (400
// invalid_client_metadata naming client_name), as a one-line name is
// (validate.OneLineRune); before, registration refused only C0 controls and
// this test registered hostileText itself. The name as a one-line field
// takes it is registered, and the four commands print nothing raw: no
// output holds a control, bidi or separator character, and `oauth apps`
// prints one line per app under its header. --json keeps the name as
// registered. The name registered here holds nothing hostile any more, so
// the four commands' escaping of a name stored before registration refused
// it is shown by hostplanectl's TestPrintersShowOutsideTextSafely (a socket
// answering them with the hostile text).
func TestProbe10OAuthClientNameInOperatorOutput(t *testing.T) {
	r := sharedLightRig(t, "light")
	f := r.follower()
	base := r.c.URL(f)
	p := r.c.Nodes[f]
	st, out, raw := registerRaw(t, base, map[string]any{"client_name": hostileText, "grant_types": []string{"urn:ietf:params:oauth:grant-type:device_code"},
		"token_endpoint_auth_method": "none"})
	if desc, _ := out["error_description"].(string); st != 400 || out["error"] != "invalid_client_metadata" || !strings.Contains(desc, "client_name") {
		t.Errorf("register a device client named %q: %d %.300s; want 400 invalid_client_metadata naming client_name", hostileText, st, raw)
	}
	name := oneLineText(hostileText)
	st, out, raw = registerRaw(t, base, map[string]any{"client_name": name, "grant_types": []string{"urn:ietf:params:oauth:grant-type:device_code"},
		"token_endpoint_auth_method": "none"})
	client, _ := out["client_id"].(string)
	if st != 201 || client == "" {
		t.Fatalf("register a device client named %q: %d %.300s", name, st, raw)
	}
	check := func(run ctlRun) {
		t.Helper()
		if run.code != 0 {
			t.Fatalf("%s", run)
		}
		if bad := termtest.Unsafe(run.stdout+run.stderr, false); len(bad) > 0 {
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
	if run := ctl(t, p, "--json", "oauth", "apps", r.accA.ID); run.code != 0 || json.Unmarshal([]byte(run.stdout), &l) != nil || len(l.Data) != 1 || l.Data[0].ClientName != name {
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

// TestProbe10NodeSnapshotListShowsTheDescriptionSafely: a snapshot's
// description is the customer's text (POST /v1/servers/:id/snapshots takes
// bidi overrides and C1 controls, as the node agent does), kept in libvirt
// and listed by the agent verbatim. `hostplanectl node vm snapshot list`,
// run on the node against the agent's local socket (here one answering
// what the agent lists), prints it without those characters raw and one
// line per snapshot under its header; --json keeps it verbatim.
func TestProbe10NodeSnapshotListShowsTheDescriptionSafely(t *testing.T) {
	if err := agentSnapshotDescription(hostileText); err != nil {
		t.Fatalf("the node agent refuses %q (%v): this test's text is no longer one that reaches the list", hostileText, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/vms/{name}/snapshots", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode([]api.NodeSnapshot{
			{Name: "snp_01", Description: hostileText, CreatedAt: time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC), State: "running", Current: true},
			{Name: "snp_02", Description: "plain", CreatedAt: time.Date(2026, 12, 5, 1, 1, 0, 0, time.UTC), State: "shutoff"},
		})
	})
	sock := socktest.Serve(t, filepath.Join(t.TempDir(), "agent.sock"), mux)

	ctlBin := framework.Ctl(t) // built before any call's 30 s starts
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, ctlBin, args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("hostplanectl %s: %v: %s %s", strings.Join(args, " "), err, out.String(), errb.String())
		}
		return out.String()
	}
	out := run("node", "vm", "snapshot", "list", "vm-1", "--socket", sock)
	if bad := termtest.Unsafe(out, false); len(bad) > 0 {
		t.Errorf("node vm snapshot list prints %v raw: %q", bad, out)
	}
	if lines := strings.Split(strings.TrimRight(out, "\n"), "\n"); len(lines) != 3 {
		t.Errorf("node vm snapshot list of two snapshots prints %d lines; want the header and two rows: %q", len(lines), out)
	}
	var l []api.NodeSnapshot
	if err := json.Unmarshal([]byte(run("--json", "node", "vm", "snapshot", "list", "vm-1", "--socket", sock)), &l); err != nil || len(l) != 2 || l[0].Description != hostileText {
		t.Errorf("node vm snapshot list --json: %+v %v; want the description verbatim", l, err)
	}
}

// TestProbe10CustomerTextInOperatorOutput: the other customer text
// hostplanectl prints, sent with hostileText plus a newline, a carriage
// return and an escape sequence where the API takes them: a ticket's
// subject and message (`ticket list`, `ticket show`), the name of a key the
// customer mints (POST /v1/account/api-keys; `key list`) and the path of a
// request made with it (`key usage`). Every answer of hostplanectl is free
// of control, bidi and separator characters but for the newlines (and
// tabs) of `ticket show`'s thread, and each list prints one line per item.
func TestProbe10CustomerTextInOperatorOutput(t *testing.T) {
	r := sharedLightRig(t, "light")
	f := r.follower()
	p := r.c.Nodes[f]
	subject := hostileText + " \x1b[2J"
	message := hostileText + "\n\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\\r\nforged"
	rep := r.write(f, r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: subject, Message: message})
	if rep.Status != 201 {
		// The API may refuse the escape; the subject without it then, and
		// without what a one-line field refuses (line breaks, C1 controls,
		// U+2028: since gaps59), which the message keeps.
		subject, message = oneLineText(hostileText), hostileText+"\nsecond line"
		if rep = r.write(f, r.keyA, "POST", "/v1/tickets", api.TicketCreateRequest{Subject: subject, Message: message}); rep.Status != 201 {
			t.Fatalf("ticket with %q: %s", hostileText, rep)
		}
	}
	var tk api.Ticket
	rep.Decode(t, &tk)
	name := hostileText + "\nforged"
	var minted struct {
		Key string `json:"key"`
	}
	rep = r.call(f, r.keyA, "POST", "/v1/account/api-keys", map[string]any{"name": name, "scopes": []string{"account:read"}}, nil)
	if rep.Status != 201 {
		name = oneLineText(hostileText)
		if rep = r.call(f, r.keyA, "POST", "/v1/account/api-keys", map[string]any{"name": name, "scopes": []string{"account:read"}}, nil); rep.Status != 201 {
			t.Fatalf("key named %q: %s", name, rep)
		}
	}
	rep.Decode(t, &minted)
	r.call(f, minted.Key, "GET", "/v1/tickets/"+url.PathEscape(hostileText+"\x1b[2J\r\n"), nil, nil)

	for _, c := range []struct {
		args      []string
		multiline bool
		rows      int // lines below the header; 0: not a table
	}{
		{[]string{"ticket", "list", "--account", r.accA.ID}, false, 1},
		{[]string{"ticket", "show", tk.ID}, true, 0},
		{[]string{"key", "list", r.accA.ID}, false, 2},
	} {
		run := ctl(t, p, c.args...)
		if run.code != 0 {
			t.Fatalf("%s", run)
		}
		if bad := termtest.Unsafe(run.stdout+run.stderr, c.multiline); len(bad) > 0 {
			t.Errorf("hostplanectl %s prints %v raw: %q", strings.Join(c.args, " "), bad, run.stdout)
		}
		if lines := strings.Split(strings.TrimRight(run.stdout, "\n"), "\n"); c.rows > 0 && len(lines) != c.rows+1 {
			t.Errorf("hostplanectl %s prints %d lines; want the header and %d: %q", strings.Join(c.args, " "), len(lines), c.rows, run.stdout)
		}
	}
	var keys []api.KeyInfo
	if run := ctl(t, p, "--json", "key", "list", r.accA.ID); run.code != 0 || json.Unmarshal([]byte(run.stdout), &keys) != nil {
		t.Fatalf("%s", run)
	}
	for _, k := range keys {
		if k.Name != name {
			continue
		}
		var run ctlRun
		framework.WaitFor(t, "the key's use in its usage log", 20*time.Second, 200*time.Millisecond, func() bool {
			run = ctl(t, p, "key", "usage", k.ID)
			return run.code == 0 && strings.Contains(run.stdout, "GET")
		})
		if bad := termtest.Unsafe(run.stdout+run.stderr, false); len(bad) > 0 {
			t.Errorf("hostplanectl key usage prints %v raw: %q", bad, run.stdout)
		}
		return
	}
	t.Errorf("no key named %q in %+v", name, keys)
}
