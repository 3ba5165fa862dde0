package fsm

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// A registry call is bracketed by two commands: the intent (an order, a
// change, a renewal: money moves and the operation is recorded with the base
// of its client transaction ids) and its end (DomainOpDone: committed, or
// rolled back with the reason and the money refunded). The leader's driver
// (coordinator/internal/domainreg) calls the registry in between; an intent a
// leader change left open is driven to its end by the next leader with the
// same transaction ids, which the registry applies at most once.

// MaxDomainYears bounds a registration period (EPP allows 1-99; registries 10).
const MaxDomainYears = 10

// DomainOrder is a registration bought from the wallet: the price is the
// account's effective yearly price of the TLD's product at apply time times
// Years; the wallet pays an invoice, and the domain is recorded as
// registering with its registration operation open. Nothing is written when
// any of it is refused.
type DomainOrder struct {
	ID           string            `json:"id"`
	AccountID    string            `json:"account_id"`
	Name         string            `json:"name"`
	UnicodeName  string            `json:"unicode_name,omitempty"`
	Tld          string            `json:"tld"`
	ProductSlug  string            `json:"product_slug"`
	Years        int               `json:"years"`
	Nameservers  []string          `json:"nameservers,omitempty"`
	Contact      api.DomainContact `json:"contact"`
	ContactID    string            `json:"contact_id"`
	AutoRenew    bool              `json:"auto_renew"`
	WhoisPrivacy bool              `json:"whois_privacy"`
	ClTRID       string            `json:"cl_trid"`
	InvoiceID    string            `json:"invoice_id"`
	PaymentID    string            `json:"payment_id"`
	TxID         string            `json:"tx_id"`
	// Transfer moves a domain registered elsewhere here (one year, added
	// to its expiry by the registry) with its auth code, sealed.
	Transfer       bool   `json:"transfer,omitempty"`
	SealedAuthCode string `json:"sealed_auth_code,omitempty"`
}

// DomainOpDone ends a domain's registry operation OpID: OK commits it
// (Expires is the registry's expiry after a registration or renewal),
// otherwise it is rolled back with Reason and a paid invoice refunded. An
// operation ended already (a repeat by another leader) changes nothing.
type DomainOpDone struct {
	DomainID string     `json:"domain_id"`
	OpID     string     `json:"op_id"`
	OK       bool       `json:"ok"`
	Reason   string     `json:"reason,omitempty"`
	Expires  *time.Time `json:"expires,omitempty"`
}

// DomainChange is a PATCH: the registry settings that differ from the
// domain's open a change operation (refused while another one is open).
// From semantics level 2 an AutoRenew sent with registry settings is
// committed or rolled back with them (a PATCH the registry refuses changes
// nothing), and an expired domain takes no change; before it AutoRenew is
// applied at once and an expired domain is changed.
//
// The settings are the PATCH body's as the API decoded them, each named
// here (nil: not given), so that a field added to the public request does
// not reach the replicated payload unless added here too. The encoding is
// the one the command had when it embedded api.DomainUpdateRequest.
type DomainChange struct {
	DomainID     string   `json:"domain_id"`
	AccountID    string   `json:"account_id"`
	ChangeID     string   `json:"change_id"`
	ClTRID       string   `json:"cl_trid"`
	AutoRenew    *bool    `json:"auto_renew,omitempty"`
	TransferLock *bool    `json:"transfer_lock,omitempty"`
	WhoisPrivacy *bool    `json:"whois_privacy,omitempty"`
	Nameservers  []string `json:"nameservers,omitempty"`
}

// domainChangeLevel is the semantics level from which a domain change holds
// its auto-renew with its registry settings and refuses an expired domain.
const domainChangeLevel = 2

// DomainStateError refuses a change of a domain that is not registered
// (registering, transferring, failed, or expired): a 409 that waiting does
// not cure, unlike a change in progress.
type DomainStateError struct {
	DomainID, Status string
}

