package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/spf13/cobra"
)

// newProductCmd is `hostplanectl product …`: the catalogue customers order from.
func newProductCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "product", Short: "Manage the catalogue of orderable products and their monthly prices"}
	put := func(create bool) *cobra.Command {
		var req api.ProductRequest
		var names []string
		var quota api.HostingPlan
		verb, short := "update", "Replace a product's details and price (new orders pay it; running periods keep theirs)"
		if create {
			verb, short = "create", "Add a product to the catalogue"
		}
		c := &cobra.Command{
			Use:   verb + " SLUG --category vps|hosting --name NAME --price CENTS [--vcpu N --ram-mb N --disk-gb N] [--php-workers N --disk-mib N …]",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				if req.Category == api.ProductDomain {
					if req.Tld == "" || !c.Flags().Changed("yearly-price") {
						return usageError{"a domain product needs --tld and --yearly-price"}
					}
				} else if req.Category == "" || req.NameEn == "" || !c.Flags().Changed("price") {
					return usageError{"--category, --name and --price are required"}
				}
				if req.NameEn == "" {
					req.NameEn = "." + req.Tld
				}
				for _, n := range names {
					lang, name, ok := strings.Cut(n, "=")
					if !ok {
						return usageError{"--name-in takes LANG=NAME (tr=VPS 2)"}
					}
					if req.Names == nil {
						req.Names = map[string]string{}
					}
					req.Names[lang] = name
				}
				if req.Category == api.ProductHosting {
					req.Specs.Hosting = &quota
				}
				call := g.admin().UpdateProduct
				if create {
					call = g.admin().CreateProduct
				}
				p, err := call(c.Context(), args[0], req)
				if err != nil {
					return err
				}
				return g.print(p, func() { fmt.Printf("product %s %sd: %s\n", p.Slug, verb, productLine(p)) })
			},
		}
		f := c.Flags()
		f.StringVar(&req.Category, "category", "", "vps, hosting or domain")
		f.StringVar(&req.Tld, "tld", "", "domain: the top-level domain offered, in ASCII (com, com.tr, xn--p1ai)")
		f.Int64Var(&req.RetailYearlyUsdCents, "yearly-price", 0, "domain: a year's registration or renewal in USD cents (1299 = $12.99)")
		f.StringVar(&req.NameEn, "name", "", "English name (VPS 2)")
		f.StringArrayVar(&names, "name-in", nil, "name in another language as LANG=NAME (repeatable)")
		f.Int64Var(&req.RetailMonthlyUsdCents, "price", 0, "monthly retail price in USD cents (1200 = $12.00)")
		f.Uint32Var(&req.Specs.VCPU, "vcpu", 0, "vCPUs (vps)")
		f.Uint64Var(&req.Specs.RAMMB, "ram-mb", 0, "memory in MiB (vps)")
		f.Uint64Var(&req.Specs.DiskGB, "disk-gb", 0, "disk in GiB")
		f.Uint64Var(&req.Specs.TrafficGB, "traffic-gb", 0, "monthly traffic in GB (0: unmetered)")
		f.IntVar(&quota.PHPWorkers, "php-workers", 4, "PHP-FPM workers (hosting)")
		f.IntVar(&quota.PHPMemoryMiB, "php-memory-mib", 128, "PHP memory_limit in MiB (hosting)")
		f.IntVar(&quota.MaxExecutionSeconds, "max-execution-seconds", 30, "PHP max_execution_time (hosting)")
		f.IntVar(&quota.UploadMiB, "upload-mib", 32, "upload size limit in MiB (hosting)")
		f.IntVar(&quota.DiskMiB, "disk-mib", 5120, "disk allowance in MiB (hosting)")
		f.StringSliceVar(&req.Locations, "locations", nil, "locations it can be ordered in (comma-separated; default anywhere)")
		return c
	}
	retire := adminCmd(g, "retire SLUG", "Stop a product from being ordered (running services keep renewing at their price)", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (api.AdminProduct, error) {
		return g.admin().RetireProduct(c.Context(), args[0])
	}, func(p api.AdminProduct) { fmt.Printf("product %s retired\n", p.Slug) })
	list := adminCmd(g, "list", "List the catalogue, retired products included", cobra.NoArgs, func(c *cobra.Command, _ []string) ([]api.AdminProduct, error) {
		return g.admin().Products(c.Context())
	}, func(ps []api.AdminProduct) {
		table(os.Stdout, "SLUG\tCATEGORY\tNAME\tMONTHLY\tVCPU\tRAM_MB\tDISK_GB\tLOCATIONS\tRETIRED", ps, func(tw io.Writer, p api.AdminProduct) {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%t\n", p.Slug, p.Category, p.NameEn, usd(p.RetailMonthlyUsdCents),
				p.Specs.VCPU, p.Specs.RAMMB, p.Specs.DiskGB, dash(strings.Join(p.Locations, ",")), p.Retired)
		})
	})
	cmd.AddCommand(put(true), put(false), retire, list)
	return cmd
}

func productLine(p api.AdminProduct) string {
	if p.Category == api.ProductDomain {
		return fmt.Sprintf("domain .%s, %s a year", p.Tld, usd(p.RetailYearlyUsdCents))
	}
	return fmt.Sprintf("%s %s, %s a month, %d vCPU, %d MiB, %d GiB", p.Category, p.NameEn, usd(p.RetailMonthlyUsdCents), p.Specs.VCPU, p.Specs.RAMMB, p.Specs.DiskGB)
}

func usd(cents int64) string { return fmt.Sprintf("$%d.%02d", cents/100, cents%100) }

// newPricingCmd is `hostplanectl account pricing ACCOUNT …`: a reseller's
// discount and own prices.
func newPricingCmd(g *globals) *cobra.Command {
	var discount int64
	var prices []string
	cmd := &cobra.Command{
		Use:   "pricing ACCOUNT [--discount PERCENT] [--price SLUG=CENTS]…",
		Short: "Show or set an account's reseller pricing: a discount off retail and/or its own monthly price per product",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			adm := g.admin()
			if !c.Flags().Changed("discount") && !c.Flags().Changed("price") {
				p, err := adm.AccountPricing(c.Context(), args[0])
				if err != nil {
					return err
				}
				return g.print(p, func() { printPricing(p) })
			}
			req := api.AccountPricing{DiscountPercent: discount}
			for _, s := range prices {
				slug, cents, ok := strings.Cut(s, "=")
				n, err := strconv.ParseInt(cents, 10, 64)
				if !ok || err != nil {
					return usageError{"--price takes SLUG=CENTS (vps-2=900)"}
				}
				if req.Prices == nil {
					req.Prices = map[string]int64{}
				}
				req.Prices[slug] = n
			}
			p, err := adm.SetAccountPricing(c.Context(), args[0], req)
			if err != nil {
				return err
			}
			return g.print(p, func() { printPricing(p) })
		},
	}
	cmd.Flags().Int64Var(&discount, "discount", 0, "percent off every retail price (0-100)")
	cmd.Flags().StringArrayVar(&prices, "price", nil, "own monthly price of a product as SLUG=CENTS, which wins over the discount (repeatable); setting replaces the whole pricing")
	return cmd
}

func printPricing(p api.AccountPricing) {
	fmt.Printf("discount: %d%%\n", p.DiscountPercent)
	slugs := make([]string, 0, len(p.Prices))
	for s := range p.Prices {
		slugs = append(slugs, s)
	}
	sort.Strings(slugs)
	for _, s := range slugs {
		fmt.Printf("price:    %s %s a month\n", s, usd(p.Prices[s]))
	}
}
