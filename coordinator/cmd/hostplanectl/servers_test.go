package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

func runServer(args ...string) error { return execQuiet(newServerCmd(&globals{}), args...) }

// TestServerAndScheduleCLI checks the operator errors of `hostplanectl server
// create` and `node cordon|uncordon|drain` against a real coordinator (the
// successful paths run in tests/e2e with a real agent).
func TestServerAndScheduleCLI(t *testing.T) {
	wantUsageErrors(t, runServer,
		[]string{"create", "--plan", "nano", "--template", "t"},
		[]string{"create", "--account", "acc_x", "--template", "t"},
		[]string{"create", "--account", "acc_x", "--plan", "nano"},
	)
	_, cg, _ := cliCluster(t)
	sock := cg.socket
	var ae *api.Error
	g := &globals{socket: sock} // --socket is a root flag

	cmd := newServerCmd(g)
	cmd.SetArgs([]string{"create", "--account", "acc_00000000000000000000000000", "--plan", "nano", "--template", "t"})
	if err := cmd.Execute(); api.StatusOf(err) != 404 {
		t.Fatalf("create for an unknown account: want 404, got %v", err)
	}
	cmd = newServerCmd(g)
	cmd.SetArgs([]string{"create", "--account", "acc_00000000000000000000000000", "--plan", "huge", "--template", "t"})
	if err := cmd.Execute(); !errors.As(err, &ae) || ae.StatusCode != 400 || !strings.Contains(ae.Message, "plan") {
		t.Fatalf("create with an unknown plan: want 400 naming plan, got %v", err)
	}
	for _, verb := range []string{"cordon", "uncordon", "drain"} {
		if _, err := runNode(verb, "hv-missing", "--admin-socket", sock); api.StatusOf(err) != 404 {
			t.Fatalf("%s of an unknown node: want 404, got %v", verb, err)
		}
	}
}
