package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hostplane/hostplane/internal/atomicfile"
	"github.com/hostplane/hostplane/internal/conflayer"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/spf13/cobra"
)

func newAccountCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "account", Short: "Create and show customer accounts"}
	var req api.AccountCreateRequest
	create := &cobra.Command{
		Use: "create", Short: "Create an account", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if req.Email == "" {
				return usageError{"--email is required"}
			}
			acc, err := g.admin().CreateAccount(c.Context(), req)
			if err != nil {
				return err
			}
			return g.print(acc, func() { printf("account %s created (%s)\n", acc.ID, acc.Email) })
		},
	}
	create.Flags().StringVar(&req.Email, "email", "", "email address (required, unique)")
	create.Flags().StringVar(&req.Name, "name", "", "display name (default: the email)")
	create.Flags().StringVar(&req.Country, "country", "", "ISO 3166-1 alpha-2 country (default TR)")
	nonEmptyWhenGiven(create.Flags(), "country")
	show := adminCmd(g, "show ACCOUNT_ID|EMAIL", "Show an account", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (api.Account, error) {
		return g.admin().Account(c.Context(), args[0])
	}, func(acc api.Account) {
		printf("id:       %s\nemail:    %s\nname:     %s\ncountry:  %s\ncreated:  %s\nbalance:  %s\n",
			acc.ID, acc.Email, acc.Name, acc.Country, acc.CreatedAt.Format(time.RFC3339), money(acc.BalanceUsdCents))
	})
	cmd.AddCommand(create, show, newPricingCmd(g))
	return cmd
}

func money(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s$%d.%02d", sign, c/100, c%100)
}

func newKeyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Mint, list and revoke API keys"}
	var req api.KeyCreateRequest
	var scopes, cidrs string
	var expires time.Duration
	create := &cobra.Command{
		Use: "create ACCOUNT_ID", Short: "Mint an API key (printed once)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			// A flag given names what the key gets: given empty (or only
			// commas and spaces) it must not fall back to the default, which
			// is wider (every default scope, any address, no expiry).
			if c.Flags().Changed("scopes") {
				if req.Scopes = conflayer.SplitList(scopes); len(req.Scopes) == 0 {
					return usageError{"--scopes names no scope (leave it out for the default scopes)"}
				}
			}
			if c.Flags().Changed("allow-ip") {
				if req.AllowedCIDRs = conflayer.SplitList(cidrs); len(req.AllowedCIDRs) == 0 {
					return usageError{"--allow-ip names no CIDR (leave it out to allow any address)"}
				}
			}
			if expires < 0 {
				return usageError{"--expires-in must be positive (0 or left out: the key never expires)"}
			}
			if expires > 0 {
				t := time.Now().Add(expires).UTC()
				req.ExpiresAt = &t
			}
			k, err := g.admin().CreateKey(c.Context(), args[0], req)
			if err != nil {
				return err
			}
			return g.print(k, func() {
				// Only the key goes to stdout, so KEY=$(hostplanectl key create …) works.
				fprintf(os.Stderr, "key %s for %s, scopes: %s\nThe key is shown only now; store it safely:\n", k.Info.ID, k.Info.AccountID, strings.Join(k.Info.Scopes, " "))
				fmt.Println(k.Key)
			})
		},
	}
	create.Flags().StringVar(&req.Name, "name", "", "a label for the key")
	create.Flags().StringVar(&scopes, "scopes", "", "comma-separated scopes (default: every scope except servers:destroy, hosting:destroy, orders:write, keys:write)")
	create.Flags().StringVar(&cidrs, "allow-ip", "", "comma-separated CIDRs the key may be used from (default: anywhere)")
	create.Flags().DurationVar(&expires, "expires-in", 0, "expire the key after this long (e.g. 720h); 0 = never")
	create.Flags().IntVar(&req.RateLimitPerMin, "rate-limit", 0, "requests per minute for this key (0 = coordinator default)")
	list := adminCmd(g, "list ACCOUNT_ID", "List an account's keys", cobra.ExactArgs(1), func(c *cobra.Command, args []string) ([]api.KeyInfo, error) {
		return g.admin().Keys(c.Context(), args[0])
	}, func(keys []api.KeyInfo) {
		// LAST IP: the client address of that last use ("-": never used, or
		// not known: below semantics level 2, or shipped without it). NAME
		// is the customer's text (newlines, tabs and C1 controls pass the
		// API's check), SCOPES theirs to choose: printable, so neither can
		// add a row or reach the terminal as a control sequence.
		table(os.Stdout, "ID\tNAME\tPREFIX\tLAST USED\tLAST IP\tUSES\tSTATE\tSCOPES", keys, func(tw io.Writer, k api.KeyInfo) {
			fprintf(tw, "%s\t%s\t%s…\t%s\t%s\t%d\t%s\t%s\n", k.ID, printable(k.Name, false), k.Prefix, tstr(k.LastUsedAt), dash(printable(k.LastUsedIP, false)), k.UseCount, keyState(k), printable(strings.Join(k.Scopes, ","), false))
		})
	})
	revoke := adminCmd(g, "revoke KEY_ID", "Revoke a key (takes effect at once)", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (api.KeyInfo, error) {
		return g.admin().RevokeKey(c.Context(), args[0])
	}, func(k api.KeyInfo) { printf("key %s revoked\n", k.ID) })
	usage := adminCmd(g, "usage KEY_ID", "Show a key's recent usage log", cobra.ExactArgs(1), func(c *cobra.Command, args []string) ([]api.KeyUsage, error) {
		return g.admin().KeyUsage(c.Context(), args[0])
	}, func(u []api.KeyUsage) {
		// METHOD and PATH are what the client sent (the path decoded: %1b is
		// ESC): printable, as NAME in key list.
		table(os.Stdout, "TIME\tMETHOD\tPATH\tSTATUS\tIP", u, func(tw io.Writer, e api.KeyUsage) {
			fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", e.At.Format(time.RFC3339), printable(e.Method, false), printable(e.Path, false), e.Status, printable(e.IP, false))
		})
	})
	cmd.AddCommand(create, list, revoke, usage)
	return cmd
}

