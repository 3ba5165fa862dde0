// Command hostplanectl is the operator CLI for hostplane coordinators and agents.
// It prints human text by default and stable JSON with --json; diagnostics go to
// stderr; the exit code is 0 on success, 1 on a failed request, 2 on bad usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/hostplane/hostplane/internal/clicmd"
	"github.com/hostplane/hostplane/internal/clidocs"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/spf13/cobra"
)

// globals are the flags every coordinator command shares.
type globals struct {
	socket string
	json   bool
}

func main() {
	g := &globals{}
	root := &cobra.Command{
		Use:           "hostplanectl",
		Short:         "Operate hostplane coordinators and agents",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.socket, "socket", defaultAdminSocket(), "coordinator admin socket (env HOSTPLANE_ADMIN_SOCKET)")
	root.PersistentFlags().BoolVar(&g.json, "json", false, "print stable JSON instead of text")
	root.AddCommand(newAccountCmd(g), newKeyCmd(g), newWalletCmd(g), newInvoiceCmd(g), newTicketCmd(g), newClusterCmd(g), newNodeCmd(), newServerCmd(g), newIPPoolCmd(g), newReverseZoneCmd(g))
	root.AddCommand(newOAuthCmd(g))
	root.AddCommand(newHostingCmd(g))
	root.AddCommand(newProductCmd(g))
	root.AddCommand(newTemplateCmd(g))
	root.AddCommand(newDomainCmd(g))
	root.AddCommand(clidocs.Command(root, "1"))
	clicmd.RejectUnknownSubcommands(root)
	// A command's hooks run once its flags and arguments were accepted: an
	// error before them (an unknown command or flag, a flag value that does
	// not parse, the wrong number of arguments) is bad usage.
	started := false
	root.PersistentPreRun = func(*cobra.Command, []string) { started = true }
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(exitCode(err, started))
	}
}

// exitCode is the exit status of a command that failed with err: 2 for bad
// usage (refused before the command ran, a usageError, or a 400 naming a
// field), else 1.
func exitCode(err error, started bool) int {
	var ue usageError
	var ae *api.Error
	if !started || errors.As(err, &ue) || errors.As(err, &ae) && ae.StatusCode == 400 {
		return 2
	}
	return 1
}

// packagedAdminSocket is where the packaged coordinator (/etc/hostplane/coordinator.json)
// puts its admin socket.
var packagedAdminSocket = "/run/hostplane/coordinator/admin.sock"

// defaultAdminSocket is client.DefaultAdminSocket, or the packaged coordinator's
// socket when that one does not exist, HOSTPLANE_ADMIN_SOCKET is unset and the
// packaged one does.
func defaultAdminSocket() string {
	def := client.DefaultAdminSocket()
	if os.Getenv("HOSTPLANE_ADMIN_SOCKET") != "" {
		return def
	}
	if _, err := os.Stat(def); err != nil {
		if _, err := os.Stat(packagedAdminSocket); err == nil {
			return packagedAdminSocket
		}
	}
	return def
}

type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

// flagRefusal is the coordinator's 400 refusing field (`field "NAME" …`) as
// a usage error naming the command's flag instead, with the coordinator's
// reason (the rule is the coordinator's, checked once); other errors pass.
func flagRefusal(err error, field, flag string) error {
	var ae *api.Error
	prefix := fmt.Sprintf("field %q ", field)
	if errors.As(err, &ae) && ae.StatusCode == 400 && strings.HasPrefix(ae.Message, prefix) {
		return usageError{flag + " " + strings.TrimPrefix(ae.Message, prefix)}
	}
	return err
}

func (g *globals) admin() *client.Admin { return client.NewAdmin(g.socket) }

// adminRun is the RunE of a command that makes one call (on the coordinator
// admin socket) and prints its result: as JSON with --json, else with text.
func adminRun[T any](g *globals, call func(c *cobra.Command, args []string) (T, error), text func(T)) func(*cobra.Command, []string) error {
	return func(c *cobra.Command, args []string) error {
		v, err := call(c, args)
		if err != nil {
			return err
		}
		return g.print(v, func() { text(v) })
	}
}

// adminCmd is the command use (short help, positional args) that runs
// adminRun(g, call, text): most admin commands are just this.
func adminCmd[T any](g *globals, use, short string, args cobra.PositionalArgs, call func(c *cobra.Command, args []string) (T, error), text func(T)) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: args, RunE: adminRun(g, call, text)}
}

// flagReq is one required flag: its name, the value given, and a hint shown
// when it is missing.
type flagReq struct{ name, value, hint string }

// requireFlags is the usage error "--NAME is required (HINT)" of the first
// flag, in order, given no value; nil when every one has a value.
func requireFlags(reqs ...flagReq) error {
	for _, r := range reqs {
		if r.value != "" {
			continue
		}
		if r.hint == "" {
			return usageError{"--" + r.name + " is required"}
		}
		return usageError{"--" + r.name + " is required (" + r.hint + ")"}
	}
	return nil
}

// print writes v as JSON with --json, else calls text.
func (g *globals) print(v any, text func()) error {
	if g.json {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text()
	return nil
}
