package main

import (
	"io"
	"slices"
	"strings"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/spf13/cobra"
)

// nodeClusterCmds are the `hostplanectl node …` commands served by the
// coordinators (join tokens, the node list, removal), as opposed to the agent's
// local socket. They talk to the coordinator admin socket given by --admin-socket.
func nodeClusterCmds(f *nodeFlags) []*cobra.Command {
	var adminSocket string
	admin := func() *client.Admin { return newAdmin(adminSocket) }
	addSocket := func(c *cobra.Command) *cobra.Command {
		c.Flags().StringVar(&adminSocket, "admin-socket", defaultAdminSocket(), "coordinator admin socket (env HOSTPLANE_ADMIN_SOCKET)")
		return c
	}

	token := &cobra.Command{Use: "token", Short: "Make join tokens that let a new node enrol with the coordinators"}
	var ttl time.Duration
	var req api.JoinTokenCreateRequest
	create := &cobra.Command{
		Use: "create", Short: "Make a single-use, expiring join token (printed once)", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if ttl < time.Second || ttl > 7*24*time.Hour {
				return usageError{"--ttl must be from 1s to 168h"}
			}
			req.TTLSeconds = int(ttl / time.Second)
			t, err := admin().CreateJoinToken(c.Context(), req)
			if err != nil {
				return err
			}
			return f.emit(c, t, func(w io.Writer) {
				fprintf(w, "join token %s (expires %s), shown only this once:\n\n  %s\n\nStart the agent with --join-token (or HOSTPLANE_AGENT_JOIN_TOKEN) and --coordinators.\n",
					t.ID, t.ExpiresAt.Format(time.RFC3339), t.Token)
			})
		},
	}
	create.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the token can be used (at most 168h)")
	create.Flags().StringVar(&req.NodeID, "node-id", "", "only a node with this id may use the token")
	create.Flags().StringVar(&req.Description, "description", "", "note kept with the token")
	token.AddCommand(addSocket(create))

	list := nodeCmd(f, "list", "List enrolled nodes with state, location, capacity and last seen (coordinator)", cobra.NoArgs, func(c *cobra.Command, _ []string) ([]api.AgentNode, error) {
		return admin().AgentNodes(c.Context())
	}, func(w io.Writer, ns []api.AgentNode) {
		table(w, "ID\tSTATE\tLOCATION\tVCPUS\tMEMORY\tDISK\tLAST SEEN\tVERSION", ns, func(tw io.Writer, n api.AgentNode) {
			fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", n.ID, n.State, dash(n.Location), n.Capacity.VCPUs, nodeBytes(n.Capacity.MemoryBytes),
				nodeBytes(n.Capacity.DiskBytes), lastSeen(n.LastSeenAt), n.SoftwareVersion)
		})
	})
	show := nodeCmd(f, "show NODE_ID", "Show an enrolled node (coordinator)", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (api.AgentNode, error) {
		return admin().AgentNode(c.Context(), args[0])
	}, writeNodeShow)
	remove := nodeCmd(f, "remove NODE_ID", "Revoke a node: its certificate is refused from now on", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (api.AgentNode, error) {
		return admin().RemoveAgentNode(c.Context(), args[0])
	}, func(w io.Writer, n api.AgentNode) { fprintf(w, "node %s removed\n", n.ID) })
	sched := nodeScheduleCmds(f, addSocket, func(c *cobra.Command, verb, id string) (api.AdminNodeDetail, error) {
		switch verb {
		case "cordon":
			return admin().CordonNode(c.Context(), id)
		case "uncordon":
			return admin().UncordonNode(c.Context(), id)
		}
		return admin().DrainNode(c.Context(), id)
	})
	var clearLoc bool
	location := nodeCmd(f, "location NODE_ID [LOCATION]", "Put a node in a location (datacenter or node group) that orders and products place servers in",
		cobra.RangeArgs(1, 2), func(c *cobra.Command, args []string) (api.AdminNodeDetail, error) {
			if len(args) == 2 == clearLoc {
				return api.AdminNodeDetail{}, usageError{"give a LOCATION, or --clear to take the node out of its location"}
			}
			loc := ""
			if len(args) == 2 {
				loc = args[1]
			}
			return admin().SetNodeLocation(c.Context(), args[0], loc)
		}, func(w io.Writer, d api.AdminNodeDetail) {
			if d.Location == "" {
				fprintf(w, "node %s: in no location (orders with a location, or for a product with locations, are not placed on it)\n", d.ID)
				return
			}
			fprintf(w, "node %s: location %s\n", d.ID, d.Location)
		})
	location.Flags().BoolVar(&clearLoc, "clear", false, "take the node out of its location")
	return append([]*cobra.Command{token, addSocket(list), addSocket(show), addSocket(remove), addSocket(location)}, sched...)
}

