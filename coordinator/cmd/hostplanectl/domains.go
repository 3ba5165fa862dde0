package main

import (
	"context"
	"io"
	"os"
	"slices"
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
		if len(d.Hosts) > 0 {
			hs := make([]string, len(d.Hosts))
			for i, h := range d.Hosts {
				hs[i] = h.Name + " (" + strings.Join(h.Addresses, ", ") + ")"
			}
			printf("hosts:         %s\n", strings.Join(hs, "; "))
		}
		if d.Change != nil {
			printf("last change:   %s %s %s\n", d.Change.ID, d.Change.Status, d.Change.Reason)
		}
		if d.Op != nil {
			printf("in flight:     %s (cl_trid %s, since %s)\n", opLine(d.Op), d.Op.ClTRID, d.Op.StartedAt.Format(time.RFC3339))
		}
	})
	hosts := adminCmd(g, "hosts DOMAIN", "List a domain's child name servers (by domain id or name): glue addresses, which of the owner's domains name each as a name server, a host change pending",
		cobra.ExactArgs(1), func(c *cobra.Command, args []string) ([]domainHostRow, error) {
			return domainHosts(c.Context(), g, args[0])
		},
		func(rows []domainHostRow) {
			table(os.Stdout, "HOST\tADDRESSES\tNAMESERVER_OF\tPENDING", rows, func(tw io.Writer, h domainHostRow) {
				fprintf(tw, "%s\t%s\t%s\t%s\n", h.Name, dash(strings.Join(h.Addresses, ",")), dash(strings.Join(h.NameserverOf, ",")), dash(h.Pending))
			})
		})
	cmd.AddCommand(list, show, hosts)
	return cmd
}

// domainHostRow is one line of `hostplanectl domain hosts`: a child name
// server, the owner's domains that name it as a name server, and its
// pending change ("set A,B" or "delete"; a pending creation is a row of
// its own with no addresses yet).
type domainHostRow struct {
	Name         string   `json:"name"`
	Addresses    []string `json:"addresses"`
	NameserverOf []string `json:"nameserver_of"`
	Pending      string   `json:"pending,omitempty"`
}

// domainHosts reads the domain (an id, or a name among every account's
// domains) and its owner's domains.
func domainHosts(ctx context.Context, g *globals, arg string) ([]domainHostRow, error) {
	adm := g.admin()
	var d api.AdminDomain
	if strings.HasPrefix(arg, "dom_") {
		var err error
		if d, err = adm.Domain(ctx, arg); err != nil {
			return nil, err
		}
	} else {
		all, err := adm.Domains(ctx, "")
		if err != nil {
			return nil, err
		}
		name := strings.TrimSuffix(strings.ToLower(arg), ".")
		i := slices.IndexFunc(all, func(d api.AdminDomain) bool { return d.Name == name && d.Status != api.DomainFailed })
		if i < 0 {
			return nil, &api.Error{StatusCode: 404, Err: "Not Found", Code: "not_found", Message: "no registered domain is named " + name + " (give its dom_… id)"}
		}
		d = all[i]
	}
	owned, err := adm.Domains(ctx, d.AccountID)
	if err != nil {
		return nil, err
	}
	rows := make([]domainHostRow, 0, len(d.Hosts)+1)
	for _, h := range d.Hosts {
		rows = append(rows, domainHostRow{Name: h.Name, Addresses: h.Addresses, NameserverOf: []string{}})
	}
	if ch := d.Change; ch != nil && ch.Host != nil && ch.Status == api.ChangePending {
		i := slices.IndexFunc(rows, func(r domainHostRow) bool { return r.Name == ch.Host.Name })
		if i < 0 {
			rows = append(rows, domainHostRow{Name: ch.Host.Name, Addresses: []string{}, NameserverOf: []string{}})
			i = len(rows) - 1
		}
		rows[i].Pending = "set " + strings.Join(ch.Host.Addresses, ",")
		if ch.Host.Delete {
			rows[i].Pending = "delete"
		}
	}
	for i := range rows {
		for _, o := range owned {
			if o.Status != api.DomainFailed && slices.Contains(o.Nameservers, rows[i].Name) {
				rows[i].NameserverOf = append(rows[i].NameserverOf, o.Name)
			}
		}
		slices.Sort(rows[i].NameserverOf)
	}
	return rows, nil
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
