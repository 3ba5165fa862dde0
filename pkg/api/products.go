package api

import "time"

// Product categories (and ProductDomain, domains.go).
const (
	ProductVPS     = "vps"
	ProductHosting = "hosting"
)

// ProductSpecs are a product's resources: a server's size (vcpu, ram_mb,
// disk_gb) and its monthly traffic (0: unmetered).
type ProductSpecs struct {
	VCPU      uint32 `json:"vcpu"`
	RAMMB     uint64 `json:"ram_mb"`
	DiskGB    uint64 `json:"disk_gb"`
	TrafficGB uint64 `json:"traffic_gb,omitempty"`
	// Hosting is a hosting product's quotas (PHP workers and memory, limits,
	// disk).
	Hosting *HostingPlan `json:"hosting,omitempty"`
}

// Product is an orderable plan as a customer sees it (GET /v1/products):
// its retail price and the caller's own (reseller) price, in USD cents.
type Product struct {
	Slug                  string            `json:"slug"`
	Category              string            `json:"category"`
	NameEn                string            `json:"name_en"`
	Names                 map[string]string `json:"names,omitempty"`
	RetailMonthlyUsdCents int64             `json:"retail_monthly_usd_cents"`
	YourMonthlyUsdCents   int64             `json:"your_monthly_usd_cents"`
	Specs                 ProductSpecs      `json:"specs"`
	// Locations are the node groups it can be ordered in (empty: any).
	Locations []string `json:"locations,omitempty"`
	// Tld, RetailYearlyUsdCents and YourYearlyUsdCents are a domain
	// product's: the top-level domain and a year's registration price.
	Tld                  string `json:"tld,omitempty"`
	RetailYearlyUsdCents int64  `json:"retail_yearly_usd_cents,omitempty"`
	YourYearlyUsdCents   int64  `json:"your_yearly_usd_cents,omitempty"`
}

// ProductList is GET /v1/products.
type ProductList struct {
	Data []Product `json:"data"`
}

// AdminProduct is the operator's view of a product.
type AdminProduct struct {
	Slug string `json:"slug"`
	ProductRequest
	Retired   bool      `json:"retired"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Plan is the server size of a vps product.
func (p AdminProduct) Plan() ServerPlan {
	return ServerPlan{Slug: p.Slug, VCPUs: p.Specs.VCPU, MemoryMiB: p.Specs.RAMMB, DiskGiB: p.Specs.DiskGB}
}

// ProductRequest is `hostplanectl product create|update` (PUT /admin/products/{slug}).
type ProductRequest struct {
	Category              string            `json:"category"`
	NameEn                string            `json:"name_en"`
	Names                 map[string]string `json:"names,omitempty"`
	RetailMonthlyUsdCents int64             `json:"retail_monthly_usd_cents"`
	Specs                 ProductSpecs      `json:"specs"`
	Locations             []string          `json:"locations,omitempty"`
	// Tld is a domain product's top-level domain (ASCII, "com", "com.tr");
	// RetailYearlyUsdCents its price for a year.
	Tld                  string `json:"tld,omitempty"`
	RetailYearlyUsdCents int64  `json:"retail_yearly_usd_cents,omitempty"`
}

// AccountPricing is an account's reseller pricing: a discount off every retail
// price and/or its own monthly price per product slug (which wins).
type AccountPricing struct {
	DiscountPercent int64            `json:"discount_percent"`
	Prices          map[string]int64 `json:"prices_usd_cents,omitempty"`
}

// EffectivePrice is what an account with pricing pr pays for a product of
// retail price retail: its own price if it has one, else the retail price less
// the discount (rounded down to the cent).
func (pr AccountPricing) EffectivePrice(slug string, retail int64) int64 {
	if p, ok := pr.Prices[slug]; ok {
		return p
	}
	return retail * (100 - pr.DiscountPercent) / 100
}

// ServerOrderRequest is POST /v1/servers: a server bought from the wallet.
type ServerOrderRequest struct {
	PlanSlug   string   `json:"plan_slug"`
	Label      string   `json:"label"`
	Hostname   string   `json:"hostname"`
	OSTemplate string   `json:"os_template"`
	OSFamily   string   `json:"os_family,omitempty"`
	Location   string   `json:"location,omitempty"`
	SSHKeys    []string `json:"ssh_keys,omitempty"`
}

// ServerOrder answers POST /v1/servers: the server, its provisioning action,
// the paid invoice and the root password (only in this response).
type ServerOrder struct {
	Server       Server  `json:"server"`
	Action       Action  `json:"action"`
	Invoice      Invoice `json:"invoice"`
	RootPassword string  `json:"root_password,omitempty"`
}

// ServerQuote answers POST /v1/servers/quote and POST /v1/hosting/quote:
// what the same order would cost now, without ordering.
type ServerQuote struct {
	PlanSlug              string `json:"plan_slug"`
	RetailMonthlyUsdCents int64  `json:"retail_monthly_usd_cents"`
	YourMonthlyUsdCents   int64  `json:"your_monthly_usd_cents"`
	BalanceUsdCents       int64  `json:"balance_usd_cents"`
	// ShortfallUsdCents is what the wallet lacks (0: it can pay).
	ShortfallUsdCents int64 `json:"shortfall_usd_cents"`
}

// AdminSuspendRequest is an operator's suspension of a server or hosting
// account (`hostplanectl server|hosting suspend ID --reason …`).
type AdminSuspendRequest struct {
	Reason string `json:"reason"`
}

// AdminSuspension answers an operator's suspend or unsuspend: the
// suspension now and the action that applies it on the node, if one was
// opened.
type AdminSuspension struct {
	Suspended bool       `json:"suspended"`
	By        string     `json:"by,omitempty"` // operator or non_payment
	Reason    string     `json:"reason,omitempty"`
	Since     *time.Time `json:"since,omitempty"`
	ActionID  string     `json:"action_id,omitempty"`
}

// OSTemplate is one installable OS template (GET /v1/os-templates): Name is
// what os_template takes; Family and Version are the operator's label
// (`hostplanectl template label`), or else Name split at its first hyphen;
// DisplayName is the label's, when it has one.
type OSTemplate struct {
	Name        string `json:"name"`
	Family      string `json:"family"`
	Version     string `json:"version"`
	DisplayName string `json:"display_name,omitempty"`
}

// OSTemplateLabelRequest is `hostplanectl template label NAME`
// (PUT /admin/os-templates/{name}): what customers see of a template. An
// empty family or version falls back to the name split at its first hyphen.
type OSTemplateLabelRequest struct {
	Family      string `json:"family,omitempty"`
	Version     string `json:"version,omitempty"`
	DisplayName string `json:"display_name,omitempty"`
}

// OSTemplateLabel is an operator's label of one template (GET
// /admin/os-templates lists them, whether or not a node holds it now).
type OSTemplateLabel struct {
	Name string `json:"name"`
	OSTemplateLabelRequest
	UpdatedAt time.Time `json:"updated_at"`
}

// OSTemplateList is GET /v1/os-templates.
type OSTemplateList struct {
	Data []OSTemplate `json:"data"`
}
