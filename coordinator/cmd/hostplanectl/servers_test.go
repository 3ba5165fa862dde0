package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
)

func runServer(args ...string) error {
	cmd := newServerCmd(&globals{})
	cmd.SetArgs(args)
	cmd.SetOut(&strings.Builder{})
	cmd.SetErr(&strings.Builder{})
	return cmd.Execute()
}

// TestServerAndScheduleCLI checks the operator errors of `hostplanectl server
// create` and `node cordon|uncordon|drain` against a real coordinator (the
// successful paths run in tests/e2e with a real agent).
func TestServerAndScheduleCLI(t *testing.T) {
	var ue usageError
	for _, args := range [][]string{
		{"create", "--plan", "nano", "--template", "t"},
		{"create", "--account", "acc_x", "--template", "t"},
		{"create", "--account", "acc_x", "--plan", "nano"},
	} {
		if err := runServer(args...); !errors.As(err, &ue) {
			t.Fatalf("%v: want a usage error, got %v", args, err)
		}
	}
	if testing.Short() {
		return
	}
	c := testcluster.New(t, 1)
	c.WaitConverged(10 * time.Second)
	sock := c.Nodes[0].Cfg.AdminSocket
	var ae *api.Error
	g := &globals{socket: sock} // --socket is a root flag

	cmd := newServerCmd(g)
	cmd.SetArgs([]string{"create", "--account", "acc_00000000000000000000000000", "--plan", "nano", "--template", "t"})
	if err := cmd.Execute(); !errors.As(err, &ae) || ae.StatusCode != 404 {
		t.Fatalf("create for an unknown account: want 404, got %v", err)
	}
	cmd = newServerCmd(g)
	cmd.SetArgs([]string{"create", "--account", "acc_00000000000000000000000000", "--plan", "huge", "--template", "t"})
	if err := cmd.Execute(); !errors.As(err, &ae) || ae.StatusCode != 400 || !strings.Contains(ae.Message, "plan") {
		t.Fatalf("create with an unknown plan: want 400 naming plan, got %v", err)
	}
	for _, verb := range []string{"cordon", "uncordon", "drain"} {
		if _, err := runNode(verb, "hv-missing", "--admin-socket", sock); !errors.As(err, &ae) || ae.StatusCode != 404 {
			t.Fatalf("%s of an unknown node: want 404, got %v", verb, err)
		}
	}
}