func (e *DomainStateError) Error() string {
	return fmt.Sprintf("domain %s is %s; only an active domain can be changed", e.DomainID, e.Status)
}

// Unwrap makes it an ErrConflict.
func (e *DomainStateError) Unwrap() error { return ErrConflict }

// DomainPolicy is the renewal job's policy for domains: auto-renewing ones
// are paid RenewDays before expiry; the others get a domain.expiring
// reminder as each of ReminderDays is reached.
type DomainPolicy struct {
	RenewDays    int   `json:"renew_days"`
	ReminderDays []int `json:"reminder_days"`
}

// CheckDomainPolicy refuses a policy the sweep cannot follow.
func CheckDomainPolicy(p DomainPolicy) error {
	if p.RenewDays < 1 || p.RenewDays > 90 {
		return fmt.Errorf("%w: domain renew days must be 1-90", ErrInvalid)
	}
	for _, d := range p.ReminderDays {
		if d < 0 || d > 365 {
			return fmt.Errorf("%w: domain reminder days must be 0-365", ErrInvalid)
		}
	}
	return nil
}

// DomainSweep is one renewal-job pass over Domains at the command's time.
type DomainSweep struct {
	Policy  DomainPolicy `json:"policy"`
	Domains []string     `json:"domains"`
}

// DomainSweepResult counts what a sweep did.
type DomainSweepResult struct {
	Renewing  int `json:"renewing"`
	Reminded  int `json:"reminded"`
	Expired   int `json:"expired"`
	Unpayable int `json:"unpayable"`
}

// DomainClTRID is the base client transaction id of operation opID: the id
// itself (3-64 printable characters). Each registry call of the operation
// adds its own suffix.
func DomainClTRID(opID string) string { return opID }

// domainPrice is what accountID pays a year for names under the TLD of the
// domain product slug (ErrInvalid naming name when it is not one).
func domainPrice(c *applyCtx, accountID, slug, tld string) (int64, error) {
	prod, err := c.r.Product(slug)
	if err == store.ErrNotFound || err == nil && (prod.Category != api.ProductDomain || prod.Tld != tld || prod.Retired) {
		return 0, fmt.Errorf("%w: field \"name\": the TLD .%s is not offered", ErrInvalid, tld)
	} else if err != nil {
		return 0, err
	}
	pricing, err := c.r.AccountPricing(accountID)
	if err != nil {
		return 0, err
	}
	return pricing.EffectivePrice(slug, prod.RetailYearlyUsdCents), nil
}

func openDomainOp(c *applyCtx, d *store.RegDomain, op store.RegDomainOp) error {
	d.Op = &op
	return c.tx.Bucket(store.BucketRegDomainOps).Put([]byte(d.ID), nil)
}

func putRegDomain(c *applyCtx, d store.RegDomain) error {
	return store.PutJSON(c.tx, store.BucketRegDomains, store.OwnedKey(d.AccountID, d.ID), d)
}

