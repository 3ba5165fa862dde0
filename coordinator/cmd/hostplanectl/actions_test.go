package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/fsmtest"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
)

// TestActionCLI: `hostplanectl action list|get` show every account's
// actions from a real coordinator: newest first with account, command,
// resource, status, current task and node; filtered by --account (id or
// email), --server and --status; paged by --limit and --cursor (the next
// cursor said on stderr as text, next_cursor in --json); get shows one with
// the node's own step. A bad flag is a usage error naming it before the
// coordinator is asked; the coordinator refuses a bad query with a 400
// naming the parameter, an unknown account or action with a 404.
func TestActionCLI(t *testing.T) {
	run := func(g *globals, args ...string) error { return execQuiet(newActionCmd(g), args...) }
	quiet := &globals{socket: "/nonexistent/admin.sock"}
	var ue usageError
	for flag, args := range map[string][]string{
		"--status":  {"list", "--status", "done"},
		"--limit":   {"list", "--limit", "201"},
		"--account": {"list", "--account", " "},
		"--server":  {"list", "--server", "hst_x"},
		"--hosting": {"list", "--hosting", "srv_x"},
		"--cursor":  {"list", "--cursor", "srv_x"},
	} {
		if err := run(quiet, args...); !errors.As(err, &ue) || !strings.Contains(ue.msg, flag) {
			t.Errorf("%v: want a usage error naming %s, got %v", args, flag, err)
		}
	}
	wantUsageErrors(t, func(args ...string) error { return run(quiet, args...) },
		[]string{"list", "--limit", "0"}, []string{"list", "--server", "srv_a", "--hosting", "hst_b"}, []string{"list", "--status", ""})
	c, g, adm := cliCluster(t)
	ctx := context.Background()
	apply := func(typ fsm.CommandType, p any) {
		t.Helper()
		env, err := fsm.NewEnvelope(typ, time.Now(), p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Nodes[0].Server.API.Apply(ctx, env); err != nil {
			t.Fatalf("apply %d: %v", typ, err)
		}
	}
	apply(fsm.CmdNodeCAInit, fsm.NodeCAInit{CertDER: []byte{1}, SealedKey: "v1.x", Fingerprint: "fp"})
	apply(fsm.CmdNodeTokenCreate, fsm.NodeTokenCreate{ID: "jt_1", Hash: "h1", ExpiresAt: time.Now().Add(time.Hour)})
	apply(fsm.CmdNodeEnrol, fsm.NodeEnrol{TokenID: "jt_1", TokenHash: "h1", NodeID: "hv-cli", CertSerial: "s1", CertNotAfter: time.Now().Add(24 * time.Hour)})
	accA, _ := c.NewAccount("acts-a@example.com")
	accB, _ := c.NewAccount("acts-b@example.com")
	// place makes a server for acc with its provisioning action (pending;
	// the node never connects, so it stays so): the server's and action's ids.
	place := func(acc string) (string, string) {
		t.Helper()
		time.Sleep(2 * time.Millisecond) // distinct id times: a known order
		c := fsmtest.ServerCreate(acc, "hv-cli", time.Now())
		apply(fsm.CmdServerCreate, c)
		return c.Server.ID, c.Action.ID
	}
	srvA1, actA1 := place(accA.ID)
	_, actA2 := place(accA.ID)
	_, actB1 := place(accB.ID)
	apply(fsm.CmdActionFinish, fsm.ActionFinish{ID: actA1, Success: true})
	apply(fsm.CmdActionProgress, fsm.ActionProgress{ID: actA2, At: time.Now().UTC(), Percent: 20, Step: "seed-created"})

	list := func(args ...string) api.AdminActionList {
		t.Helper()
		return listJSON[api.AdminActionList](t, func(args ...string) error { return run(g, args...) }, args...)
	}
	idsOf := func(l api.AdminActionList) string {
		var out []string
		for _, a := range l.Data {
			out = append(out, a.ID)
		}
		return strings.Join(out, " ")
	}
	same := func(what string, l api.AdminActionList, want ...string) {
		t.Helper()
		if got := idsOf(l); got != strings.Join(want, " ") {
			t.Errorf("%s: %s, want %v", what, got, want)
		}
	}
	all := list()
	same("every action, newest first", all, actB1, actA2, actA1)
	if len(all.Data) == 3 {
		b, a2 := all.Data[0], all.Data[1]
		if b.AccountID != accB.ID || b.Status != api.ActionPending || b.CurrentTask != api.ActionTaskQueued || b.NodeID != "hv-cli" ||
			a2.Status != api.ActionRunning || a2.CurrentTask != api.ActionTaskCreating || a2.Step != "seed-created" || all.NextCursor != nil {
			t.Errorf("list: %+v", all)
		}
	}
	same("--account by email", list("--account", "Acts-A@example.com"), actA2, actA1)
	same("--account by id", list("--account", accB.ID), actB1)
	same("--server", list("--server", srvA1), actA1)
	same("--status running", list("--status", "running"), actA2)
	same("--status success --account", list("--status", "success", "--account", accA.ID), actA1)
	p1 := list("--limit", "1")
	same("--limit 1", p1, actB1)
	if p1.NextCursor == nil || *p1.NextCursor != actB1 {
		t.Fatalf("--limit 1: next_cursor %v, want %s", p1.NextCursor, actB1)
	}
	same("--cursor", list("--limit", "2", "--cursor", *p1.NextCursor), actA2, actA1)

	// As text: the columns, and the next page said on stderr.
	text := &globals{socket: g.socket}
	out, err := stdoutOf(t, func() error { return run(text, "list", "--status", "running") })
	if err != nil || !containsAll(out, "ID", "ACCOUNT", "COMMAND", "STATUS", "TASK", "NODE", actA2, accA.ID, "server.provision", "running", "creating", "hv-cli") || strings.Contains(out, actA1) {
		t.Fatalf("list as text: %v\n%s", err, out)
	}
	// A page with more after it says on stderr how to get the next one;
	// following that line walks the rest, and the last page says nothing.
	var seen []string
	for args, pages := []string{"list", "--limit", "2"}, 0; ; pages++ {
		var out string
		errOut, err := stderrOf(t, func() error {
			var err error
			out, err = stdoutOf(t, func() error { return run(text, args...) })
			return err
		})
		if err != nil || pages > 3 {
			t.Fatalf("%v: %v (page %d)", args, err, pages)
		}
		for _, id := range []string{actB1, actA2, actA1} {
			if strings.Contains(out, id) {
				seen = append(seen, id)
			}
		}
		i := strings.Index(errOut, "more: hostplanectl action list ")
		if i < 0 {
			if strings.TrimSpace(errOut) != "" {
				t.Errorf("last page: stderr %q", errOut)
			}
			break
		}
		next := strings.Fields(strings.TrimPrefix(errOut[i:], "more: hostplanectl action "))
		if len(next) < 3 || next[1] != "--cursor" {
			t.Fatalf("next page line: %q", errOut)
		}
		args = []string{"list", "--limit", "2", "--cursor", next[2]}
	}
	if strings.Join(seen, " ") != strings.Join([]string{actB1, actA2, actA1}, " ") {
		t.Errorf("walking the text pages by their next line: %v", seen)
	}
	out, err = stdoutOf(t, func() error { return run(g, "get", actA2) })
	var one api.AdminAction
	if err != nil || json.Unmarshal([]byte(out), &one) != nil || one.ID != actA2 || one.AccountID != accA.ID || one.CurrentTask != "creating" || one.Step != "seed-created" || one.Progress != 20 {
		t.Fatalf("get --json: %v %s", err, out)
	}
	out, err = stdoutOf(t, func() error { return run(text, "get", actA1) })
	if err != nil || !containsAll(out, actA1, accA.ID, "server.provision", "success", "hv-cli") {
		t.Fatalf("get: %v\n%s", err, out)
	}

	// Refusals from the coordinator.
	var ae *api.Error
	for _, args := range [][]string{{"get", "act_00000000000000000000000000"}, {"get", "nope"}, {"list", "--account", "acc_00000000000000000000000000"}, {"list", "--account", "nobody@example.com"}} {
		if err := run(g, args...); api.StatusOf(err) != 404 {
			t.Errorf("%v: want 404, got %v", args, err)
		}
	}
	for param, q := range map[string]client.AdminActionQuery{
		"status": {Status: "done"}, "limit": {Limit: 201}, "server": {Server: "hst_x"}, "cursor": {Cursor: "x"}, "hosting": {Server: srvA1, Hosting: "hst_01jzq0x6m7d2k9c4v8b3n5t1aa"},
	} {
		if _, err := adm.Actions(ctx, q); !errors.As(err, &ae) || ae.StatusCode != 400 || !strings.Contains(ae.Message, `"`+param+`"`) {
			t.Errorf("%+v: want a 400 naming %s, got %v", q, param, err)
		}
	}
	if err := adm.Do(ctx, "GET", "/admin/actions?acount="+accA.ID, nil, nil); api.StatusOf(err) != 400 {
		t.Errorf("a misspelt parameter: want 400, got %v", err)
	}
}
