package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// An admin socket nobody answers on is reported naming the flag that sets it
// on the command the operator ran: --admin-socket under `node` (where
// --socket is the agent's local socket), --socket elsewhere.
func TestUnansweredSocketNamesItsFlag(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "admin.sock") // nothing listens there
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"node", "list", "--admin-socket", sock}, "set --admin-socket or HOSTPLANE_ADMIN_SOCKET"},
		{[]string{"node", "token", "create", "--admin-socket", sock}, "set --admin-socket or HOSTPLANE_ADMIN_SOCKET"},
		{[]string{"--socket", sock, "account", "show", "ada@example.com"}, "set --socket or HOSTPLANE_ADMIN_SOCKET"},
		{[]string{"--socket", sock, "cluster", "backup", filepath.Join(t.TempDir(), "b")}, "set --socket or HOSTPLANE_ADMIN_SOCKET"},
	} {
		started := false
		root := newRootCmd(&globals{}, &started)
		root.SetArgs(tc.args)
		root.SilenceErrors, root.SilenceUsage = true, true
		c, err := root.ExecuteC()
		if err == nil {
			t.Fatalf("%v: no error with nothing on %s", tc.args, sock)
		}
		err = socketFlag(c, flagOfField(c, err))
		if msg := err.Error(); !strings.Contains(msg, tc.want) || !strings.Contains(msg, sock) {
			t.Errorf("%v: %q, want it to name %s and say %q", tc.args, msg, sock, tc.want)
		}
	}
}