func applyDomainOrder(c *applyCtx, p DomainOrder) (any, error) {
	switch {
	case p.ID == "" || p.InvoiceID == "" || p.PaymentID == "" || p.TxID == "" || p.ContactID == "" || p.ClTRID == "":
		return nil, fmt.Errorf("%w: a domain order needs domain, contact, invoice, payment and transaction ids", ErrInvalid)
	case p.Years < 1 || p.Years > MaxDomainYears:
		return nil, fmt.Errorf("%w: field \"years\": must be 1 to %d", ErrInvalid, MaxDomainYears)
	case p.Name == "" || p.Tld == "":
		return nil, fmt.Errorf("%w: field \"name\": is required", ErrInvalid)
	}
	acc, err := getAccount(c.tx, p.AccountID)
	if err != nil {
		return nil, err
	}
	if id := c.r.RegDomainNameTaken(p.Name); id != "" {
		return nil, fmt.Errorf("%w: domain %s is registered here already", ErrConflict, p.Name)
	}
	yearly, err := domainPrice(c, acc.ID, p.ProductSlug, p.Tld)
	if err != nil {
		return nil, err
	}
	price := yearly * int64(p.Years)
	if acc.BalanceUsdCents < price {
		return nil, &ShortfallError{BalanceUsdCents: acc.BalanceUsdCents, PriceUsdCents: price}
	}
	what, status, kind := "registration", api.DomainRegistering, store.RegOpRegister
	if p.Transfer {
		if p.SealedAuthCode == "" || p.Years != 1 {
			return nil, fmt.Errorf("%w: a transfer needs its sealed auth code and one year", ErrInvalid)
		}
		what, status, kind = "transfer", api.DomainTransferring, store.RegOpTransfer
	}
	inv := store.Invoice{AccountID: acc.ID, Invoice: api.Invoice{
		ID: p.InvoiceID, Status: api.InvoiceUnpaid, Currency: "USD", CreatedAt: c.at, DueAt: c.at, Payments: []api.Payment{},
		Lines: []api.InvoiceLine{{
			Description: fmt.Sprintf("Domain %s %s (%s), %d year(s)", what, p.Name, p.ID, p.Years),
			Quantity:    int64(p.Years), UnitPriceUsdCents: yearly, AmountUsdCents: price,
		}},
		TotalUsdCents: price,
	}}
	if err := recordInvoice(c, &acc, &inv, true, p.PaymentID, p.TxID, true); err != nil {
		return nil, err
	}
	ns := p.Nameservers
	if ns == nil {
		ns = []string{}
	}
	d := store.RegDomain{
		Domain: api.Domain{
			ID: p.ID, Name: p.Name, UnicodeName: p.UnicodeName, Status: status, PeriodYears: p.Years,
			Nameservers: ns, AutoRenew: p.AutoRenew, WhoisPrivacy: p.WhoisPrivacy, CreatedAt: c.at,
			YearlyUsdCents: yearly, InvoiceID: p.InvoiceID,
		},
		AccountID: acc.ID, Tld: p.Tld, ProductSlug: p.ProductSlug, Contact: p.Contact, ContactID: p.ContactID,
	}
	op := store.RegDomainOp{ID: p.ID, Kind: kind, ClTRID: p.ClTRID, StartedAt: c.at,
		Years: p.Years, InvoiceID: p.InvoiceID, SealedAuthCode: p.SealedAuthCode}
	openAnswerWindow(c, &op)
	if err := openDomainOp(c, &d, op); err != nil {
		return nil, err
	}
	if err := c.tx.Bucket(store.BucketRegDomainIDs).Put([]byte(d.ID), []byte(acc.ID)); err != nil {
		return nil, err
	}
	if err := c.tx.Bucket(store.BucketRegDomainNames).Put([]byte(d.Name), []byte(d.ID)); err != nil {
		return nil, err
	}
	return d.Domain, putRegDomain(c, d)
}