func keyState(k api.KeyInfo) string {
	switch {
	case k.RevokedAt != nil:
		return "revoked"
	case k.ExpiresAt != nil && time.Now().After(*k.ExpiresAt):
		return "expired"
	}
	return "active"
}

func tstr(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func newWalletCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "wallet", Short: "Credit customer wallets"}
	var req api.WalletCreditRequest
	var amount, idem string
	credit := &cobra.Command{
		Use: "credit ACCOUNT_ID", Short: "Credit a deposit (fires wallet.deposit.received)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cents, err := parseMoney(amount)
			if err != nil {
				return usageError{"--amount: " + err.Error()}
			}
			req.AmountUsdCents = cents
			tx, err := g.admin().CreditWalletOnce(c.Context(), args[0], req, idem)
			if err != nil {
				return err
			}
			return g.print(tx, func() {
				printf("credited %s (transaction %s); balance now %s\n", money(tx.AmountUsdCents), tx.ID, money(tx.BalanceAfterUsdCents))
			})
		},
	}
	credit.Flags().StringVar(&amount, "amount", "", "amount in USD, e.g. 25 or 25.50 (required)")
	credit.Flags().StringVar(&req.Gateway, "gateway", "manual", "payment gateway that took the money")
	nonEmptyWhenGiven(credit.Flags(), "gateway")
	credit.Flags().StringVar(&req.Description, "description", "", "shown on the transaction")
	credit.Flags().StringVar(&idem, "idempotency-key", "", "credit at most once under this key (e.g. the payment's id at the gateway): a retry with the same key and flags answers the first credit (24 h)")
	nonEmptyWhenGiven(credit.Flags(), "idempotency-key")
	cmd.AddCommand(credit)
	return cmd
}

// parseMoney turns "25", "25.5" or "25.50" into cents.
func parseMoney(s string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("required")
	}
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > 2 {
		return 0, fmt.Errorf("at most two decimals")
	}
	for len(frac) < 2 {
		frac += "0"
	}
	var cents int64
	for _, ch := range whole + frac {
		if ch < '0' || ch > '9' {
			return 0, fmt.Errorf("%q is not an amount", s)
		}
		cents = cents*10 + int64(ch-'0')
		if cents > 1e12 {
			return 0, fmt.Errorf("too large")
		}
	}
	return cents, nil
}

func newInvoiceCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "invoice", Short: "Issue and pay invoices"}
	var lines []string
	var idem string
	var req api.InvoiceIssueRequest
	issue := &cobra.Command{
		Use:     "issue ACCOUNT_ID",
		Short:   "Issue an invoice (fires invoice.created, and invoice.paid with --pay-from-wallet)",
		Example: `  hostplanectl invoice issue acc_… --line "VPS S1 (Jan)=12.00" --line "Backup add-on=2x1.50" --pay-from-wallet`,
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if len(lines) == 0 {
				return usageError{"at least one --line DESCRIPTION=PRICE or DESCRIPTION=QTYxPRICE is required"}
			}
			if req.DueDays < 1 {
				// The API takes 0 as "left out" (7 days): refused here, so
				// --due-days 0 is not an invoice due in a week.
				return usageError{"--due-days must be from 1 to 365"}
			}
			for _, l := range lines {
				desc, price, ok := strings.Cut(l, "=")
				if !ok || desc == "" {
					return usageError{fmt.Sprintf("--line %q: want DESCRIPTION=PRICE or DESCRIPTION=QTYxPRICE", l)}
				}
				qty := int64(1)
				if q, p, ok := strings.Cut(price, "x"); ok {
					// The whole of QTY is the number ("2abc" is no quantity),
					// and 0 is refused here: the API takes 0 as "left out" (1).
					n, err := strconv.ParseInt(q, 10, 64)
					if err != nil || n < 1 {
						return usageError{fmt.Sprintf("--line %q: the quantity must be a whole number of at least 1", l)}
					}
					qty, price = n, p
				}
				cents, err := parseMoney(price)
				if err != nil {
					return usageError{fmt.Sprintf("--line %q: %v", l, err)}
				}
				req.Lines = append(req.Lines, api.InvoiceLineRequest{Description: desc, Quantity: qty, UnitPriceUsdCents: cents})
			}
			inv, err := g.admin().IssueInvoiceOnce(c.Context(), args[0], req, idem)
			if err != nil {
				return err
			}
			return g.print(inv, func() {
				printf("invoice %s (%s) issued: %s, %s\n", inv.Number, inv.ID, money(inv.TotalUsdCents), inv.Status)
			})
		},
	}
	issue.Flags().StringArrayVar(&lines, "line", nil, "line item DESCRIPTION=PRICE or DESCRIPTION=QTYxPRICE (repeatable)")
	issue.Flags().IntVar(&req.DueDays, "due-days", 7, "days until due")
	issue.Flags().BoolVar(&req.PayFromWallet, "pay-from-wallet", false, "pay at once from the wallet (fails if the balance is short)")
	issue.Flags().StringVar(&idem, "idempotency-key", "", "issue at most once under this key: a retry with the same key and flags answers the first invoice (24 h)")
	nonEmptyWhenGiven(issue.Flags(), "idempotency-key")
	pay := adminCmd(g, "pay INVOICE_ID", "Pay an unpaid invoice from the wallet", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (api.Invoice, error) {
		return g.admin().PayInvoice(c.Context(), args[0])
	}, func(inv api.Invoice) { printf("invoice %s is %s\n", inv.Number, inv.Status) })
	cmd.AddCommand(issue, pay)
	return cmd
}

func newTicketCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "ticket", Short: "Staff side of support tickets: the queue, threads, replies, status"}
	var req api.StaffReplyRequest
	reply := &cobra.Command{
		Use: "reply TICKET_ID", Short: "Post a staff reply (fires ticket.replied)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if req.Body == "-" {
				raw, err := io.ReadAll(os.Stdin)
				if err != nil {
					return err
				}
				req.Body = string(raw)
			}
			if strings.TrimSpace(req.Body) == "" {
				return usageError{"--body is required (the reply text, or - to read it from stdin)"}
			}
			t, err := g.admin().StaffReply(c.Context(), args[0], req)
			if err != nil {
				return err
			}
			return g.print(t, func() { printf("replied to ticket #%d (%s); status %s\n", t.Number, t.ID, t.Status) })
		},
	}
	reply.Flags().StringVar(&req.Body, "body", "", "reply text, or - to read stdin (required)")
	reply.Flags().StringVar(&req.StaffName, "as", "Support", "staff name shown to the customer")
	status := adminCmd(g, "status TICKET_ID STATUS", "Set a ticket's status ("+strings.Join(api.TicketStatuses, "|")+")", cobra.ExactArgs(2), func(c *cobra.Command, args []string) (api.Ticket, error) {
		return g.admin().SetTicketStatus(c.Context(), args[0], args[1])
	}, func(t api.Ticket) { printf("ticket #%d is %s\n", t.Number, t.Status) })
	closeCmd := adminCmd(g, "close TICKET_ID", "Close a ticket (a customer reply re-opens it)", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (api.Ticket, error) {
		return g.admin().CloseTicket(c.Context(), args[0])
	}, func(t api.Ticket) { printf("ticket #%d (%s) is %s\n", t.Number, t.ID, t.Status) })
	show := adminCmd(g, "show TICKET_ID", "Show a ticket of any account with its messages", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (api.AdminTicket, error) {
		return g.admin().Ticket(c.Context(), args[0])
	}, printTicket)
	cmd.AddCommand(newTicketListCmd(g), show, reply, closeCmd, status)
	return cmd
}

