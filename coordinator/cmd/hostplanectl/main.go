// Command hostplanectl is the operator CLI for hostplane coordinators and agents.
// It prints human text by default and stable JSON with --json; diagnostics go to
// stderr; the exit code is 0 on success, 1 on a failed request, 2 on bad usage.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

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
	if c, err := root.ExecuteContextC(ctx); err != nil {
		answered := err
		err = socketFlag(c, flagOfField(c, err))
		fmt.Fprintln(os.Stderr, "error:", errorLine(err, answered))
		if h := errorHint(err); h != "" {
			fmt.Fprintln(os.Stderr, h)
		}
		os.Exit(exitCode(err, started))
	}
}

// errorLine is err as printed after "error:". An error can carry outside
// text (a coordinator's answer quoting a registry's or a node's words, an
// agent's; answered is the error as the command returned it, before
// flagOfField copied its text into a usage error): that text is written on
// one line, its newlines, tabs and other
// controls as Go escapes (\n, \t, \x1b, \u202e), so it cannot start a
// line of its own or act on the terminal; the lines hostplanectl writes
// itself (cobra's suggestions, a hint) stay lines. A backslash in the
// text is doubled, so a typed \n reads apart from an escaped newline.
func errorLine(err, answered error) string {
	msg := err.Error()
	for _, outside := range answerTexts(answered) {
		if esc := escapeLine(outside); esc != outside {
			msg = strings.ReplaceAll(msg, outside, esc)
		}
	}
	return printable(msg, true)
}

// answerTexts is the text of each answer err wraps: *api.Error (a
// coordinator's) and *api.NodeError (an agent's).
func answerTexts(err error) []string {
	switch e := err.(type) {
	case nil:
		return nil
	case *api.Error:
		return []string{e.Error()}
	case *api.NodeError:
		return []string{e.Error()}
	case interface{ Unwrap() []error }:
		var out []string
		for _, w := range e.Unwrap() {
			out = append(out, answerTexts(w)...)
		}
		return out
	}
	return answerTexts(errors.Unwrap(err))
}

// escapeLine is s as the text of a Go string literal (strconv.Quote, less
// the quotes, a '"' left as it is): a backslash doubled, \n, \t, \r, \a,
// \x1b for the other ASCII controls and for bytes that are not UTF-8,
// \u202e for C1 and bidi controls, U+2028/2029 and other runes that do not
// print; so the text a server typed as \n reads apart from its newline.
func escapeLine(s string) string {
	q := strconv.Quote(s)
	// In q every backslash starts an escape: `\"` is only ever an escaped
	// quote, never the end of an escaped backslash.
	return strings.ReplaceAll(q[1:len(q)-1], `\"`, `"`)
}

// errorHint is what an operator needs to know of err beyond the
// coordinator's words, "" when nothing.
func errorHint(err error) string {
	var ae *api.Error
	if errors.As(err, &ae) && ae.StatusCode == 503 && ae.Code == "leader_unreachable" {
		// The coordinator on the socket is a follower: it forwarded the
		// command and ended the wait (a new leader was elected, or the
		// leader could not be reached at all).
		return "(this coordinator forwarded the command to the cluster's leader, which did not answer: it is down or hung, " +
			"or leadership moved; a change may have been applied or not: check, then run the command again)"
	}
	if errors.As(err, &ae) && ae.StatusCode == 503 && ae.Code == "no_leader" {
		// Not sent again (a write without an Idempotency-Key), or sent
		// again for ElectionWait without a leader answering.
		return "(no leader answered: the cluster is electing one, or has lost its quorum; a change may have been applied or not: " +
			"check `hostplanectl cluster status`, then run the command again)"
	}
	return ""
}

