package main

import (
	"io"
	"os"
	"strings"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/spf13/cobra"
)

// newDomainCmd is `hostplanectl domain …`: the registered domains of every
// account and the registry operations in flight.
func newDomainCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "domain", Short: "Show registered domains and their registry operations in flight"}
	var account string
	list := adminCmd(g, "list", "List registered domains (optionally of an account)", cobra.NoArgs, func(c *cobra.Command, _ []string) ([]api.AdminDomain, error) {
		return g.admin().Domains(c.Context(), account)
	}, func(ds []api.AdminDomain) {
		table(os.Stdout, "ID\tNAME\tSTATUS\tEXPIRES\tAUTO_RENEW\tIN_FLIGHT\tACCOUNT", ds, func(tw io.Writer, d api.AdminDomain) {
			fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%s\t%s\n", d.ID, d.Name, d.Status, expiry(d.ExpiresAt), d.AutoRenew, opLine(d.Op), d.AccountID)
		})
	})
	list.Flags().StringVar(&account, "account", "", "only this account's domains")
	nonEmptyWhenGiven(list.Flags(), "account")
	show := adminCmd(g, "show DOMAIN_ID", "Show a domain, its latest change and the registry operation in flight", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (api.AdminDomain, error) {
		return g.admin().Domain(c.Context(), args[0])
	}, func(d api.AdminDomain) {
		printf("id:            %s\nname:          %s\nstatus:        %s\naccount:       %s\nexpires:       %s\nnameservers:   %s\nauto_renew:    %t\ntransfer_lock: %t\nwhois_privacy: %t\nyearly price:  %s\n",
			d.ID, d.Name, d.Status, d.AccountID, expiry(d.ExpiresAt), dash(strings.Join(d.Nameservers, ", ")), d.AutoRenew, d.TransferLock, d.WhoisPrivacy, usd(d.YearlyUsdCents))
		if d.StatusReason != "" {
			printf("reason:        %s\n", d.StatusReason)
		}
		if d.Change != nil {
			printf("last change:   %s %s %s\n", d.Change.ID, d.Change.Status, d.Change.Reason)
		}
		if d.Op != nil {
			printf("in flight:     %s (cl_trid %s, since %s)\n", opLine(d.Op), d.Op.ClTRID, d.Op.StartedAt.Format(time.RFC3339))
		}
	})
	cmd.AddCommand(list, show)
	return cmd
}

func expiry(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format("2006-01-02")
}

func opLine(op *api.AdminDomainOp) string {
	if op == nil {
		return "-"
	}
	return op.Kind + " " + op.ID
}
