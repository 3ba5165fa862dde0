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

// newIPPoolCmd is `hostplanectl ip-pool …`: the address pools servers get
// their IPv4 addresses and IPv6 prefixes from.
func newIPPoolCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "ip-pool", Short: "Manage the IP pools servers get their addresses from"}
	var req api.IPPoolCreateRequest
	var quarantine time.Duration
	create := adminCmd(g, "create NAME --cidr CIDR --gateway IP", "Define an IPv4 pool (one address per server) or an IPv6 pool (one prefix per server)", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (api.IPPool, error) {
		req.Name = args[0]
		if err := requireFlags(flagReq{"cidr", req.CIDR, "203.0.113.0/24 or 2001:db8::/48"},
			flagReq{"gateway", req.Gateway, "an address inside the pool; fe80::1 for IPv6 is fine"}); err != nil {
			return api.IPPool{}, err
		}
		if quarantine < 0 || quarantine%time.Second != 0 {
			return api.IPPool{}, usageError{"--quarantine must be a positive number of whole seconds (24h, 90m)"}
		}
		req.QuarantineSeconds = int64(quarantine / time.Second)
		return g.admin().CreateIPPool(c.Context(), req)
	}, func(p api.IPPool) { printf("ip pool %s created: %s\n", p.Name, usageLine(p)) })
	f := create.Flags()
	f.StringVar(&req.CIDR, "cidr", "", "the pool's network (203.0.113.0/24, 2001:db8::/48)")
	f.StringVar(&req.Gateway, "gateway", "", "the servers' default gateway")
	f.StringArrayVar(&req.Exclude, "exclude", nil, "address or CIDR inside the pool never handed out (repeatable)")
	f.StringSliceVar(&req.Nodes, "nodes", nil, "limit the pool to these nodes (comma-separated)")
	f.StringVar(&req.Bridge, "bridge", "", "Linux bridge on the nodes the guests join (only nodes reporting it get the pool's addresses)")
	f.StringArrayVar(&req.Resolvers, "resolver", nil, "DNS resolver for the guests (repeatable)")
	f.IntVar(&req.PrefixLen, "prefix-len", 0, "IPv6 pools: length of each server's prefix (default 64)")
	f.DurationVar(&quarantine, "quarantine", 0, "how long a released address is kept from reuse (default 24h)")

	list := adminCmd(g, "list", "List the pools with their usage", cobra.NoArgs, func(c *cobra.Command, _ []string) ([]api.IPPool, error) {
		return g.admin().IPPools(c.Context())
	}, func(ps []api.IPPool) {
		table(os.Stdout, "NAME\tCIDR\tGATEWAY\tBRIDGE\tNODES\tUSED\tRESERVED\tQUARANTINED\tFREE\tTOTAL", ps, func(tw io.Writer, p api.IPPool) {
			fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", p.Name, poolCIDR(p), p.Gateway, dash(p.Bridge),
				dash(strings.Join(p.Nodes, ",")), p.Usage.Used, p.Usage.Reserved, p.Usage.Quarantined, p.Usage.Free, p.Usage.Total)
		})
	})
	show := adminCmd(g, "show NAME", "Show a pool, its usage and every address in use, reserved or in quarantine", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (api.IPPoolDetail, error) {
		return g.admin().IPPool(c.Context(), args[0])
	}, func(p api.IPPoolDetail) {
		printf("name:        %s\ncidr:        %s\ngateway:     %s\nbridge:      %s\nnodes:       %s\nresolvers:   %s\nexclude:     %s\nquarantine:  %s\nusage:       %s\n",
			p.Name, poolCIDR(p.IPPool), p.Gateway, dash(p.Bridge), dash(strings.Join(p.Nodes, ", ")), dash(strings.Join(p.Resolvers, ", ")),
			dash(strings.Join(p.Exclude, ", ")), time.Duration(p.QuarantineSeconds)*time.Second, usageLine(p.IPPool))
		if len(p.Addresses) == 0 {
			return
		}
		fmt.Println()
		table(os.Stdout, "ADDRESS\tSTATUS\tSERVER\tACCOUNT\tUNTIL\tNOTE", p.Addresses, func(tw io.Writer, a api.IPPoolAddress) {
			until := "-"
			if a.Until != nil {
				until = a.Until.UTC().Format(time.RFC3339)
			}
			fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Prefix, a.Status, dash(a.ServerID), dash(a.AccountID), until, dash(a.Note))
		})
	})
	remove := adminCmd(g, "remove NAME", "Remove a pool with no address allocated or reserved", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (api.IPPool, error) {
		return g.admin().RemoveIPPool(c.Context(), args[0])
	}, func(p api.IPPool) { printf("ip pool %s removed\n", p.Name) })
	var note string
	reserve := adminCmd(g, "reserve NAME IP", "Reserve an address of the pool (never allocated to a server)", cobra.ExactArgs(2), func(c *cobra.Command, args []string) (api.IPPoolAddress, error) {
		return g.admin().ReserveIP(c.Context(), args[0], api.IPReserveRequest{IP: args[1], Note: note})
	}, func(a api.IPPoolAddress) { printf("%s reserved\n", a.Prefix) })
	reserve.Flags().StringVar(&note, "note", "", "why it is reserved")
	release := adminCmd(g, "release NAME IP", "Free a reserved address, or end an address's quarantine now", cobra.ExactArgs(2), func(c *cobra.Command, args []string) (api.IPPoolAddress, error) {
		return g.admin().ReleaseIP(c.Context(), args[0], args[1])
	}, func(a api.IPPoolAddress) { printf("%s released\n", a.Prefix) })
	cmd.AddCommand(create, list, show, remove, reserve, release)
	return cmd
}

func poolCIDR(p api.IPPool) string {
	if p.Version == 6 {
		return fmt.Sprintf("%s (/%d each)", p.CIDR, p.PrefixLen)
	}
	return p.CIDR
}

func usageLine(p api.IPPool) string {
	unit := "addresses"
	if p.Version == 6 {
		unit = "prefixes"
	}
	return fmt.Sprintf("%d of %d %s used (%d reserved), %d in quarantine, %d free",
		p.Usage.Used, p.Usage.Total, unit, p.Usage.Reserved, p.Usage.Quarantined, p.Usage.Free)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