// fieldFlags names, per command, the flag or argument each field of its
// admin request comes from (API field=flag, space-separated): a 400 naming
// the field is said naming the flag the operator typed (flagOfField).
var fieldFlags = map[string]string{
	"account create":  "email=--email name=--name country=--country",
	"account pricing": "discount_percent=--discount prices_usd_cents=--price",
	"key create": "expires_at=--expires-in rate_limit_per_min=--rate-limit allowed_cidrs=--allow-ip scopes=--scopes name=--name " +
		"account_id=ACCOUNT_ID",
	"wallet credit":               "amount_usd_cents=--amount gateway=--gateway description=--description",
	"invoice issue":               "lines=--line due_days=--due-days",
	"ticket reply":                "staff_name=--as body=--body",
	"ticket status":               "status=STATUS",
	"cluster join":                "id=NODE_ID raft_addr=RAFT_ADDR api_addr=--api-addr",
	"cluster remove":              "id=NODE_ID",
	"cluster transfer-leadership": "to=--to",
	"hosting create": "account_id=--account plan=--plan domain=--domain username=--username php_version=--php node_id=--node " +
		"location=--location",
	"hosting suspend": "reason=--reason",
	"server suspend":  "reason=--reason",
	"server create": "account_id=--account plan=--plan template=--template hostname=--hostname label=--label ssh_keys=--ssh-key " +
		"ipv4=--ipv4 gateway4=--gateway4 os=--os network=--network node_id=--node location=--location",
	"ip-pool create": "name=NAME cidr=--cidr gateway=--gateway exclude=--exclude nodes=--nodes prefix_len=--prefix-len " +
		"quarantine_seconds=--quarantine resolvers=--resolver bridge=--bridge",
	"ip-pool reserve":   "ip=IP note=--note",
	"node token create": "ttl_seconds=--ttl node_id=--node-id description=--description",
	"ip-pool release":   "ip=IP",
	"reverse-zone add":  "zone=ZONE pool=--pool",
	"oauth approve":     "user_code=USER_CODE scopes=--scopes account_id=--account",
	"oauth deny":        "user_code=USER_CODE",
	"template label":    "name=NAME family=--family version=--version display_name=--display-name",
	"product create":    productFieldFlags,
	"product update":    productFieldFlags,
	"product retire":    "slug=SLUG",
}

const productFieldFlags = "slug=SLUG category=--category name_en=--name names=--name-in retail_monthly_usd_cents=--price " +
	"retail_yearly_usd_cents=--yearly-price tld=--tld locations=--locations vcpus=--vcpu memory=--ram-mb disk=--disk-gb " +
	"traffic_gb=--traffic-gb php_workers=--php-workers php_memory_mib=--php-memory-mib " +
	"max_execution_seconds=--max-execution-seconds upload_mib=--upload-mib disk_mib=--disk-mib"

// socketFlag makes an unanswered admin-socket call name the flag that sets
// the socket on command c: --admin-socket on the node commands the
// coordinators serve (their --socket is the agent's local socket), else
// --socket. There, a --socket the operator gave without --admin-socket
// (meant, as on every other command, for the coordinator's admin socket)
// is said to be the agent's.
func socketFlag(c *cobra.Command, err error) error {
	var se *client.SocketError
	if c == nil || !errors.As(err, &se) {
		return err
	}
	if admin := c.Flags().Lookup("admin-socket"); admin != nil {
		se.Flag = "--admin-socket"
		if agent := c.Flags().Lookup("socket"); agent != nil && agent.Changed && !admin.Changed {
			se.Note = fmt.Sprintf("under \"node\" --socket %s is the agent's local socket, not the coordinator's admin socket", agent.Value)
		}
	}
	return err
}

// flagOfField is err, a coordinator's 400 to command c, said as a usage
// error naming the flag or argument its field comes from (fieldFlags):
// "--price: 400 Bad Request: field "retail_monthly_usd_cents" must be …".
// The field is the one the message starts with ("field "X"", X up to its
// first '[' or '.'); a message naming a group of fields ("specs",
// "specs.hosting") or none is searched for the first field of the command
// it names. Other errors, and 400s naming no field of c's, pass.
func flagOfField(c *cobra.Command, err error) error {
	var be *client.BadPathValueError
	if c != nil && errors.As(err, &be) {
		// Refused by the client before sending: the argument or flag
		// the value came from, when one holds it.
		if name := givenAs(c, be.Value); name != "" {
			return usageError{name + ": " + err.Error()}
		}
		return usageError{err.Error()}
	}
	var ae *api.Error
	if c == nil || !errors.As(err, &ae) || ae.StatusCode != 400 {
		return err
	}
	pairs := strings.Fields(fieldFlags[strings.TrimPrefix(c.CommandPath(), c.Root().Name()+" ")])
	flagOf := map[string]string{}
	for _, p := range pairs {
		field, flag, _ := strings.Cut(p, "=")
		flagOf[field] = flag
	}
	msg := ae.Message
	if rest, ok := strings.CutPrefix(msg, `field "`); ok {
		if name, _, ok := strings.Cut(rest, `"`); ok {
			if i := strings.IndexAny(name, "[."); i >= 0 {
				name = name[:i]
			}
			if flag, ok := flagOf[name]; ok {
				return usageError{flag + ": " + err.Error()}
			}
		}
	}
	at, flag := len(msg), ""
	for field, f := range flagOf {
		for i := 0; i+len(field) <= len(msg); {
			j := strings.Index(msg[i:], field)
			if j < 0 {
				break
			}
			j += i
			if !fieldChar(msg, j-1) && !fieldChar(msg, j+len(field)) && j < at {
				at, flag = j, f
			}
			i = j + 1
		}
	}
	if flag == "" {
		return err
	}
	return usageError{flag + ": " + err.Error()}
}

