package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// `hostplanectl --socket S node list` (wherever --socket stands): under
// `node` --socket is the agent's local socket, so the coordinator commands
// there dial their --admin-socket (here its default, where nothing
// listens). The error must say so: name --admin-socket, and that the
// --socket S given is the agent's, not the coordinator's admin socket.
func TestNodeCommandSocketFlagIsTheAgents(t *testing.T) {
	dir := t.TempDir()
	admin := filepath.Join(dir, "coordinator.sock") // the default admin socket; nothing there
	t.Setenv("HOSTPLANE_ADMIN_SOCKET", admin)
	sock := filepath.Join(dir, "admin.sock") // the socket the operator meant
	for _, args := range [][]string{
		{"--socket", sock, "node", "list"},
		{"node", "list", "--socket", sock},
		{"node", "--socket", sock, "show", "n1"},
		{"node", "token", "create", "--socket", sock},
	} {
		started := false
		root := newRootCmd(&globals{}, &started)
		root.SetArgs(args)
		root.SilenceErrors, root.SilenceUsage = true, true
		c, err := root.ExecuteC()
		if err == nil {
			t.Fatalf("%v: no error with nothing on %s", args, admin)
		}
		msg := socketFlag(c, flagOfField(c, err)).Error()
		for _, want := range []string{admin, "set --admin-socket", "--socket " + sock + " is the agent's local socket"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%v: %q, want it to say %q", args, msg, want)
			}
		}
	}
	// Given --admin-socket too, --socket is the agent's as the operator
	// meant: nothing said of it.
	started := false
	root := newRootCmd(&globals{}, &started)
	root.SetArgs([]string{"node", "list", "--socket", sock, "--admin-socket", admin})
	root.SilenceErrors, root.SilenceUsage = true, true
	c, err := root.ExecuteC()
	if err == nil {
		t.Fatalf("no error with nothing on %s", admin)
	}
	if msg := socketFlag(c, flagOfField(c, err)).Error(); strings.Contains(msg, "agent's") || !strings.Contains(msg, "set --admin-socket") {
		t.Errorf("with --admin-socket given: %q, want --admin-socket named and nothing of --socket", msg)
	}
}
