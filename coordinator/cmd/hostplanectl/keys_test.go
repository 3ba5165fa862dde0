package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestKeyListCLI: `hostplanectl key list ACCOUNT_ID` against a real
// coordinator shows, per key, the client address of its last use in a LAST
// IP column beside LAST USED ("-" for a key never used); --json prints the
// API's answer, last_used_ip included, as before.
func TestKeyListCLI(t *testing.T) {
	c, g, adm := cliCluster(t)
	ctx := context.Background()
	acc, key := c.NewAccount("keylist@example.com")
	idle, err := adm.CreateKey(ctx, acc.ID, api.KeyCreateRequest{Name: "idle"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client(0, key).Account(ctx); err != nil {
		t.Fatal(err)
	}
	var used api.KeyInfo
	deadline := time.Now().Add(20 * time.Second)
	for used.UseCount == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the key's use never reached the key list")
		}
		time.Sleep(100 * time.Millisecond)
		keys, err := adm.Keys(ctx, acc.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if k.ID != idle.Info.ID {
				used = k
			}
		}
	}
	if used.LastUsedIP != "127.0.0.1" {
		t.Fatalf("the used key's last_used_ip %q, want 127.0.0.1", used.LastUsedIP)
	}
	run := func(g *globals) string {
		t.Helper()
		out, err := stdoutOf(t, func() error { return execQuiet(newKeyCmd(g), "list", acc.ID) })
		if err != nil {
			t.Fatalf("key list: %v\n%s", err, out)
		}
		return out
	}

	// As text: a row per key, LAST IP right after LAST USED.
	lines := strings.Split(strings.TrimSpace(run(&globals{socket: g.socket})), "\n")
	header := strings.Fields(strings.ReplaceAll(strings.ReplaceAll(lines[0], "LAST USED", "LAST_USED"), "LAST IP", "LAST_IP"))
	if strings.Join(header, " ") != "ID NAME PREFIX LAST_USED LAST_IP USES STATE SCOPES" {
		t.Fatalf("key list header %q", lines[0])
	}
	rows := map[string][]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		rows[f[0]] = f
	}
	// ID NAME PREFIX… LAST_USED LAST_IP USES STATE SCOPES (names are one word here)
	if r := rows[used.ID]; len(r) != 8 || r[3] != used.LastUsedAt.UTC().Format(time.RFC3339) || r[4] != "127.0.0.1" || r[5] != "1" || r[6] != "active" {
		t.Errorf("the used key's row %q, want last used %s from 127.0.0.1, 1 use", r, used.LastUsedAt)
	}
	if r := rows[idle.Info.ID]; len(r) != 8 || r[1] != "idle" || r[3] != "never" || r[4] != "-" || r[5] != "0" {
		t.Errorf("the unused key's row %q, want never, -, 0 uses", r)
	}

	// --json: the API's key list, unchanged.
	var keys []api.KeyInfo
	out := run(g)
	if err := json.Unmarshal([]byte(out), &keys); err != nil || len(keys) != 2 {
		t.Fatalf("key list --json: %v\n%s", err, out)
	}
	for _, k := range keys {
		if k.ID == used.ID && (k.LastUsedIP != "127.0.0.1" || k.LastUsedAt == nil || k.UseCount != 1) {
			t.Errorf("key list --json, the used key: %+v", k)
		}
	}
	if !strings.Contains(out, `"last_used_ip": "127.0.0.1"`) {
		t.Errorf("key list --json does not carry last_used_ip as the API does:\n%s", out)
	}
}

