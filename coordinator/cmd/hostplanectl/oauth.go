package main

import (
	"io"
	"os"
	"strings"

	"github.com/hostplane/hostplane/internal/conflayer"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/spf13/cobra"
)

// newOAuthCmd is `hostplanectl oauth approve|deny|apps|revoke`: the operator's
// side of OAuth, for a provider whose own dashboard signs the customer in and
// approves a device's user code for them.
func newOAuthCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "oauth",
		Short: "Approve OAuth device codes for an account; list and revoke its connected apps",
		Long: "A device (an MCP client, a CLI) shows a user code such as WDJB-MJHT. The customer approves it on\n" +
			"the coordinator's /oauth/device page with an API key, or the provider's dashboard approves it for\n" +
			"the signed-in account with `oauth approve`: the grant is at most the scopes the account's live API keys\n" +
			"hold. Each approval is a connected app; revoking it revokes all of its tokens at once.",
	}
	var account, scopes string
	approve := adminCmd(g, "approve USER_CODE --account ACCOUNT_ID [--scopes a,b]", "Approve a device's user code for an account", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (api.OAuthApproval, error) {
		if account == "" {
			return api.OAuthApproval{}, usageError{"--account is required to approve"}
		}
		req := api.OAuthApproveRequest{UserCode: args[0], AccountID: account}
		// Given, it names the grant: empty (" ", ",") it must not fall back
		// to the default, which can be every scope the account's keys hold.
		if c.Flags().Changed("scopes") {
			if req.Scopes = conflayer.SplitList(scopes); len(req.Scopes) == 0 {
				return api.OAuthApproval{}, usageError{"--scopes names no scope (leave it out for the default)"}
			}
		}
		return g.admin().OAuthApprove(c.Context(), req)
	}, func(a api.OAuthApproval) {
		printf("%s approved for %s, scopes: %s\n", printable(a.ClientName, false), a.AccountID, strings.Join(a.Scopes, " "))
	})
	approve.Flags().StringVar(&account, "account", "", "the account the device acts for")
	approve.Flags().StringVar(&scopes, "scopes", "", "comma-separated scopes to grant (default: those the device asked for, or all the account's keys hold)")
	deny := adminCmd(g, "deny USER_CODE", "Deny a device's user code (its polling gets access_denied)", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (api.OAuthApproval, error) {
		return g.admin().OAuthApprove(c.Context(), api.OAuthApproveRequest{UserCode: args[0], Deny: true})
	}, func(a api.OAuthApproval) { printf("%s denied\n", printable(a.ClientName, false)) })
	apps := adminCmd(g, "apps ACCOUNT_ID", "List an account's connected apps", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (api.ConnectedAppList, error) {
		return g.admin().ConnectedApps(c.Context(), args[0])
	}, func(l api.ConnectedAppList) {
		// CLIENT is the client_name anyone may register (RFC 7591):
		// registration refuses controls, line separators and bidi
		// controls (validate.OneLineRune), but a name registered before
		// it did keeps them; printable, as NAME in key list.
		table(os.Stdout, "ID\tCLIENT\tGRANT\tRESOURCE\tCREATED\tREFRESHED\tSCOPES", l.Data, func(tw io.Writer, a api.ConnectedApp) {
			fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, printable(a.ClientName, false), a.GrantType, a.Resource, tstr(&a.CreatedAt), tstr(a.RefreshedAt), strings.Join(a.Scopes, ","))
		})
	})
	revoke := adminCmd(g, "revoke APP_ID", "Revoke a connected app and every token it holds (takes effect at once)", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (api.ConnectedApp, error) {
		return g.admin().RevokeConnectedApp(c.Context(), args[0])
	}, func(a api.ConnectedApp) {
		printf("connected app %s (%s) revoked\n", a.ID, printable(a.ClientName, false))
	})
	cmd.AddCommand(approve, deny, apps, revoke)
	return cmd
}
