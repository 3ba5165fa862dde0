package fsm

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

// ProductPut creates (Create) or updates a product of the catalogue. An
// update changes what new orders pay; running periods keep their price.
type ProductPut struct {
	Slug    string             `json:"slug"`
	Create  bool               `json:"create"`
	Product api.ProductRequest `json:"product"`
	// IfUpdatedAt: the update applies only to the product as last changed
	// at this time (the updated_at its sender read), else it is a conflict
	// with nothing changed (levelProductPrecondition): a read-modify-write
	// (hostplanectl product update) does not undo another change made
	// after its read.
	IfUpdatedAt *time.Time `json:"if_updated_at,omitempty"`
}

// levelProductPrecondition is the semantics level (level.go) from which
// ProductPut's IfUpdatedAt is checked in apply. Below it (a release before
// it replicates too, mid-upgrade) it is ignored on every replica alike; the
// admin API checks it before proposing at any level.
const levelProductPrecondition = 2

// ChangedError: a conditional write (ProductPut.IfUpdatedAt,
// OSTemplateLabelSet.IfUpdatedAt, OSTemplateUnlabel.IfUpdatedAt) found What
// changed after its sender read it; UpdatedAt is its last change now (zero:
// there is none now).
type ChangedError struct {
	What      string
	UpdatedAt time.Time
}