// TestKeyListHostileName: a key name is the customer's text (POST
// /v1/account/api-keys took newlines, tabs and C1 controls before the
// one-line rule, and still takes bidi overrides); `hostplanectl key list`
// prints a name stored so made safe, so it can neither add a row to the
// table nor send the operator's terminal a control sequence. The API now
// refuses such a name (400 naming it): the record is written as one stored
// before the rule was (the FSM takes it, as it took it then).
func TestKeyListHostileName(t *testing.T) {
	c, g, adm := cliCluster(t)
	ctx := context.Background()
	acc, _ := c.NewAccount("keyname@example.com")
	hostile := "evil\nkey_forged\tforged\tsnc_x…\tnever\t-\t0\tactive\tadmin\r\u009b2J\u202eman"
	if _, err := adm.CreateKey(ctx, acc.ID, api.KeyCreateRequest{Name: hostile}); err == nil || !strings.Contains(err.Error(), `"name"`) {
		t.Errorf("a key named %q: %v; want a 400 naming the name", hostile, err)
	}
	keyID := ids.New("key", time.Now())
	env, err := fsm.NewEnvelope(fsm.CmdKeyCreate, time.Now(), fsm.KeyCreate{ID: keyID, AccountID: acc.ID, Name: hostile,
		Hash: strings.Repeat("ab", 32), Prefix: "snc_hostile", Scopes: []string{"account:read"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Nodes[0].Server.API.Apply(ctx, env); err != nil {
		t.Fatal(err)
	}
	out, err := stdoutOf(t, func() error { return execQuiet(newKeyCmd(&globals{socket: g.socket}), "list", acc.ID) })
	if err != nil {
		t.Fatalf("key list: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Errorf("key list printed %d lines for 2 keys, want a header and 2 rows:\n%s", len(lines), out)
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "key_forged") {
			t.Errorf("the key name forged a row: %q", l)
		}
	}
	if i := strings.IndexAny(out, "\r\x1b\u009b\u202e"); i >= 0 {
		t.Errorf("key list printed a control character (%q at %d):\n%q", []rune(out[i:])[0], i, out)
	}
	var row string
	for _, l := range lines {
		if strings.HasPrefix(l, keyID) {
			row = l
		}
	}
	if want := "evil\uFFFDkey_forged\uFFFDforged\uFFFDsnc_x…\uFFFDnever\uFFFD-\uFFFD0\uFFFDactive\uFFFDadmin\uFFFD\uFFFD2J\uFFFDman"; !strings.Contains(row, want) {
		t.Errorf("the hostile key's row %q does not show its name as %q", row, want)
	}
}

// TestKeyUsageHostilePath: a key's usage log holds the request paths the
// customer sent (percent-decoded: %1b is ESC, %0a a newline); `hostplanectl
// key usage` prints them made safe, so a request cannot add rows to the log
// table or send the operator's terminal a control sequence.
func TestKeyUsageHostilePath(t *testing.T) {
	c, g, adm := cliCluster(t)
	ctx := context.Background()
	acc, key := c.NewAccount("keypath@example.com")
	req, err := http.NewRequest("GET", c.URL(0)+"/v1/servers/srv_%1b%5b2J%0a2026-01-01T00:00:00Z%09GET%09%2Fv1%2Fforged%09200", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	keys, err := adm.Keys(ctx, acc.ID)
	if err != nil || len(keys) != 1 {
		t.Fatalf("the account's keys: %v %v", keys, err)
	}
	id := keys[0].ID
	var log []api.KeyUsage
	deadline := time.Now().Add(20 * time.Second)
	for len(log) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the request never reached the key's usage log")
		}
		time.Sleep(100 * time.Millisecond)
		if log, err = adm.KeyUsage(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(log[0].Path, "\x1b[2J\n") {
		t.Fatalf("the usage log holds the path as %q; the test needs it decoded, with its ESC and newline", log[0].Path)
	}
	out, err := stdoutOf(t, func() error { return execQuiet(newKeyCmd(&globals{socket: g.socket}), "usage", id) })
	if err != nil {
		t.Fatalf("key usage: %v\n%s", err, out)
	}
	if lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); len(lines) != 2 {
		t.Errorf("key usage printed %d lines for 1 request, want a header and 1 row:\n%s", len(lines), out)
	}
	if i := strings.IndexAny(out, "\x1b\r"); i >= 0 {
		t.Errorf("key usage printed a control character at %d:\n%q", i, out)
	}
}