// writeNodeShow is `node show`'s text: the node's record, and for a hosting
// node where its customers connect (what their accounts' connection details
// show).
func writeNodeShow(w io.Writer, n api.AgentNode) {
	fprintf(w, "id:            %s\nstate:         %s (since %s)\nconnected:     %v\nlast seen:     %s\nhostname:      %s\nroles:         %v\n",
		n.ID, n.State, n.StateChangedAt.Format(time.RFC3339), n.Connected, lastSeen(n.LastSeenAt), n.Hostname, n.Roles)
	if len(n.Bridges) > 0 {
		fprintf(w, "bridges:       %s\n", strings.Join(n.Bridges, ", "))
	}
	if n.Location != "" {
		fprintf(w, "location:      %s\n", n.Location)
	}
	fprintf(w, "capacity:      %d vCPU, %s memory, %s disk\nversion:       %s (protocol %d)\nenrolled:      %s\ncert expires:  %s\n",
		n.Capacity.VCPUs, nodeBytes(n.Capacity.MemoryBytes), nodeBytes(n.Capacity.DiskBytes), n.SoftwareVersion, n.ProtocolVersion,
		n.EnrolledAt.Format(time.RFC3339), n.CertNotAfter.Format(time.RFC3339))
	sched := "schedulable"
	if n.Draining {
		sched = "draining (cordoned)"
	} else if n.Cordoned {
		sched = "cordoned"
	}
	fprintf(w, "scheduling:    %s\n", sched)
	if slices.Contains(n.Roles, api.RoleHosting) {
		writeHostingConnection(w, n.HostingConnection)
	}
}

// writeHostingConnection is a hosting node's connection details as the
// agent reported them (agent --hosting-sftp-host, --hosting-sftp-port, its
// MariaDB's @@port).
func writeHostingConnection(w io.Writer, c *api.NodeHostingConnection) {
	if c == nil {
		fprintf(w, "sftp:          not reported (an agent of an older release, or the cluster below semantics level 7): accounts show their domain, port %d\n", api.DefaultSFTPPort)
		fprintf(w, "mariadb port:  not reported: accounts show %d\n", api.DefaultDBPort)
		return
	}
	host := c.SFTPHost
	if host == "" {
		host = "each account's domain (no public host name: agent --hosting-sftp-host)"
	}
	port := c.SFTPPort
	if port == 0 {
		port = api.DefaultSFTPPort
	}
	fprintf(w, "sftp:          %s, port %d\n", host, port)
	if c.DBPort == 0 {
		if c.DBKnown {
			fprintf(w, "mariadb port:  none (MariaDB takes no TCP connections): accounts reach it through its socket only\n")
		} else {
			// An agent of an older release, the cluster below semantics
			// level 12, or MariaDB not asked yet: 0 says nothing.
			fprintf(w, "mariadb port:  none (MariaDB takes no TCP connections, or the agent could not ask it yet): accounts reach it through its socket only\n")
		}
		return
	}
	fprintf(w, "mariadb port:  %d\n", c.DBPort)
}

func lastSeen(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.Format(time.RFC3339)
}
