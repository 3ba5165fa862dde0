package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
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

// fieldRefusal is a command line the coordinator refuses with a 400 whose
// message names field.
type fieldRefusal struct {
	args  []string
	field string
}

// wantFieldRefusals fails unless run gets, for every case, a 400 naming its
// field.
func wantFieldRefusals(t *testing.T, run func(args ...string) error, cases []fieldRefusal) {
	t.Helper()
	for _, c := range cases {
		var ae *api.Error
		if err := run(c.args...); !errors.As(err, &ae) || ae.StatusCode != 400 || !strings.Contains(ae.Message, c.field) {
			t.Fatalf("%v: want a 400 naming %s, got %v", c.args, c.field, err)
		}
	}
}

// cliCluster starts one real coordinator and returns it with globals on its
// admin socket (JSON output) and an admin client of that socket.
func cliCluster(t *testing.T, opts ...testcluster.Option) (*testcluster.Cluster, *globals, *client.Admin) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a coordinator")
	}
	c := testcluster.New(t, 1, opts...)
	c.WaitConverged(10 * time.Second)
	g := &globals{socket: c.Nodes[0].Cfg.AdminSocket, json: true}
	return c, g, client.NewAdmin(g.socket)
}

// cmdCluster is cliCluster (skipped with -short) for a test of one command:
// the globals, the admin client, and run, which runs that command with args.
func cmdCluster(t *testing.T, newCmd func(*globals) *cobra.Command) (*globals, *client.Admin, func(args ...string) error) {
	t.Helper()
	_, g, adm := cliCluster(t)
	return g, adm, func(args ...string) error { return runCmd(newCmd, g, args...) }
}

// find is the first element of what list answers that match picks, and
// whether there is one; an error from list fails the test.
func find[T any](t *testing.T, list func(context.Context) ([]T, error), match func(T) bool) (T, bool) {
	t.Helper()
	xs, err := list(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range xs {
		if match(x) {
			return x, true
		}
	}
	var none T
	return none, false
}

// ctlCluster is cliCluster (skipped with -short) with one customer account
// of email on the coordinator, and the hostplanectl binary built, for the
// tests that run the binary.
func ctlCluster(t *testing.T, email string) (*testcluster.Cluster, *globals, *client.Admin, api.Account, string) {
	t.Helper()
	c, g, adm := cliCluster(t)
	acc, err := adm.CreateAccount(context.Background(), api.AccountCreateRequest{Email: email})
	if err != nil {
		t.Fatal(err)
	}
	return c, g, adm, acc, buildCtl(t)
}
