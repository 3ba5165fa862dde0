package main

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/spf13/cobra"
)

// execQuiet runs a command with args, its own output discarded.
func execQuiet(cmd *cobra.Command, args ...string) error {
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	return cmd.Execute()
}

// wantUsageErrors fails unless run refuses every one of argsList with a
// usage error (before any coordinator is asked).
func wantUsageErrors(t *testing.T, run func(args ...string) error, argsList ...[]string) {
	t.Helper()
	var ue usageError
	for _, args := range argsList {
		if err := run(args...); !errors.As(err, &ue) {
			t.Fatalf("%v: want a usage error, got %v", args, err)
		}
	}
}

// cliCluster starts one real coordinator and returns it with globals on its
// admin socket (JSON output) and an admin client of that socket.
func cliCluster(t *testing.T, opts ...testcluster.Option) (*testcluster.Cluster, *globals, *client.Admin) {
	t.Helper()
	c := testcluster.New(t, 1, opts...)
	c.WaitConverged(10 * time.Second)
	g := &globals{socket: c.Nodes[0].Cfg.AdminSocket, json: true}
	return c, g, client.NewAdmin(g.socket)
}
