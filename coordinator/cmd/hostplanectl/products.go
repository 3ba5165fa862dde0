package main

import (
	"context"
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
		verb, short := "update", "Change a product's details or price: only the flags given change (new orders pay a new price; running periods keep theirs)"
		use := verb + " SLUG [--price CENTS] [--name NAME] [--vcpu N …] [--php-workers N …]"
		if create {
			verb, short = "create", "Add a product to the catalogue"
			use = verb + " SLUG --category vps|hosting --name NAME --price CENTS [--vcpu N --ram-mb N --disk-gb N] [--php-workers N --disk-mib N …]"
		}
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				set := c.Flags().Changed
				var read *api.AdminProduct // the product as update read it
				if !create {
					// The admin API replaces a product whole: start from the
					// product as it is, so a flag not given keeps its value
					// (an update of the price alone reset a hosting plan's
					// quotas to the flags' defaults before).
					cur, err := productBySlug(c, g, args[0])
					if err != nil {
						return err
					}
					if req, err = changedProduct(set, cur.ProductRequest, req, quota, names); err != nil {
						return err
					}
					read = &cur
					if afterProductRead != nil {
						afterProductRead()
					}
					names, quota = nil, api.HostingPlan{}
				}
				if create && req.Category == api.ProductDomain {
					if req.Tld == "" || !set("yearly-price") {
						return usageError{"a domain product needs --tld and --yearly-price"}
					}
				} else if create && (req.Category == "" || req.NameEn == "" || !set("price")) {
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
				if create && req.Category == api.ProductHosting {
					req.Specs.Hosting = &quota
				}
				call := g.admin().CreateProduct
				if read != nil {
					// Sent only onto the product as read: a change made
					// after the read (another operator's) is a 412, not
					// undone by the fields this update copied from it.
					call = func(ctx context.Context, slug string, req api.ProductRequest) (api.AdminProduct, error) {
						return g.admin().UpdateProductIf(ctx, slug, req, read.UpdatedAt)
					}
				}
				p, err := call(c.Context(), args[0], req)
				if err != nil {
					return err
				}
				return g.print(p, func() { printf("product %s %sd: %s\n", p.Slug, verb, productLine(p)) })
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
	}, func(p api.AdminProduct) { printf("product %s retired\n", p.Slug) })
	list := adminCmd(g, "list", "List the catalogue, retired products included", cobra.NoArgs, func(c *cobra.Command, _ []string) ([]api.AdminProduct, error) {
		return g.admin().Products(c.Context())
	}, func(ps []api.AdminProduct) {
		table(os.Stdout, "SLUG\tCATEGORY\tNAME\tMONTHLY\tVCPU\tRAM_MB\tDISK_GB\tLOCATIONS\tRETIRED", ps, func(tw io.Writer, p api.AdminProduct) {
			fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%t\n", p.Slug, p.Category, p.NameEn, usd(p.RetailMonthlyUsdCents),
				p.Specs.VCPU, p.Specs.RAMMB, p.Specs.DiskGB, dash(strings.Join(p.Locations, ",")), p.Retired)
		})
	})
	cmd.AddCommand(put(true), put(false), retire, list)
	return cmd
}

// afterProductRead, when set (tests), runs between product update's read of
// the product and its write.
var afterProductRead func()

// productBySlug is the catalogue's product slug (a 404-like error naming it
// when there is none).
func productBySlug(c *cobra.Command, g *globals, slug string) (api.AdminProduct, error) {
	ps, err := g.admin().Products(c.Context())
	if err != nil {
		return api.AdminProduct{}, err
	}
	for _, p := range ps {
		if p.Slug == slug {
			return p, nil
		}
	}
	return api.AdminProduct{}, api.NewError(404, "not_found", fmt.Sprintf("product %s: not found (hostplanectl product list shows the catalogue)", slug))
}

// changedProduct is cur with the flags that were given (set) taken from
// flags, quota and names: what `product update` sends. Nothing given is a
// usage error.
func changedProduct(set func(string) bool, cur, flags api.ProductRequest, quota api.HostingPlan, names []string) (api.ProductRequest, error) {
	out, changed := cur, false
	take := func(flag string, apply func()) {
		if set(flag) {
			apply()
			changed = true
		}
	}
	take("category", func() { out.Category = flags.Category })
	take("tld", func() { out.Tld = flags.Tld })
	take("yearly-price", func() { out.RetailYearlyUsdCents = flags.RetailYearlyUsdCents })
	take("name", func() { out.NameEn = flags.NameEn })
	take("price", func() { out.RetailMonthlyUsdCents = flags.RetailMonthlyUsdCents })
	take("vcpu", func() { out.Specs.VCPU = flags.Specs.VCPU })
	take("ram-mb", func() { out.Specs.RAMMB = flags.Specs.RAMMB })
	take("disk-gb", func() { out.Specs.DiskGB = flags.Specs.DiskGB })
	take("traffic-gb", func() { out.Specs.TrafficGB = flags.Specs.TrafficGB })
	take("locations", func() { out.Locations = flags.Locations })
	var q api.HostingPlan
	if cur.Specs.Hosting != nil {
		q = *cur.Specs.Hosting
	}
	hosting := false
	for flag, apply := range map[string]func(){
		"php-workers":           func() { q.PHPWorkers = quota.PHPWorkers },
		"php-memory-mib":        func() { q.PHPMemoryMiB = quota.PHPMemoryMiB },
		"max-execution-seconds": func() { q.MaxExecutionSeconds = quota.MaxExecutionSeconds },
		"upload-mib":            func() { q.UploadMiB = quota.UploadMiB },
		"disk-mib":              func() { q.DiskMiB = quota.DiskMiB },
	} {
		if set(flag) {
			apply()
			hosting, changed = true, true
		}
	}
	if hosting {
		out.Specs.Hosting = &q
	}
	if len(names) > 0 {
		out.Names = make(map[string]string, len(cur.Names)+len(names))
		for k, v := range cur.Names {
			out.Names[k] = v
		}
		for _, n := range names {
			lang, name, ok := strings.Cut(n, "=")
			if !ok {
				return out, usageError{"--name-in takes LANG=NAME (tr=VPS 2)"}
			}
			out.Names[lang] = name
		}
		changed = true
	}
	if !changed {
		return out, usageError{"nothing to change: give the flags to change (--price, --name, --vcpu, --php-workers, …)"}
	}
	return out, nil
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
	printf("discount: %d%%\n", p.DiscountPercent)
	slugs := make([]string, 0, len(p.Prices))
	for s := range p.Prices {
		slugs = append(slugs, s)
	}
	sort.Strings(slugs)
	for _, s := range slugs {
		printf("price:    %s %s a month\n", s, usd(p.Prices[s]))
	}
}