func applyDomainOpDone(c *applyCtx, p DomainOpDone) (any, error) {
	d, err := c.r.RegDomainByID(p.DomainID)
	if err != nil {
		return nil, err
	}
	if d.Op == nil || d.Op.ID != p.OpID {
		return d.Domain, nil // ended already
	}
	op := *d.Op
	// A change or (from LevelDomainHosts) a host operation ends without an
	// expiry.
	settings := op.Kind == store.RegOpChange || op.Kind == store.RegOpHost
	if p.OK && !settings && (p.Expires == nil || p.Expires.IsZero()) {
		return nil, fmt.Errorf("%w: a registration, transfer or renewal needs the registry's expiry", ErrInvalid)
	}
	at := c.at
	switch {
	case !settings && p.OK:
		exp := p.Expires.UTC()
		d.Status, d.ExpiresAt, d.StatusReason = api.DomainActive, &exp, ""
		payload := map[string]any{"domainId": d.ID, "domain": d.Name, "periodYears": op.Years, "expiresAt": exp}
		switch op.Kind {
		case store.RegOpRenew:
			err = c.emit(api.EventDomainRenewed, d.AccountID, payload)
		case store.RegOpRegister:
			err = c.emit(api.EventDomainRegistered, d.AccountID, payload)
		}
		if err != nil {
			return nil, err
		}
	case op.Kind == store.RegOpRegister || op.Kind == store.RegOpTransfer:
		verb := map[string]string{store.RegOpRegister: "register", store.RegOpTransfer: "transfer"}[op.Kind]
		net, err := refundInvoice(c, d.AccountID, op.InvoiceID, "the registry did not "+verb+" "+d.Name)
		if err != nil {
			return nil, err
		}
		d.Status = api.DomainFailed
		d.StatusReason = fmt.Sprintf("the registry did not %s the domain: %s (the order's %d cents were refunded to the wallet)", verb, p.Reason, net)
		if c.r.RegDomainNameTaken(d.Name) == d.ID {
			if err := c.tx.Bucket(store.BucketRegDomainNames).Delete([]byte(d.Name)); err != nil {
				return nil, err
			}
		}
	case settings:
		if d.Change != nil && d.Change.ID == op.ID {
			d.Change.FinishedAt = &at
			d.Change.Status = api.ChangeFailed
			d.Change.Reason = p.Reason
			if p.OK {
				d.Change.Status, d.Change.Reason = api.ChangeApplied, ""
			}
		}
		if p.OK {
			if op.Nameservers != nil {
				d.Nameservers = slices.Clone(op.Nameservers)
			}
			setIfGiven(&d.TransferLock, op.TransferLock)
			setIfGiven(&d.WhoisPrivacy, op.WhoisPrivacy)
			setIfGiven(&d.AutoRenew, op.AutoRenew)
			endHostOp(&d, op.Host)
		}
	case op.Kind == store.RegOpRenew:
		net, err := refundInvoice(c, d.AccountID, op.InvoiceID, "the registry did not renew "+d.Name)
		if err != nil {
			return nil, err
		}
		d.StatusReason = fmt.Sprintf("the last renewal failed: %s (its %d cents were refunded to the wallet)", p.Reason, net)
		// The sweep tries this period again tomorrow, not at every pass.
		d.Reminders = append(d.Reminders, renewFailedKey(*d.ExpiresAt, c.at))
		if err := c.emit(api.EventDomainExpiring, d.AccountID, map[string]any{
			"domainId": d.ID, "domain": d.Name, "expiresAt": *d.ExpiresAt, "daysLeft": int(d.ExpiresAt.Sub(c.at).Hours() / 24),
			"autoRenew": d.AutoRenew, "reason": "the registry did not renew the domain: " + p.Reason,
		}); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: unknown domain operation %q", ErrInvalid, op.Kind)
	}
	d.Op = nil
	if op.Answer != nil {
		// The end comes before the window's close: it decides the
		// answer of the key that opened the operation (LevelDomainAnswer).
		status, body := DomainEndAnswer(d, op.Kind, op.ID)
		if err := decideAnswer(c, *op.Answer, status, body); err != nil {
			return nil, err
		}
	}
	if err := c.tx.Bucket(store.BucketRegDomainOps).Delete([]byte(d.ID)); err != nil {
		return nil, err
	}
	return d.Domain, putRegDomain(c, d)
}

