package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/spf13/cobra"
)

func hostingPlanSlugs() string {
	s := make([]string, 0, len(api.DefaultHostingPlans))
	for _, p := range api.DefaultHostingPlans {
		s = append(s, p.Slug)
	}
	return strings.Join(s, ", ")
}

// newHostingCmd is `hostplanectl hosting …`: operators create hosting
// accounts for customers until customer ordering exists.
func newHostingCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "hosting", Short: "Create web-hosting accounts for customers and list them"}
	var req api.AdminHostingCreateRequest
	create := adminCmd(g, "create --account ACCOUNT_ID --plan SLUG --domain DOMAIN --username NAME", "Place a hosting account on a hosting node and provision it (the SFTP and database passwords are printed once)", cobra.NoArgs, func(c *cobra.Command, _ []string) (api.AdminHostingCreated, error) {
		if err := requireFlags(flagReq{"account", req.AccountID, ""}, flagReq{"plan", req.Plan, hostingPlanSlugs()},
			flagReq{"domain", req.Domain, ""}, flagReq{"username", req.Username, "3-16 of a-z and 0-9, starting with a letter"}); err != nil {
			return api.AdminHostingCreated{}, err
		}
		return g.admin().CreateHosting(c.Context(), req)
	}, func(out api.AdminHostingCreated) {
		in := ""
		if out.Hosting.Location != "" {
			in = " in location " + out.Hosting.Location
		}
		printf("hosting account %s (%s, %s) placed on node %s%s with PHP %s; provisioning: action %s\n",
			out.Hosting.ID, out.Hosting.Username, out.Hosting.Domain, out.NodeID, in, out.Hosting.PHPVersion, out.Action.ID)
		printf("SFTP:     %s@%s (port %d), password (shown only this once): %s\n",
			out.Hosting.Connection.SFTPUser, out.Hosting.Connection.SFTPHost, out.Hosting.Connection.SFTPPort, out.SFTPPassword)
		port := "no TCP port: its socket only"
		switch conn := out.Hosting.Connection; {
		case conn.DBNetwork == api.DBNetworkUnknown && conn.DBPort != 0:
			port = fmt.Sprintf("TCP port %d, the default: the node has not reported its own yet", conn.DBPort)
		case conn.DBNetwork == api.DBNetworkUnknown:
			port = "TCP port not known yet (the node has not reported it): its socket always works"
		case conn.DBPort != 0:
			port = fmt.Sprintf("TCP port %d", conn.DBPort)
		}
		printf("database: %s, user %s on %s (%s), password (shown only this once): %s\n",
			out.Hosting.Connection.DBName, out.Hosting.Connection.DBUser, out.Hosting.Connection.DBHost, port, out.DBPassword)
	})
	f := create.Flags()
	f.StringVar(&req.AccountID, "account", "", "customer account id (acc_…)")
	f.StringVar(&req.Plan, "plan", "", "hosting plan slug: "+hostingPlanSlugs())
	f.StringVar(&req.Domain, "domain", "", "the site's domain (ASCII or internationalized; stored in its IDNA form)")
	f.StringVar(&req.Username, "username", "", "Linux, SFTP and database user name: 3-16 of a-z and 0-9, starting with a letter")
	f.StringVar(&req.PHPVersion, "php", "", "PHP version (default: the node's newest installed)")
	f.StringVar(&req.NodeID, "node", "", "place on this hosting node")
	f.StringVar(&req.Location, "location", "", "place on a hosting node in this location (hostplanectl node location)")
	nonEmptyWhenGiven(f, "node", "php", "location")

	var account string
	list := adminCmd(g, "list", "List hosting accounts (optionally of an account)", cobra.NoArgs, func(c *cobra.Command, _ []string) ([]api.AdminHostingAccount, error) {
		return g.admin().ListHosting(c.Context(), account)
	}, func(hs []api.AdminHostingAccount) {
		printf("%-30s %-16s %-30s %-12s %-6s %-16s %s\n", "ID", "USERNAME", "DOMAIN", "STATUS", "PHP", "NODE", "ACCOUNT")
		for _, h := range hs {
			printf("%-30s %-16s %-30s %-12s %-6s %-16s %s\n", h.ID, h.Username, h.Domain, h.Status, h.PHPVersion, h.NodeID, h.AccountID)
		}
	})
	list.Flags().StringVar(&account, "account", "", "only this account's hosting accounts")
	nonEmptyWhenGiven(list.Flags(), "account")
	var target string
	reset := adminCmd(g, "password-reset ID [--target sftp|db|both]", "Set new random SFTP and/or database passwords of a hosting account (printed once) for a customer who lost them", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (api.HostingPasswordResetAccepted, error) {
		if target != "" && !slices.Contains(api.HostingPasswordTargets, target) {
			return api.HostingPasswordResetAccepted{}, usageError{"--target must be one of " + strings.Join(api.HostingPasswordTargets, ", ")}
		}
		return g.admin().ResetHostingPassword(c.Context(), args[0], target)
	}, func(out api.HostingPasswordResetAccepted) {
		printf("hosting account %s: new passwords set by action %s (the old ones work until it succeeds)\n", out.Action.ResourceID, out.Action.ID)
		if out.SFTPPassword != "" {
			printf("SFTP password (shown only this once): %s\n", out.SFTPPassword)
		}
		if out.DBPassword != "" {
			printf("database password (shown only this once): %s\n", out.DBPassword)
		}
	})
	reset.Flags().StringVar(&target, "target", "", "which passwords: sftp, db or both (default both)")
	nonEmptyWhenGiven(reset.Flags(), "target")
	cmd.AddCommand(create, list, reset)
	cmd.AddCommand(suspendCmds(g, "hosting", "hosting account")...)
	return cmd
}