func (e *ChangedError) Error() string {
	now := "is gone"
	if !e.UpdatedAt.IsZero() {
		now = "was changed at " + e.UpdatedAt.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("%s %s, after it was read: read it again and send the change again", e.What, now)
}

func (e *ChangedError) Unwrap() error { return ErrConflict }

// UnchangedSince is nil when what, last changed at cur (zero: there is none),
// is as its sender read it, last changed at want (zero: there was none; nil:
// no precondition), else a *ChangedError.
func UnchangedSince(what string, cur time.Time, want *time.Time) error {
	if want == nil || cur.Equal(*want) {
		return nil
	}
	return &ChangedError{What: what, UpdatedAt: cur}
}

// ProductRetire stops a product from being ordered (idempotent).
type ProductRetire struct {
	Slug string `json:"slug"`
}

// AccountPricingSet sets an account's reseller pricing (the zero value: retail).
type AccountPricingSet struct {
	AccountID string             `json:"account_id"`
	Pricing   api.AccountPricing `json:"pricing"`
}

// ServerOrder is a server bought from the wallet, in one command: the price
// is the account's effective price of the product at apply time, the wallet
// is debited for a paid invoice, the server is created and placed (Create,
// as CmdServerCreate does) with its first month paid, and its provisioning
// action opened. Nothing is written when any of it is refused.
type ServerOrder struct {
	PlanSlug  string       `json:"plan_slug"`
	Create    ServerCreate `json:"create"`
	InvoiceID string       `json:"invoice_id"`
	PaymentID string       `json:"payment_id"`
	TxID      string       `json:"tx_id"`
}

// ShortfallError refuses an order the wallet cannot pay; it is an
// ErrInsufficientFunds that says by how much.
type ShortfallError struct {
	BalanceUsdCents, PriceUsdCents int64
}

func (e *ShortfallError) Error() string {
	return fmt.Sprintf("insufficient wallet balance: the order costs %d cents, the wallet holds %d cents; the shortfall is %d cents",
		e.PriceUsdCents, e.BalanceUsdCents, e.PriceUsdCents-e.BalanceUsdCents)
}

// Is makes a ShortfallError an ErrInsufficientFunds.
func (e *ShortfallError) Is(target error) bool { return target == ErrInsufficientFunds }

// ShortfallUsdCents is what the wallet lacks.
func (e *ShortfallError) ShortfallUsdCents() int64 { return e.PriceUsdCents - e.BalanceUsdCents }

// TldRE is an offered top-level domain in ASCII: one or two LDH labels
// (com, com.tr, xn--p1ai), the last not all digits.
var TldRE = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)?[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ProductSlugRE is a product slug.
var ProductSlugRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// CheckProduct validates a product (the HTTP layer says which field first).
func CheckProduct(slug string, p api.ProductRequest) error {
	switch {
	case !ProductSlugRE.MatchString(slug):
		return fmt.Errorf("%w: slug must be 1-63 lower-case letters, digits and dashes", ErrInvalid)
	case p.Category != api.ProductVPS && p.Category != api.ProductHosting && p.Category != api.ProductDomain:
		return fmt.Errorf("%w: category must be vps, hosting or domain", ErrInvalid)
	case p.Category == api.ProductDomain && !TldRE.MatchString(p.Tld):
		return fmt.Errorf("%w: tld: a domain product needs its top-level domain in ASCII (com, com.tr, xn--…)", ErrInvalid)
	case p.Category != api.ProductDomain && (p.Tld != "" || p.RetailYearlyUsdCents != 0):
		return fmt.Errorf("%w: tld: only a domain product has a tld and a yearly price", ErrInvalid)
	case p.RetailYearlyUsdCents < 0 || p.RetailYearlyUsdCents > maxProductPrice:
		return fmt.Errorf("%w: retail_yearly_usd_cents must be 0 to %d", ErrInvalid, maxProductPrice)
	case p.RetailMonthlyUsdCents < 0 || p.RetailMonthlyUsdCents > maxProductPrice:
		return fmt.Errorf("%w: retail_monthly_usd_cents must be 0 to %d", ErrInvalid, maxProductPrice)
	case p.Category == api.ProductVPS && (p.Specs.VCPU == 0 || p.Specs.RAMMB == 0 || p.Specs.DiskGB == 0):
		return fmt.Errorf("%w: a vps product needs specs.vcpu, specs.ram_mb and specs.disk_gb", ErrInvalid)
	case p.Category == api.ProductHosting && p.Specs.Hosting == nil:
		return fmt.Errorf("%w: a hosting product needs specs.hosting (its quotas)", ErrInvalid)
	case p.Category == api.ProductHosting:
		if err := validate.HostingPlan(*p.Specs.Hosting); err != nil {
			return fmt.Errorf("%w: specs.hosting.%s", ErrInvalid, validate.Reason(err))
		}
	}
	return nil
}

// maxProductPrice bounds a monthly price (USD 1 million).
const maxProductPrice = 100_000_000

func applyProductPut(c *applyCtx, p ProductPut) (any, error) {
	if err := CheckProduct(p.Slug, p.Product); err != nil {
		return nil, err
	}
	cur, err := c.r.Product(p.Slug)
	exists := err == nil
	switch {
	case err != nil && err != store.ErrNotFound:
		return nil, err
	case p.Create && exists:
		return nil, fmt.Errorf("%w: product %s exists", ErrConflict, p.Slug)
	case !p.Create && !exists:
		return nil, fmt.Errorf("product %s: %w", p.Slug, ErrNotFound)
	case exists && c.level() >= levelProductPrecondition:
		if err := UnchangedSince("product "+p.Slug, cur.UpdatedAt, p.IfUpdatedAt); err != nil {
			return nil, err
		}
	}
	out := api.AdminProduct{Slug: p.Slug, ProductRequest: p.Product, Retired: cur.Retired, CreatedAt: c.at, UpdatedAt: c.at}
	if exists {
		out.CreatedAt = cur.CreatedAt
	}
	return out, store.PutJSON(c.tx, store.BucketProducts, []byte(p.Slug), out)
}

func applyProductRetire(c *applyCtx, p ProductRetire) (any, error) {
	cur, err := c.r.Product(p.Slug)
	if err == store.ErrNotFound {
		return nil, fmt.Errorf("product %s: %w", p.Slug, ErrNotFound)
	} else if err != nil {
		return nil, err
	}
	if cur.Retired {
		return cur, nil
	}
	cur.Retired, cur.UpdatedAt = true, c.at
	return cur, store.PutJSON(c.tx, store.BucketProducts, []byte(p.Slug), cur)
}

func applyAccountPricing(c *applyCtx, p AccountPricingSet) (any, error) {
	if p.Pricing.DiscountPercent < 0 || p.Pricing.DiscountPercent > 100 {
		return nil, fmt.Errorf("%w: discount_percent must be 0 to 100", ErrInvalid)
	}
	for slug, price := range p.Pricing.Prices {
		if !ProductSlugRE.MatchString(slug) || price < 0 || price > maxProductPrice {
			return nil, fmt.Errorf("%w: a price needs a product slug and 0 to %d cents", ErrInvalid, maxProductPrice)
		}
	}
	if _, err := getAccount(c.tx, p.AccountID); err != nil {
		return nil, err
	}
	return p.Pricing, store.PutJSON(c.tx, store.BucketAccountPricing, []byte(p.AccountID), p.Pricing)
}

// orderPrice is what accountID pays a month for the orderable product slug
// of category: an unknown or retired product, or one of another category,
// is ErrInvalid naming plan_slug.
func orderPrice(c *applyCtx, accountID, slug, category string) (api.AdminProduct, int64, error) {
	prod, err := c.r.Product(slug)
	if err == store.ErrNotFound {
		return prod, 0, fmt.Errorf("%w: field \"plan_slug\": no product %q", ErrInvalid, slug)
	} else if err != nil {
		return prod, 0, err
	}
	if prod.Retired {
		return prod, 0, fmt.Errorf("%w: field \"plan_slug\": product %q is retired and can no longer be ordered", ErrInvalid, slug)
	}
	if prod.Category != category {
		return prod, 0, fmt.Errorf("%w: field \"plan_slug\": product %q is not a %s product (category %s)", ErrInvalid, slug, category, prod.Category)
	}
	pricing, err := c.r.AccountPricing(accountID)
	if err != nil {
		return prod, 0, err
	}
	return prod, pricing.EffectivePrice(slug, prod.RetailMonthlyUsdCents), nil
}

// OrderCharge is the money of one order command: the product bought and
// the ids of its paid invoice, the invoice's wallet payment and the wallet
// transaction.
type OrderCharge struct {
	PlanSlug  string `json:"plan_slug"`
	InvoiceID string `json:"invoice_id"`
	PaymentID string `json:"payment_id"`
	TxID      string `json:"tx_id"`
}

func (p ServerOrder) charge() OrderCharge {
	return OrderCharge{PlanSlug: p.PlanSlug, InvoiceID: p.InvoiceID, PaymentID: p.PaymentID, TxID: p.TxID}
}

// OrderedService is what an order's create step made: the invoice line's
// description of the service bought.
type OrderedService struct {
	Line string
}

// applyOrder is the money path every order command shares, in its one
// command: the account's effective price of o.PlanSlug (of category) now,
// a ShortfallError when the wallet cannot pay it, then create (which
// records the service with its first period, paid until until, and may
// still refuse: nothing is written then), then the paid invoice
// (invoice.created, invoice.paid) debited from the wallet.
func applyOrder(c *applyCtx, accountID, category string, o OrderCharge,
	create func(prod api.AdminProduct, price int64, until time.Time) (OrderedService, error)) (store.Invoice, error) {
	if o.InvoiceID == "" || o.PaymentID == "" || o.TxID == "" {
		return store.Invoice{}, fmt.Errorf("%w: an order needs invoice, payment and transaction ids", ErrInvalid)
	}
	acc, err := getAccount(c.tx, accountID)
	if err != nil {
		return store.Invoice{}, err
	}
	prod, price, err := orderPrice(c, acc.ID, o.PlanSlug, category)
	if err != nil {
		return store.Invoice{}, err
	}
	if acc.BalanceUsdCents < price {
		return store.Invoice{}, &ShortfallError{BalanceUsdCents: acc.BalanceUsdCents, PriceUsdCents: price}
	}
	// Everything that can refuse the order is checked above or in create,
	// which runs before any money moves.
	until := c.at.AddDate(0, 1, 0)
	svc, err := create(prod, price, until)
	if err != nil {
		return store.Invoice{}, err
	}
	inv := store.Invoice{AccountID: acc.ID, Invoice: api.Invoice{
		ID: o.InvoiceID, Status: api.InvoiceUnpaid, Currency: "USD", CreatedAt: c.at, DueAt: c.at, Payments: []api.Payment{},
		Lines: []api.InvoiceLine{{
			Description: prod.NameEn + " (" + prod.Slug + ") " + svc.Line + ", " +
				c.at.Format("2006-01-02") + " to " + until.Format("2006-01-02"),
			Quantity: 1, UnitPriceUsdCents: price, AmountUsdCents: price,
		}},
		TotalUsdCents: price,
	}}
	err = recordInvoice(c, &acc, &inv, true, o.PaymentID, o.TxID, true)
	return inv, err
}

func applyServerOrder(c *applyCtx, p ServerOrder) (any, error) {
	s := &p.Create.Server
	var created api.AdminServerCreated
	inv, err := applyOrder(c, s.AccountID, api.ProductVPS, p.charge(), func(prod api.AdminProduct, price int64, until time.Time) (OrderedService, error) {
		s.Plan, s.PaidUntil, s.MonthlyUsdCents, s.InvoiceID = prod.Plan(), &until, price, p.InvoiceID
		v, err := createServer(c, p.Create, true) // applyOrder read the account
		if err != nil {
			return OrderedService{}, err
		}
		var ok bool
		if created, ok = v.(api.AdminServerCreated); !ok {
			return OrderedService{}, fmt.Errorf("server order: unexpected server create result %T", v)
		}
		return OrderedService{Line: "server " + s.ID}, nil
	})
	if err != nil {
		return nil, err
	}
	return api.ServerOrder{Server: created.Server.Server, Action: created.Action, Invoice: inv.Invoice}, nil
}

// refundOrder returns a bought server's order to the wallet when its
// provisioning failed, in the command that records the failure.
func refundOrder(c *applyCtx, s *store.Server, a *store.Action) error {
	return refundFailedOrder(c, s.AccountID, s.InvoiceID, "server "+s.ID, &s.PaidUntil, a)
}

// refundFailedOrder refunds the order invoice of a service (what) whose
// provisioning failed (see refundInvoice), clears its paid_until and says so
// in the failed action's message. A service without an order (invoiceID
// "") is left alone.
func refundFailedOrder(c *applyCtx, accountID, invoiceID, what string, paidUntil **time.Time, a *store.Action) error {
	if invoiceID == "" {
		return nil
	}
	net, err := refundInvoice(c, accountID, invoiceID, what+" failed to provision")
	if err != nil || net == 0 {
		return err
	}
	*paidUntil = nil
	if a.Error != nil {
		a.Error.Message = strings.TrimSpace(a.Error.Message + fmt.Sprintf(" (the order's %d cents were refunded to the wallet)", net))
	}
	return nil
}

// refundInvoice credits back to the wallet what it paid for the account's
// invoice, once: a refund transaction (why says what for) and the
// invoice's credit (a negative wallet payment). It returns the cents
// refunded, 0 when the invoice is unpaid or credited already.
func refundInvoice(c *applyCtx, accountID, invoiceID, why string) (int64, error) {
	return refundInvoiceUpTo(c, accountID, invoiceID, 0, why)
}

// refundInvoiceUpTo is refundInvoice of at most limit cents (0: all that
// is left to refund).
func refundInvoiceUpTo(c *applyCtx, accountID, invoiceID string, limit int64, why string) (int64, error) {
	var inv store.Invoice
	if err := store.GetJSON(c.tx, store.BucketInvoices, store.OwnedKey(accountID, invoiceID), &inv); err != nil {
		return 0, err
	}
	var net int64
	for _, pay := range inv.Payments {
		net += pay.AmountUsdCents
	}
	if inv.Status != api.InvoicePaid || net <= 0 {
		return 0, nil
	}
	if limit > 0 {
		net = min(net, limit)
	}
	acc, err := getAccount(c.tx, accountID)
	if err != nil {
		return 0, err
	}
	acc.BalanceUsdCents += net
	// A time-ordered id of this entry (the wallet history lists by id):
	// derived, so every replica makes the same one, and probed past any
	// refund of the same entry (several failures in one batch).
	var txID string
	for seq := uint16(0x8000); ; seq++ {
		txID = c.derivedID("wtx", seq)
		if c.tx.Bucket(store.BucketWalletTx).Get(store.OwnedKey(acc.ID, txID)) == nil {
			break
		}
	}
	wtx := api.WalletTransaction{
		ID: txID, Type: api.TxRefund, AmountUsdCents: net, BalanceAfterUsdCents: acc.BalanceUsdCents,
		Description: fmt.Sprintf("refund of invoice %s: %s", inv.Number, why), InvoiceID: inv.ID, CreatedAt: c.createdAt(txID),
	}
	inv.Payments = append(inv.Payments, api.Payment{ID: txID, Method: "wallet", AmountUsdCents: -net, TransactionID: txID, CreatedAt: c.createdAt(txID)})
	if err := store.PutAccount(c.tx, &acc); err != nil {
		return 0, err
	}
	if err := store.PutWalletTx(c.tx, acc.ID, &wtx); err != nil {
		return 0, err
	}
	return net, store.PutJSON(c.tx, store.BucketInvoices, store.OwnedKey(acc.ID, inv.ID), inv)
}