func newTicketListCmd(g *globals) *cobra.Command {
	var statuses []string
	var q client.AdminTicketQuery
	list := &cobra.Command{
		Use:   "list",
		Short: "List the support queue: every account's tickets, newest first",
		Example: "  hostplanectl ticket list --status open,customer_reply\n" +
			"  hostplanectl ticket list --account ada@example.com --limit 20 --json",
		Args: cobra.NoArgs,
		RunE: adminRun(g, func(c *cobra.Command, _ []string) (api.AdminTicketList, error) {
			q.Statuses = nil
			for _, s := range statuses {
				s = strings.TrimSpace(s)
				if !slices.Contains(api.TicketStatuses, s) {
					return api.AdminTicketList{}, usageError{fmt.Sprintf("--status %q is not a ticket status: use %s (comma-separated or repeated for several)", s, strings.Join(api.TicketStatuses, ", "))}
				}
				q.Statuses = append(q.Statuses, s)
			}
			if c.Flags().Changed("account") && strings.TrimSpace(q.Account) == "" {
				return api.AdminTicketList{}, usageError{"--account is empty: give an account id or email (leave it out for every account)"}
			}
			if err := checkLimit(c, q.Limit, 1000); err != nil {
				return api.AdminTicketList{}, err
			}
			return g.admin().Tickets(c.Context(), q)
		}, func(l api.AdminTicketList) {
			table(os.Stdout, "ID\tNUMBER\tACCOUNT\tSTATUS\tPRIORITY\tDEPARTMENT\tUPDATED\tSUBJECT", l.Data, func(tw io.Writer, t api.AdminTicket) {
				fprintf(tw, "%s\t#%d\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Number, t.AccountID, t.Status, printable(t.Priority, false),
					printable(t.Department, false), t.UpdatedAt.UTC().Format(time.RFC3339), printable(t.Subject, false))
			})
			if l.Total > len(l.Data) {
				fprintf(os.Stderr, "%d of %d matching tickets shown (--limit)\n", len(l.Data), l.Total)
			}
		}),
	}
	list.Flags().StringSliceVar(&statuses, "status", nil, "only tickets with this status ("+strings.Join(api.TicketStatuses, ", ")+"); comma-separated or repeated for several")
	nonEmptyWhenGiven(list.Flags(), "status")
	list.Flags().StringVar(&q.Account, "account", "", "only this account's tickets (account id or email)")
	list.Flags().IntVar(&q.Limit, "limit", 0, "at most this many tickets, 1-1000 (default 200)")
	return list
}

// printTicket prints a ticket's fields and its thread, oldest message first.
func printTicket(t api.AdminTicket) {
	printf("ticket:      #%d (%s)\naccount:     %s\nsubject:     %s\nstatus:      %s\npriority:    %s\ndepartment:  %s\ncreated:     %s\nupdated:     %s\n",
		t.Number, t.ID, t.AccountID, printable(t.Subject, false), t.Status, printable(t.Priority, false), printable(t.Department, false),
		t.CreatedAt.UTC().Format(time.RFC3339), t.UpdatedAt.UTC().Format(time.RFC3339))
	for _, m := range t.Messages {
		who := m.Author
		if m.StaffName != "" {
			who += " (" + printable(m.StaffName, false) + ")"
		}
		printf("\n--- %s, %s, %s\n", who, m.CreatedAt.UTC().Format(time.RFC3339), m.ID)
		fmt.Printf("%s\n", printable(m.Body, true))
	}
}

