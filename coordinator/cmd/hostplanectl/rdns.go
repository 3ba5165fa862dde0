package main

import (
	"io"
	"os"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/spf13/cobra"
)

// newReverseZoneCmd is `hostplanectl reverse-zone add|list|remove`: the
// reverse zones PowerDNS serves the servers' PTR names from.
func newReverseZoneCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reverse-zone",
		Short: "Map reverse DNS zones (in-addr.arpa, ip6.arpa) that PowerDNS serves the servers' PTR names from",
		Long: "An address's PTR is served from the longest mapped zone that holds it (198.51.100.0/24 is\n" +
			"100.51.198.in-addr.arpa, 2001:db8::/32 is 8.b.d.0.1.0.0.2.ip6.arpa). The leader creates the zone in\n" +
			"PowerDNS (--pdns-api-url) when missing and keeps its PTR records equal to the recorded names; a mapped\n" +
			"zone is hostplane's: PTR records put there by hand are removed.",
	}
	var pool string
	add := adminCmd(g, "add ZONE [--pool NAME]", "Map a reverse zone", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (api.ReverseZone, error) {
		return g.admin().AddReverseZone(c.Context(), api.ReverseZoneRequest{Zone: args[0], Pool: pool})
	}, func(z api.ReverseZone) {
		printf("reverse zone %s (%s) mapped; %s\n", z.Zone, z.Prefix, z.Status)
	})
	add.Flags().StringVar(&pool, "pool", "", "the IP pool whose addresses the zone serves")
	list := adminCmd(g, "list", "List the mapped reverse zones and whether PowerDNS serves them as recorded", cobra.NoArgs, func(c *cobra.Command, _ []string) ([]api.ReverseZone, error) {
		return g.admin().ReverseZones(c.Context())
	}, printReverseZones)
	remove := adminCmd(g, "remove ZONE", "Unmap a reverse zone (the leader deletes it from PowerDNS)", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (api.ReverseZone, error) {
		return g.admin().RemoveReverseZone(c.Context(), args[0])
	}, func(z api.ReverseZone) {
		printf("reverse zone %s unmapped; %s\n", z.Zone, z.Status)
	})
	cmd.AddCommand(add, list, remove)
	return cmd
}

func printReverseZones(zs []api.ReverseZone) {
	table(os.Stdout, "ZONE\tPREFIX\tPOOL\tSTATUS\tLAST ERROR", zs, func(tw io.Writer, z api.ReverseZone) {
		pool := z.Pool
		if pool == "" {
			pool = "-"
		}
		fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", z.Zone, z.Prefix, pool, z.Status, z.LastError)
	})
}
