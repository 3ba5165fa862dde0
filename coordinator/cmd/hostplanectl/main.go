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
	"github.com/spf13/pflag"
)

// globals are the flags every coordinator command shares.
type globals struct {
	socket string
	json   bool
}

func main() {
	started := false
	root := newRootCmd(&globals{}, &started)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(exitCode(err, started))
	}
}

// newRootCmd is hostplanectl's command tree on g; *started is set once a
// command's flags and arguments were accepted (its hooks ran).
func newRootCmd(g *globals, started *bool) *cobra.Command {
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
	// not parse, the wrong number of arguments) is bad usage. The hook
	// itself refuses blank arguments and blank values of the flags that
	// must hold one when given.
	root.PersistentPreRunE = func(c *cobra.Command, args []string) error {
		*started = true
		if err := checkArgs(c, args); err != nil {
			return err
		}
		return checkGiven(c)
	}
	return root
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

// checkArgs refuses a positional argument that is blank, "." or "..": an
// id or name is a path segment of the admin call, and such a segment names
// another endpoint (an empty id made "hosting unsuspend ”" a POST to
// /admin/hosting/unsuspend, "ticket close ”" one to /admin/tickets/status)
// or none; no command takes them as a name or a file an operator means. The
// argument is named as the command's usage names it.
func checkArgs(c *cobra.Command, args []string) error {
	names := argNames(c.Use)
	for i, a := range args {
		name := fmt.Sprintf("argument %d", i+1)
		if i < len(names) {
			name = names[i]
		}
		switch strings.TrimSpace(a) {
		case "":
			return usageError{name + " is empty"}
		case ".", "..":
			return usageError{fmt.Sprintf("%s %q is not a name", name, a)}
		}
	}
	return nil
}

// argNames are the placeholders of a command's positional arguments in its
// use line ("reserve NAME IP" → NAME, IP; "location NODE_ID [LOCATION]" →
// NODE_ID, LOCATION), up to the first flag.
func argNames(use string) []string {
	fields := strings.Fields(use)
	var out []string
	for _, f := range fields[min(1, len(fields)):] {
		if strings.HasPrefix(strings.TrimLeft(f, "["), "-") {
			break
		}
		out = append(out, strings.Trim(f, "[]…."))
	}
	return out
}

// givenNonEmpty is the annotation of a flag whose default is what leaving
// it out means (every account, any node, both passwords, no key): given, it
// must hold a value.
const givenNonEmpty = "hostplanectl/given-non-empty"

// nonEmptyWhenGiven marks flags of fs that, when given, must not be blank:
// an empty value (a shell variable that was not set) would otherwise do what
// leaving the flag out does, which is not what the operator wrote ("hosting
// list --account $ACC" listed every customer's accounts, "wallet credit
// --idempotency-key $PAYMENT" credited again on a retry).
func nonEmptyWhenGiven(fs *pflag.FlagSet, names ...string) {
	for _, n := range names {
		if err := fs.SetAnnotation(n, givenNonEmpty, []string{"true"}); err != nil {
			panic(err)
		}
	}
}

// checkGiven refuses a blank value of a flag nonEmptyWhenGiven marked.
func checkGiven(c *cobra.Command) error {
	var err error
	c.Flags().Visit(func(f *pflag.Flag) {
		if err != nil || f.Annotations[givenNonEmpty] == nil {
			return
		}
		vals := []string{f.Value.String()}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			vals = sv.GetSlice()
		}
		if strings.TrimSpace(strings.Join(vals, "")) == "" {
			err = usageError{fmt.Sprintf("--%s is empty: give a value, or leave the flag out for its default", f.Name)}
		}
	})
	return err
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