// givenAs is the argument (by its name in c.Use) or flag of c that was
// given value v: the first argument, else the first flag set; "" if none.
func givenAs(c *cobra.Command, v string) string {
	names := argNames(c.Use)
	for i, a := range c.Flags().Args() {
		if a == v && i < len(names) {
			return names[i]
		}
	}
	name := ""
	c.Flags().Visit(func(f *pflag.Flag) {
		if name == "" && f.Value.String() == v {
			name = "--" + f.Name
		}
	})
	return name
}

// fieldChar reports whether msg[i] is a letter, digit or '_' (part of a
// field name); out of range is not.
func fieldChar(msg string, i int) bool {
	if i < 0 || i >= len(msg) {
		return false
	}
	b := msg[i]
	return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '_'
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
	root.AddCommand(newActionCmd(g))
	root.AddCommand(clidocs.Command(root, "1"))
	clicmd.RejectUnknownSubcommands(root)
	// A show or get of an id that is not there says which id: a
	// coordinator's 404, or the agent's not_found (node vm show).
	clicmd.NameNotFound(root, func(err error) bool {
		var ne *api.NodeError
		return api.StatusOf(err) == 404 || errors.As(err, &ne) && ne.Code == api.NodeErrNotFound
	})
	nameArgs(root)
	// A command's hooks run once its flags and arguments were accepted: an
	// error before them (an unknown command or flag, a flag value that does
	// not parse, the wrong number of arguments) is bad usage. The hook
	// itself refuses blank arguments and blank values of the flags that
	// must hold one when given.
	root.PersistentPreRunE = func(c *cobra.Command, args []string) error {
		*started = true
		if c.Name() == cobra.ShellCompRequestCmd || c.Name() == cobra.ShellCompNoDescRequestCmd {
			// The shell completion scripts' request: its last word is the
			// one being completed, "" after a space.
			return nil
		}
		if err := checkArgs(c, args); err != nil {
			return err
		}
		return checkGiven(c)
	}
	return root
}

// nameArgs makes each command's refusal of its positional arguments (too
// few, too many) name them as its usage line does: "missing argument
// ACCOUNT_ID" or
// "unexpected argument "extra"", then the usage line. Before, cobra's
// "accepts 1 arg(s), received 0" named neither (probe59).
func nameArgs(c *cobra.Command) {
	for _, sub := range c.Commands() {
		nameArgs(sub)
	}
	if c.Args == nil || c.HasSubCommands() { // a group's own check suggests a subcommand (clicmd)
		return
	}
	check := c.Args
	c.Args = func(cmd *cobra.Command, args []string) error {
		err := check(cmd, args)
		if err == nil {
			return nil
		}
		names := argNames(cmd.Use)
		variadic := strings.Contains(cmd.Use, "…") || strings.Contains(cmd.Use, "...")
		msg := err.Error()
		switch {
		case len(args) < len(names):
			msg = "missing argument " + strings.Join(names[len(args):], " ")
		case len(args) > len(names) && !variadic:
			msg = fmt.Sprintf("unexpected argument %q", args[len(names)])
		}
		return usageError{msg + " (usage: " + cmd.UseLine() + ")"}
	}
}

// exitCode is the exit status of a command that failed with err: 2 for bad
// usage (refused before the command ran, a usageError, or a 400 naming a
// field), else 1.
func exitCode(err error, started bool) int {
	var ue usageError
	if !started || errors.As(err, &ue) || api.StatusOf(err) == 400 {
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

func (g *globals) admin() *client.Admin { return newAdmin(g.socket) }

// newAdmin is the admin client of socket, saying on stderr each time it
// waits to send a command again while the cluster elects a leader (the
// coordinator's 503 with Retry-After: client.Admin.ElectionWait), so the
// operator sees why the command takes a while.
func newAdmin(socket string) *client.Admin {
	a := client.NewAdmin(socket)
	a.Waiting = func(e *api.Error, pause time.Duration) {
		why := "no leader yet"
		if e.Code == "leader_unreachable" {
			why = "the leader did not answer"
		}
		fmt.Fprintf(os.Stderr, "hostplanectl: %s (503 %s): sending the command again in %s\n", why, e.Code, pause)
	}
	return a
}

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

// checkLimit is the usage error of a --limit given outside 1 to most.
func checkLimit(c *cobra.Command, limit, most int) error {
	if c.Flags().Changed("limit") && (limit < 1 || limit > most) {
		return usageError{fmt.Sprintf("--limit %d: must be from 1 to %d", limit, most)}
	}
	return nil
}

// print writes v as JSON with --json, else calls text.
func (g *globals) print(v any, text func()) error {
	return g.printTo(os.Stdout, v, text)
}

// printTo is print with the JSON written to w (text writes where it will).
func (g *globals) printTo(w io.Writer, v any, text func()) error {
	if g.json {
		return writeJSON(w, v)
	}
	text()
	return nil
}
