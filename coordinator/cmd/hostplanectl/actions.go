package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
)

// newActionCmd is "hostplanectl action": the actions of every account
// (GET /admin/actions), as the operator follows them.
func newActionCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "action", Short: "List and show actions (power, snapshots, provisioning, hosting …) of every account"}
	get := adminCmd(g, "get ACTION_ID", "Show one action of any account: status, current task, node, error", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (api.AdminAction, error) {
		return g.admin().Action(c.Context(), args[0])
	}, printAction)
	get.Example = "  hostplanectl action get act_01jzq0x6m7d2k9c4v8b3n5t1aa --json"
	cmd.AddCommand(newActionListCmd(g), get)
	return cmd
}

func newActionListCmd(g *globals) *cobra.Command {
	var q client.AdminActionQuery
	list := &cobra.Command{
		Use:   "list",
		Short: "List actions of every account, newest first, one page (--cursor for the next)",
		Example: "  hostplanectl action list --status running\n" +
			"  hostplanectl action list --account ada@example.com --server srv_01jzq0x6m7d2k9c4v8b3n5t1aa --limit 20 --json\n" +
			"  hostplanectl action list --cursor act_01jzq0x6m7d2k9c4v8b3n5t1aa",
		Args: cobra.NoArgs,
		RunE: adminRun(g, func(c *cobra.Command, _ []string) (api.AdminActionList, error) {
			if err := checkActionQuery(c, q); err != nil {
				return api.AdminActionList{}, err
			}
			return g.admin().Actions(c.Context(), q)
		}, func(l api.AdminActionList) {
			table(os.Stdout, "ID\tACCOUNT\tCOMMAND\tRESOURCE\tSTATUS\tTASK\tPROGRESS\tCREATED\tNODE\tERROR", l.Data, func(tw io.Writer, a api.AdminAction) {
				errText := ""
				if a.Error != nil {
					errText = a.Error.Code + ": " + a.Error.Message
				}
				fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d%%\t%s\t%s\t%s\n", a.ID, a.AccountID, a.Command, a.ResourceID, a.Status,
					dash(a.CurrentTask), a.Progress, a.CreatedAt.UTC().Format(time.RFC3339), dash(a.NodeID), printable(errText, false))
			})
			if l.NextCursor != nil {
				fprintf(os.Stderr, "more: hostplanectl action list --cursor %s (with the same filters)\n", *l.NextCursor)
			}
		}),
	}
	list.Flags().StringVar(&q.Account, "account", "", "only this account's actions (an id or email)")
	list.Flags().StringVar(&q.Server, "server", "", "only this server's actions (srv_…)")
	list.Flags().StringVar(&q.Hosting, "hosting", "", "only this hosting account's actions (hst_…)")
	list.Flags().StringVar(&q.Status, "status", "", "only actions of this status: "+strings.Join(api.ActionStatuses, ", "))
	list.Flags().IntVar(&q.Limit, "limit", 50, "actions per page, 1 to 200")
	list.Flags().StringVar(&q.Cursor, "cursor", "", "start after this action (the next cursor a previous page printed)")
	return list
}

// checkActionQuery is the usage error of action list's flags, if any.
func checkActionQuery(c *cobra.Command, q client.AdminActionQuery) error {
	for _, f := range []struct {
		name, v, hint string
	}{
		{"account", q.Account, "an account id or email (leave it out for every account)"},
		{"server", q.Server, "a server id, srv_…"},
		{"hosting", q.Hosting, "a hosting account id, hst_…"},
		{"status", q.Status, strings.Join(api.ActionStatuses, ", ")},
		{"cursor", q.Cursor, "the next cursor a previous page printed"},
	} {
		if c.Flags().Changed(f.name) && strings.TrimSpace(f.v) == "" {
			return usageError{"--" + f.name + " is empty: give " + f.hint}
		}
	}
	switch {
	case q.Server != "" && !strings.HasPrefix(q.Server, "srv_"):
		return usageError{fmt.Sprintf("--server %q is not a server id (srv_…)", q.Server)}
	case q.Hosting != "" && !strings.HasPrefix(q.Hosting, "hst_"):
		return usageError{fmt.Sprintf("--hosting %q is not a hosting account id (hst_…)", q.Hosting)}
	case q.Server != "" && q.Hosting != "":
		return usageError{"--server and --hosting: give one (an action is about one resource)"}
	case q.Status != "" && !slices.Contains(api.ActionStatuses, q.Status):
		return usageError{fmt.Sprintf("--status %q is not an action status: use %s", q.Status, strings.Join(api.ActionStatuses, ", "))}
	case q.Cursor != "" && !strings.HasPrefix(q.Cursor, "act_"):
		return usageError{fmt.Sprintf("--cursor %q is not an action id (act_…): give the next cursor a previous page printed", q.Cursor)}
	}
	return checkLimit(c, q.Limit, 200)
}

func printAction(a api.AdminAction) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fprintf(tw, "ID:\t%s\n", a.ID)
	fprintf(tw, "ACCOUNT:\t%s\n", a.AccountID)
	fprintf(tw, "COMMAND:\t%s\n", a.Command)
	fprintf(tw, "RESOURCE:\t%s %s\n", a.ResourceType, a.ResourceID)
	fprintf(tw, "STATUS:\t%s (%d%%)\n", a.Status, a.Progress)
	fprintf(tw, "TASK:\t%s\n", dash(a.CurrentTask))
	fprintf(tw, "NODE:\t%s (step %s)\n", dash(a.NodeID), dash(a.Step))
	fprintf(tw, "CREATED:\t%s\n", a.CreatedAt.UTC().Format(time.RFC3339))
	fprintf(tw, "STARTED:\t%s\n", tstr(a.StartedAt))
	fprintf(tw, "FINISHED:\t%s\n", tstr(a.FinishedAt))
	if a.Method != "" {
		fprintf(tw, "METHOD:\t%s\n", a.Method)
	}
	if a.Error != nil {
		fprintf(tw, "ERROR:\t%s: %s\n", a.Error.Code, printable(a.Error.Message, false))
	}
	_ = tw.Flush()
}