// printable is customer text made safe for the operator's terminal: control
// characters (escape sequences could rewrite the screen) and invalid UTF-8
// become U+FFFD; newlines and tabs stay only when multiline.
func printable(s string, multiline bool) string {
	return strings.Map(func(r rune) rune {
		switch {
		case multiline && (r == '\n' || r == '\t'):
			return r
		case r == utf8.RuneError, unicode.IsControl(r), r == '\u2028', r == '\u2029', unicode.Is(unicode.Bidi_Control, r):
			return '\uFFFD'
		}
		return r
	}, s)
}

func newClusterCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Coordinator cluster membership, backup and restore"}
	status := adminCmd(g, "status", "Show Raft membership and this node's indexes", cobra.NoArgs, func(c *cobra.Command, _ []string) (api.ClusterStatus, error) {
		return g.admin().ClusterStatus(c.Context())
	}, printStatus)
	var joinAPI string
	join := &cobra.Command{
		Use: "join NODE_ID RAFT_ADDR", Short: "Add a coordinator (started with --bootstrap=false) as a voter", Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			st, err := g.admin().ClusterJoin(c.Context(), args[0], args[1], joinAPI)
			if err != nil {
				return err
			}
			return g.print(st, func() { printf("%s joined\n", args[0]); printStatus(st) })
		},
	}
	join.Flags().StringVar(&joinAPI, "api-addr", "", "the new node's API address (optional: with a shared cluster secret the node registers it itself)")
	var force bool
	remove := &cobra.Command{
		Use: "remove NODE_ID", Short: "Remove a coordinator from the cluster", Args: cobra.ExactArgs(1),
		Long: `Remove a coordinator from the Raft configuration (run it against any coordinator:
the request is forwarded to the leader). The removal of a voter is refused when the
voters left would not include a quorum that answers the leader (one of three down,
and another removed): the cluster would then take no write, the removal included,
until the missing ones are back. --force removes it anyway.`,
		RunE: func(c *cobra.Command, args []string) error {
			st, err := g.admin().ClusterRemoveWith(c.Context(), api.ClusterRemoveRequest{ID: args[0], Force: force})
			if err != nil {
				return err
			}
			return g.print(st, func() { printf("%s removed\n", args[0]); printStatus(st) })
		},
	}
	remove.Flags().BoolVar(&force, "force", false, "remove a voter even if the voters left would not include a quorum that answers (the cluster stops taking writes)")
	var transferTo string
	transfer := &cobra.Command{
		Use:   "transfer-leadership",
		Short: "Hand the Raft leadership to another coordinator (before stopping the leader for an upgrade)",
		Long: `Hand the Raft leadership to another voter: the one given with --to, or the most
up-to-date one. Writes pause for the hand-off (well under a second on a healthy
cluster; clients get 503 with Retry-After meanwhile). Run it against any
coordinator: the request is forwarded to the leader.`,
		Args: cobra.NoArgs,
		RunE: adminRun(g, func(c *cobra.Command, _ []string) (api.ClusterStatus, error) {
			return g.admin().ClusterTransferLeadership(c.Context(), transferTo)
		}, func(st api.ClusterStatus) { printf("leadership transferred to %s\n", st.LeaderID); printStatus(st) }),
	}
	transfer.Flags().StringVar(&transferTo, "to", "", "coordinator id to hand the leadership to (default: the most up-to-date voter)")
	nonEmptyWhenGiven(transfer.Flags(), "to")
	var staleBackup bool
	stallTimeout := defaultBackupStall
	backup := &cobra.Command{
		Use: "backup FILE", Short: "Write a consistent copy of the replicated state to FILE", Args: cobra.ExactArgs(1),
		Long: `Write a consistent copy of the cluster's state to FILE (mode 0600). Run it against
any coordinator: the leader takes the copy after confirming its leadership, so it
holds every write acknowledged before the command. Without a leader it fails;
--stale then copies the state of the coordinator asked, which may miss writes
acknowledged elsewhere (the output names the coordinator and its applied index).

A regular FILE is replaced atomically (a symbolic link to one keeps pointing at it);
FILE "-", or a pipe or device such as /dev/stdout, is written as the copy arrives,
and the summary then goes to standard error.

A backup that gets no data for --stall-timeout (a leader that hangs) ends with an
error: a regular FILE is then left as it was; what went to a pipe is incomplete
and is not a backup (cluster restore refuses it).`,
		RunE: func(c *cobra.Command, args []string) error {
			if stallTimeout <= 0 {
				return usageError{"--stall-timeout must be above 0"}
			}
			adm := g.admin()
			// A large state sent to a slow output may take longer than the
			// client's overall limit: the stall bound bounds each wait instead.
			adm.HTTP.Timeout = 0
			adm.BackupStall = stallTimeout
			var info client.BackupInfo
			n, streamed, err := writeBackup(args[0], func(w io.Writer) error {
				var err error
				info, err = adm.BackupWith(c.Context(), w, staleBackup)
				return err
			})
			if stalled := errors.Is(err, client.ErrBackupStalled); stalled || err != nil && n > 0 {
				return backupCut(args[0], n, streamed, stalled, stallTimeout, err)
			}
			if api.StatusOf(err) == http.StatusServiceUnavailable && !staleBackup && !streamed {
				return fmt.Errorf("%w\n(no copy was written; to copy this coordinator's own state, which may miss writes acknowledged elsewhere: hostplanectl cluster backup --stale %s)", err, args[0])
			}
			if err != nil {
				return err
			}
			out := map[string]any{"file": args[0], "bytes": n, "node": info.Node, "applied_index": info.AppliedIndex, "stale": info.Stale}
			summary := os.Stdout
			if streamed {
				summary = os.Stderr // stdout may be the copy itself
			}
			return g.printTo(summary, out, func() {
				fprintf(summary, "backup written to %s (%d bytes): the state of coordinator %s at applied index %d", args[0], n, info.Node, info.AppliedIndex)
				if info.Stale {
					fprintf(summary, ", its own, not confirmed with the leader: it may miss writes acknowledged elsewhere")
				}
				fmt.Fprintln(summary)
			})
		},
	}
	backup.Flags().BoolVar(&staleBackup, "stale", false, "copy the state of the coordinator asked, without the leader (it may miss writes acknowledged elsewhere)")
	backup.Flags().DurationVar(&stallTimeout, "stall-timeout", defaultBackupStall, "give up when no data of the copy arrives for this long (a leader that hangs)")
	restore := &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the whole cluster's state with a backup (disaster recovery)",
		Long:  "Replace the whole cluster's state with a backup (disaster recovery). FILE \"-\" reads the backup from standard input.",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var in io.Reader = os.Stdin
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					if why := dirTrouble(args[0]); why != "" {
						return usageError{"FILE " + args[0] + ": " + why}
					}
					if errors.Is(err, fs.ErrNotExist) {
						return usageError{"FILE " + args[0] + " does not exist"}
					}
					return err
				}
				defer f.Close()
				if st, err := f.Stat(); err == nil && st.IsDir() {
					// Else read as the upload: "admin socket …: read FILE: is a
					// directory (is the coordinator running?)".
					return usageError{"FILE " + args[0] + " is a directory"}
				}
				in = f
			}
			st, err := g.admin().Restore(c.Context(), in)
			if err != nil {
				return err
			}
			return g.print(st, func() { printf("restored %s\n", args[0]); printStatus(st) })
		},
	}
	cmd.AddCommand(status, join, remove, transfer, backup, restore)
	return cmd
}

