package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/spf13/cobra"
)

// newServerCmd is `hostplanectl server …`: placing servers for customers and
// finding where they run (customers order through the API in a later release).
func newServerCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "server", Short: "Place servers for customers and show where servers run"}
	var req api.AdminServerCreateRequest
	create := adminCmd(g, "create --account ACCOUNT_ID --plan SLUG --template NAME", "Place a server on a node with room and provision it (the root password is printed once)", cobra.NoArgs, func(c *cobra.Command, _ []string) (api.AdminServerCreated, error) {
		if err := requireFlags(flagReq{"account", req.AccountID, ""}, flagReq{"plan", req.Plan, planSlugs()},
			flagReq{"template", req.Template, "an OS template imported on the nodes"}); err != nil {
			return api.AdminServerCreated{}, err
		}
		return g.admin().CreateServer(c.Context(), req)
	}, func(out api.AdminServerCreated) {
		printf("server %s placed on node %s (vm %s); provisioning: action %s\n", out.Server.ID, out.Server.NodeID, out.Server.VMName, out.Action.ID)
		if out.RootPassword != "" {
			printf("root password (shown only this once): %s\n", out.RootPassword)
		}
	})
	f := create.Flags()
	f.StringVar(&req.AccountID, "account", "", "customer account id (acc_…)")
	f.StringVar(&req.Plan, "plan", "", "plan slug: "+planSlugs())
	f.StringVar(&req.Template, "template", "", "OS template name")
	f.StringVar(&req.OS, "os", "", "OS family shown to the customer (default: the template name up to its first '-')")
	f.StringVar(&req.Label, "label", "", "label shown to the customer (default: the hostname or the id)")
	f.StringVar(&req.Hostname, "hostname", "", "guest hostname")
	f.StringArrayVar(&req.SSHKeys, "ssh-key", nil, "OpenSSH public key for root (repeatable)")
	f.StringVar(&req.NodeID, "node", "", "place on this node (it must be ready, uncordoned and have room)")
	f.StringVar(&req.Location, "location", "", "place on a node in this location (hostplanectl node location)")
	nonEmptyWhenGiven(f, "node", "location")
	f.StringVar(&req.IPv4, "ipv4", "", "static IPv4 address in CIDR form (default: DHCP)")
	f.StringVar(&req.Gateway4, "gateway4", "", "IPv4 gateway (with --ipv4)")
	f.StringVar(&req.Network, "network", "", `agent network: "user", "network:NAME" or "bridge:NAME" (default: the agent's)`)
	f.BoolVar(&req.NoPassword, "no-password", false, "set no root password (SSH keys only)")

	var account, node string
	list := adminCmd(g, "list", "List servers (optionally of an account or on a node)", cobra.NoArgs, func(c *cobra.Command, _ []string) ([]api.AdminServer, error) {
		return g.admin().Servers(c.Context(), account, node)
	}, func(ss []api.AdminServer) { printServers(ss) })
	list.Flags().StringVar(&account, "account", "", "only this account's servers")
	list.Flags().StringVar(&node, "node", "", "only servers on this node (not terminated)")
	nonEmptyWhenGiven(list.Flags(), "account", "node")
	show := adminCmd(g, "show SERVER_ID", "Show a server and where it runs", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (api.AdminServer, error) {
		return g.admin().Server(c.Context(), args[0])
	}, func(s api.AdminServer) {
		printf("id:        %s\nlabel:     %s\nstatus:    %s\naccount:   %s\nnode:      %s\nvm:        %s\nplan:      %s (%d vCPU, %d MiB, %d GiB)\ntemplate:  %s\ncreated:   %s\n",
			s.ID, s.Label, s.Status, s.AccountID, s.NodeID, s.VMName, s.Plan.Slug, s.Plan.VCPUs, s.Plan.MemoryMiB, s.Plan.DiskGiB,
			s.OSTemplate, s.CreatedAt.Format(time.RFC3339))
		if s.ActionID != "" {
			printf("action:    %s (in progress)\n", s.ActionID)
		}
	})
	cmd.AddCommand(create, list, show)
	cmd.AddCommand(suspendCmds(g, "servers", "server")...)
	return cmd
}

func planSlugs() string {
	var s []string
	for _, p := range api.DefaultPlans {
		s = append(s, fmt.Sprintf("%s (%d vCPU, %d MiB, %d GiB)", p.Slug, p.VCPUs, p.MemoryMiB, p.DiskGiB))
	}
	return strings.Join(s, ", ")
}

func printServers(ss []api.AdminServer) {
	table(os.Stdout, "ID\tSTATUS\tNODE\tVM\tPLAN\tACCOUNT\tLABEL", ss, func(tw io.Writer, s api.AdminServer) {
		fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Status, s.NodeID, s.VMName, s.Plan.Slug, s.AccountID, s.Label)
	})
}

// nodeScheduleCmds are `hostplanectl node cordon|uncordon|drain`.
func nodeScheduleCmds(f *nodeFlags, addSocket func(*cobra.Command) *cobra.Command, call func(c *cobra.Command, verb, id string) (api.AdminNodeDetail, error)) []*cobra.Command {
	mk := func(verb, short string) *cobra.Command {
		return addSocket(&cobra.Command{
			Use: verb + " NODE_ID", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				d, err := call(c, verb, args[0])
				if err != nil {
					return err
				}
				return f.emit(c, d, func(w io.Writer) {
					state := "schedulable"
					if d.Draining {
						state = "draining (cordoned)"
					} else if d.Cordoned {
						state = "cordoned"
					}
					fprintf(w, "node %s: %s; %d server(s) on it\n", d.ID, state, len(d.Servers))
					if verb == "drain" && len(d.Servers) > 0 {
						fmt.Fprintln(w, "servers still on the node (move or terminate them):")
						for _, s := range d.Servers {
							fprintf(w, "  %s\t%s\t%s\taccount %s\n", s.ID, s.Status, s.VMName, s.AccountID)
						}
					}
				})
			},
		})
	}
	return []*cobra.Command{
		mk("cordon", "Stop placing new servers on a node (servers on it keep running)"),
		mk("uncordon", "Let placement use a node again (ends a drain)"),
		mk("drain", "Cordon a node for maintenance and list the servers still on it"),
	}
}