func applyDomainChange(c *applyCtx, p DomainChange) (any, error) {
	d, err := c.r.OwnedRegDomain(p.AccountID, p.DomainID)
	if err != nil {
		return nil, err
	}
	level2 := c.level() >= domainChangeLevel
	if d.Status != api.DomainActive && (d.Status != api.DomainExpired || level2) {
		return nil, &DomainStateError{DomainID: d.ID, Status: d.Status}
	}
	op := store.RegDomainOp{ID: p.ChangeID, Kind: store.RegOpChange, ClTRID: p.ClTRID, StartedAt: c.at}
	if p.Nameservers != nil && !slices.Equal(p.Nameservers, d.Nameservers) {
		op.Nameservers = slices.Clone(p.Nameservers)
	}
	if p.TransferLock != nil && *p.TransferLock != d.TransferLock {
		op.TransferLock = p.TransferLock
	}
	if p.WhoisPrivacy != nil && *p.WhoisPrivacy != d.WhoisPrivacy {
		op.WhoisPrivacy = p.WhoisPrivacy
	}
	registry := op.Nameservers != nil || op.TransferLock != nil || op.WhoisPrivacy != nil
	if registry {
		if d.Op != nil {
			return nil, fmt.Errorf("%w: domain %s has a registry operation in progress (%s %s); retry when it has ended", ErrConflict, d.ID, d.Op.Kind, d.Op.ID)
		}
		if p.ChangeID == "" || p.ClTRID == "" {
			return nil, fmt.Errorf("%w: a change needs change and transaction ids", ErrInvalid)
		}
	}
	switch {
	case p.AutoRenew != nil && registry && level2:
		op.AutoRenew = p.AutoRenew
	case p.AutoRenew != nil:
		d.AutoRenew = *p.AutoRenew
		if d.Op != nil && d.Op.AutoRenew != nil {
			// A later auto-renew alone wins over one waiting for its change.
			d.Op.AutoRenew = nil
			if d.Change != nil && d.Change.ID == d.Op.ID {
				d.Change.AutoRenew = nil
			}
		}
	}
	if registry {
		d.Change = &api.DomainChange{ID: op.ID, Status: api.ChangePending, Nameservers: op.Nameservers,
			TransferLock: op.TransferLock, WhoisPrivacy: op.WhoisPrivacy, AutoRenew: op.AutoRenew, RequestedAt: c.at}
		openAnswerWindow(c, &op)
		if err := openDomainOp(c, &d, op); err != nil {
			return nil, err
		}
	}
	return d.Domain, putRegDomain(c, d)
}

// renewFailedKey records a renewal of the period ending exp that failed on
// the day of at.
func renewFailedKey(exp, at time.Time) string {
	return exp.Format("2006-01-02") + "/renew-failed/" + at.Format("2006-01-02")
}

// DomainRenewalCandidates lists the domains a sweep at now may act on:
// registered ones within reach of renewal, a reminder or expiry, with no
// registry operation open.
func DomainRenewalCandidates(r store.ReadTx, p DomainPolicy, now time.Time) ([]string, error) {
	all, err := r.AllRegDomains()
	if err != nil {
		return nil, err
	}
	reach := p.RenewDays
	for _, d := range p.ReminderDays {
		reach = max(reach, d)
	}
	var out []string
	for _, d := range all {
		if d.Op != nil || d.ExpiresAt == nil || d.Status != api.DomainActive {
			continue
		}
		if !now.Before(d.ExpiresAt.AddDate(0, 0, -reach)) {
			out = append(out, d.ID)
		}
	}
	return out, nil
}