func printStatus(st api.ClusterStatus) {
	printf("node %s: %s, leader %s, term %d, commit %d, applied %d, fsm %d bytes\n",
		st.NodeID, st.State, st.LeaderID, st.Term, st.CommitIndex, st.AppliedIndex, st.FSMBytes)
	if st.MaxLevel > 0 {
		printf("semantics level %d (this coordinator applies up to %d)\n", max(st.Level, 1), st.MaxLevel)
	}
	table(os.Stdout, "ID\tRAFT\tAPI\tSUFFRAGE\tLEADER\tMAX LEVEL", st.Servers, func(tw io.Writer, s api.ClusterServer) {
		lvl := "-" // known on the leader's view only
		if s.MaxLevel > 0 {
			lvl = fmt.Sprint(s.MaxLevel)
		}
		fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", s.ID, s.RaftAddr, s.APIAddr, s.Suffrage, s.Leader, lvl)
	})
	for _, w := range st.Warnings {
		printf("warning: %s\n", w)
	}
}

// writeBackup writes what fill writes to path: "-" is standard output; a
// path that names (through symbolic links) something other than a regular
// file — a pipe, a terminal, /dev/stdout — is written in place, as the copy
// arrives (streamed: a failure may leave part of it there); a regular file,
// or a new one, is replaced atomically, at the link's target when path is a
// symbolic link, so the link stays. Before, the temporary file was renamed
// over path itself: "cluster backup /dev/stdout" replaced the machine's
// /dev/stdout symlink with a regular file holding the backup.
func writeBackup(path string, fill func(io.Writer) error) (n int64, streamed bool, err error) {
	count := func(w io.Writer) error {
		cw := &countingWriter{w: w}
		err := fill(cw)
		n = cw.n
		return err
	}
	// Each write is sequenced before n is read: in one return statement the
	// order of reading n and calling count is unspecified.
	if path == "-" {
		err := count(os.Stdout)
		return n, true, err
	}
	st, err := os.Stat(path)
	switch {
	case err == nil && st.IsDir():
		return 0, false, usageError{"FILE " + path + " is a directory"}
	case err == nil && !st.Mode().IsRegular():
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return 0, false, err
		}
		err = count(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return n, true, err
	case err == nil:
		target, err := filepath.EvalSymlinks(path)
		if err != nil {
			return 0, false, err
		}
		err = atomicfile.WriteFrom(target, 0o600, count)
		return n, false, err
	case errors.Is(err, fs.ErrNotExist):
		if lst, lerr := os.Lstat(path); lerr == nil && lst.Mode()&fs.ModeSymlink != 0 {
			return 0, false, usageError{"FILE " + path + " is a symbolic link to a missing file"}
		}
		if why := dirTrouble(path); why != "" {
			// Else the temporary file's name: "open DIR/.x.tmp-123: no such file".
			return 0, false, usageError{"FILE " + path + ": " + why}
		}
		err := atomicfile.WriteFrom(path, 0o600, count)
		return n, false, err
	default:
		if why := dirTrouble(path); why != "" {
			// Else "stat FILE: not a directory", which does not say where.
			return 0, false, usageError{"FILE " + path + ": " + why}
		}
		return 0, false, err
	}
}