func applyDomainSweep(c *applyCtx, p DomainSweep) (any, error) {
	if err := CheckDomainPolicy(p.Policy); err != nil {
		return nil, err
	}
	var res DomainSweepResult
	for i, id := range p.Domains {
		d, err := c.r.RegDomainByID(id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		if d.Op != nil || d.ExpiresAt == nil || d.Status != api.DomainActive {
			continue
		}
		exp := *d.ExpiresAt
		daysLeft := int(exp.Sub(c.at).Hours() / 24)
		switch {
		case !c.at.Before(exp):
			d.Status = api.DomainExpired
			res.Expired++
		case d.AutoRenew && !c.at.Before(exp.AddDate(0, 0, -p.Policy.RenewDays)):
			if slices.Contains(d.Reminders, renewFailedKey(exp, c.at)) {
				continue // the registry refused this period's renewal today
			}
			acc, err := getAccount(c.tx, d.AccountID)
			if err != nil {
				return nil, err
			}
			if acc.BalanceUsdCents < d.YearlyUsdCents {
				key := exp.Format("2006-01-02") + "/unpaid"
				if slices.Contains(d.Reminders, key) {
					continue
				}
				d.Reminders = append(d.Reminders, key)
				res.Unpayable++
				if err := c.emit(api.EventDomainExpiring, d.AccountID, map[string]any{
					"domainId": d.ID, "domain": d.Name, "expiresAt": exp, "daysLeft": daysLeft, "autoRenew": true,
					"reason": fmt.Sprintf("the wallet cannot pay the renewal (%d cents)", d.YearlyUsdCents),
				}); err != nil {
					return nil, err
				}
				break
			}
			seq := uint16(0x4000 + 3*i)
			opID, invID := c.derivedID("ren", seq), c.derivedID("inv", seq)
			for c.level() >= LevelIDOrder && store.OwnerOf(c.tx, store.BucketInvoiceIDs, invID) != nil {
				// Another sweep of this entry (a batch: one index) took
				// the same clamped time: probed past its ids, as
				// sweepIDs.next does (below LevelIDOrder as it was).
				seq += 3
				opID, invID = c.derivedID("ren", seq), c.derivedID("inv", seq)
			}
			inv := store.Invoice{AccountID: acc.ID, Invoice: api.Invoice{
				ID: invID, Status: api.InvoiceUnpaid, Currency: "USD", CreatedAt: c.createdAt(invID), DueAt: c.createdAt(invID),
				Payments: []api.Payment{},
				Lines: []api.InvoiceLine{{
					Description: fmt.Sprintf("Domain renewal %s (%s), 1 year from %s", d.Name, d.ID, exp.Format("2006-01-02")),
					Quantity:    1, UnitPriceUsdCents: d.YearlyUsdCents, AmountUsdCents: d.YearlyUsdCents,
				}},
				TotalUsdCents: d.YearlyUsdCents,
			}}
			if err := recordInvoice(c, &acc, &inv, true, c.derivedID("pay", seq+1), c.derivedID("wtx", seq+2), true); err != nil {
				return nil, err
			}
			// The renewal's transaction id derives from the domain, the
			// expiry it extends and the day of the attempt (recorded here,
			// repeated by whichever leader drives it); the registry renews a
			// period once whatever the id, as it checks the current expiry.
			if err := openDomainOp(c, &d, store.RegDomainOp{ID: opID, Kind: store.RegOpRenew,
				ClTRID: d.ID + "-renew-" + exp.Format("20060102") + "-" + c.at.Format("20060102"), StartedAt: c.at, Years: 1,
				InvoiceID: inv.ID, CurrentExpiry: &exp}); err != nil {
				return nil, err
			}
			res.Renewing++
		case !d.AutoRenew:
			due := -1
			for _, days := range p.Policy.ReminderDays {
				key := fmt.Sprintf("%s/%d", exp.Format("2006-01-02"), days)
				if c.at.Before(exp.AddDate(0, 0, -days)) || slices.Contains(d.Reminders, key) {
					continue
				}
				// Every reminder reached is recorded; one event says so.
				d.Reminders = append(d.Reminders, key)
				due = days
			}
			if due < 0 {
				continue
			}
			res.Reminded++
			if err := c.emit(api.EventDomainExpiring, d.AccountID, map[string]any{
				"domainId": d.ID, "domain": d.Name, "expiresAt": exp, "daysLeft": daysLeft, "autoRenew": false,
				"reason": "auto-renew is off",
			}); err != nil {
				return nil, err
			}
		default:
			continue
		}
		if err := putRegDomain(c, d); err != nil {
			return nil, err
		}
	}
	return res, nil
}