// dirTrouble says why FILE path's directory cannot hold it, naming the
// directory and, when the trouble is higher up, the first path component
// from the top that does not exist or is not a directory: "its directory
// D does not exist", "its directory D is not a directory", "its directory
// D does not exist: U is not a directory". "" when the directory is one
// (or cannot be looked at: the caller's own error says why).
func dirTrouble(path string) string {
	dir := filepath.Dir(path)
	if isDir(dir) {
		return ""
	}
	var up []string // dir and each directory above it, the top last
	for p := dir; ; p = filepath.Dir(p) {
		up = append(up, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	for i := len(up) - 1; i >= 0; i-- {
		st, err := os.Stat(up[i])
		var what string
		switch {
		case err == nil && st.IsDir():
			continue
		case err == nil:
			what = "is not a directory"
		case errors.Is(err, fs.ErrNotExist):
			what = "does not exist"
		default:
			return ""
		}
		if i == 0 {
			return "its directory " + dir + " " + what
		}
		return "its directory " + dir + " does not exist: " + up[i] + " " + what
	}
	return ""
}

func isDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// defaultBackupStall is `cluster backup --stall-timeout`'s default: how
// long it waits for the next bytes of the copy (client.Admin.BackupStall).
const defaultBackupStall = client.DefaultBackupStall

// backupCut is the error of a backup that stalled or broke once started:
// it says what became of FILE and what to do.
func backupCut(file string, n int64, streamed, stalled bool, stall time.Duration, err error) error {
	var se *client.SocketError
	if errors.As(err, &se) {
		err = se.Err // the coordinator answered: "is it running?" misleads
	}
	what := fmt.Sprintf("the backup broke after %d bytes: %v", n, err)
	switch {
	case stalled && n == 0:
		what = fmt.Sprintf("the backup stalled: no answer from the coordinator for %s (it, or the leader it asks, may hang)", stall)
	case stalled:
		what = fmt.Sprintf("the backup stalled: no data from the coordinator for %s after %d bytes (the leader streaming it may hang)", stall, n)
	}
	left := fmt.Sprintf("%s was not written (left as it was)", file)
	if streamed {
		left = fmt.Sprintf("the %d bytes written to %s are an incomplete copy, not a backup: discard them", n, file)
		if file == "-" {
			left = fmt.Sprintf("the %d bytes written to standard output are an incomplete copy, not a backup: discard them", n)
		}
	}
	return fmt.Errorf("%s\n(%s; see `hostplanectl cluster status`, then run the backup again)", what, left)
}
