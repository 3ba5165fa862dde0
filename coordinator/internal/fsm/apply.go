package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// applyCtx carries one command through its handler. Handlers validate everything
// before their first write: a business error must leave nothing behind, since the
// batch's transaction commits the other commands.
type applyCtx struct {
	tx    *bolt.Tx
	r     store.ReadTx // typed reads in the same transaction
	index uint64
	// evIndex is the command's event index: index plus
	// store.EventIndexOffset (0 unless the state was restored from a
	// backup of a longer log). Outbox keys and a subscription's indexes
	// (ActiveSince, PausedSince, Gaps) are counted in it.
	evIndex uint64
	at      time.Time
	env     *Envelope
	events  []store.Event
	// seqBase is the number of events earlier commands of the same log entry
	// (a batch) emitted, so event ids and outbox keys stay unique.
	seqBase uint16
	// evAt is the time of the command's events once eventTime has
	// chosen it (evAtSet), from LevelEventOrder (eventorder.go).
	evAt    time.Time
	evAtSet bool
	// derived is the ids derivedID made for this command's records, from
	// LevelIDOrder (their created_at is idTime: createdAt).
	derived []string
	// pools are the FSM's IP pool allocators; poolsTouched is set when this
	// command changed one (ippools.go).
	pools        *poolCache
	poolsTouched bool
	// use is the FSM's node usage sums; useTouched is set when this
	// command changed one (nodeusage.go).
	use        *nodeUsage
	useTouched bool
	// maxLevel is the newest semantics level the FSM applies (level.go).
	maxLevel uint16
	// lvl is the cluster's level in the batch being applied (the FSM's
	// batchLevel; level); nil outside ApplyBatch (reads of the state that
	// share the apply's helpers), where the meta bucket is read.
	lvl *uint16
	// actions, when the FSM's actions are watched (WatchActions), collects
	// the ids of the actions this command writes.
	actions *[]string
	// log is the FSM's logger (nil outside ApplyBatch): an apply that
	// ignores part of a command says so at debug level.
	log *slog.Logger
}

// level is the cluster's semantics level as this command applies it: the
// level the transaction holds, kept by the FSM instead of read from the meta
// bucket by each of a command's checks.
func (c *applyCtx) level() uint16 {
	if c.lvl != nil {
		return *c.lvl
	}
	return c.r.ClusterLevel()
}

func (c *applyCtx) decode(v any) error {
	if err := json.Unmarshal(c.env.Data, v); err != nil {
		return fmt.Errorf("%w: decode command %d: %v", ErrInvalid, c.env.Type, err)
	}
	return nil
}

// emit queues an outbox event written in the same transaction as the change.
func (c *applyCtx) emit(typ api.WebhookEvent, accountID string, data any) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return err
	}
	c.emitJSON(typ, accountID, raw)
	return nil
}

// emitJSON is emit of data json.Marshal wrote already (or its exact bytes).
// The event's time and id are the command's time and Raft index, or from
// LevelEventOrder its events' time and event index (eventorder.go), so that
// ids sort in commit order.
func (c *applyCtx) emitJSON(typ api.WebhookEvent, accountID string, raw []byte) {
	at := c.eventTime()
	c.events = append(c.events, store.Event{
		ID:        ids.Derived("evt", at, c.eventIndex(), c.seqBase+uint16(len(c.events))),
		Type:      string(typ),
		AccountID: accountID,
		CreatedAt: at,
		Data:      raw,
	})
}

type handlerFunc func(c *applyCtx) (any, error)

// typed adapts a handler of one command's payload type P: the command's data is
// decoded into P once, here (a bad payload is ErrInvalid), before h runs.
func typed[P any](h func(c *applyCtx, p P) (any, error)) handlerFunc {
	return func(c *applyCtx) (any, error) {
		var p P
		if err := c.decode(&p); err != nil {
			return nil, err
		}
		return h(c, p)
	}
}

// setIfGiven sets *dst to *v when v is given: a field an update leaves nil
// keeps what it had.
func setIfGiven[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func applyAccountCreate(c *applyCtx, p AccountCreate) (any, error) {
	email := strings.ToLower(p.Email)
	if c.tx.Bucket(store.BucketEmails).Get([]byte(email)) != nil {
		return nil, fmt.Errorf("%w: an account with email %q exists", ErrConflict, p.Email)
	}
	acc := api.Account{ID: p.ID, Email: p.Email, Name: p.Name, Country: p.Country, CreatedAt: c.at}
	if err := store.PutAccount(c.tx, &acc); err != nil {
		return nil, err
	}
	return acc, c.tx.Bucket(store.BucketEmails).Put([]byte(email), []byte(p.ID))
}

func getAccount(tx *bolt.Tx, id string) (api.Account, error) {
	acc, err := store.GetAccount(tx, id)
	if err != nil {
		if err == store.ErrNotFound {
			return acc, fmt.Errorf("account %s: %w", id, ErrNotFound)
		}
		return acc, err
	}
	return acc, nil
}

func applyKeyCreate(c *applyCtx, p KeyCreate) (any, error) {
	if _, err := getAccount(c.tx, p.AccountID); err != nil {
		return nil, err
	}
	if c.tx.Bucket(store.BucketKeyHashes).Get([]byte(p.Hash)) != nil {
		return nil, fmt.Errorf("%w: key hash collision", ErrConflict)
	}
	k := store.Key{KeyInfo: api.KeyInfo{
		ID: p.ID, AccountID: p.AccountID, Name: p.Name, Prefix: p.Prefix, Scopes: p.Scopes,
		ExpiresAt: p.ExpiresAt, AllowedCIDRs: p.AllowedCIDRs, RateLimitPerMin: p.RateLimitPerMin, CreatedAt: c.at,
	}, Hash: p.Hash}
	if err := store.PutJSON(c.tx, store.BucketKeys, []byte(p.ID), k); err != nil {
		return nil, err
	}
	return k.KeyInfo, c.tx.Bucket(store.BucketKeyHashes).Put([]byte(p.Hash), []byte(p.ID))
}

func applyKeyRevoke(c *applyCtx, p KeyRevoke) (any, error) {
	var k store.Key
	if err := store.GetJSON(c.tx, store.BucketKeys, []byte(p.ID), &k); err != nil {
		if err == store.ErrNotFound {
			return nil, fmt.Errorf("key %s: %w", p.ID, ErrNotFound)
		}
		return nil, err
	}
	if k.RevokedAt == nil {
		at := c.at
		k.RevokedAt = &at
		if err := store.PutJSON(c.tx, store.BucketKeys, []byte(p.ID), k); err != nil {
			return nil, err
		}
	}
	return k.KeyInfo, nil
}

// maxAmount bounds any single money movement (USD 10 billion in cents), so sums
// cannot overflow int64.
const maxAmount = 1_000_000_000_000

// LevelKeyLastIP is the semantics level (level.go) from which a key usage
// flush records the client address of the key's last use with its time
// (api.KeyInfo.LastUsedIP), as one pair: a newer use whose batch has no
// address clears it (unknown, rather than an older use's); below it the
// batch's address is ignored and the stored one left as it is, as a replica
// of the release before does.
const LevelKeyLastIP = 2

// keyUsageKeep is how many usage entries each key keeps.
const keyUsageKeep = 200

func applyKeyUsage(c *applyCtx, p KeyUsage) (any, error) {
	for _, kb := range p.Keys {
		var k store.Key
		if err := store.GetJSON(c.tx, store.BucketKeys, []byte(kb.KeyID), &k); err != nil {
			continue // key removed since; its usage is moot
		}
		if err := addKeyUsage(c, &k, kb); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// addKeyUsage writes one key's batch of a usage flush to k (read from the
// keys bucket): its count and last use on the key, which is stored, and its
// entries to the key's usage log, pruned to the newest keyUsageKeep.
func addKeyUsage(c *applyCtx, k *store.Key, kb KeyUsageBatch) error {
	ub := c.tx.Bucket(store.BucketKeyUsage)
	last := kb.LastUsedAt
	if k.LastUsedAt == nil || last.After(*k.LastUsedAt) {
		k.LastUsedAt = &last
		if c.level() >= LevelKeyLastIP {
			// The address goes with the time, an empty one too: a
			// newer use that came without its address (shipped by a
			// follower that had not applied the level yet) must not
			// leave an older use's address beside its time.
			k.LastUsedIP = kb.LastUsedIP
		}
	}
	k.UseCount += kb.Count
	if err := store.PutJSON(c.tx, store.BucketKeys, []byte(kb.KeyID), *k); err != nil {
		return err
	}
	seq, err := store.NextCounter(c.tx, "key_usage/"+kb.KeyID)
	if err != nil {
		return err
	}
	for _, e := range kb.Entries {
		key := append([]byte(kb.KeyID+"/"), store.OutboxKey(seq, 0)[:8]...)
		seq++
		if err := store.PutJSON(c.tx, store.BucketKeyUsage, key, api.KeyUsage{At: e.At, Method: e.Method, Path: e.Path, Route: e.Route, Status: e.Status, IP: e.IP}); err != nil {
			return err
		}
	}
	if err := c.tx.Bucket(store.BucketCounters).Put([]byte("key_usage/"+kb.KeyID), store.OutboxKey(seq, 0)[:8]); err != nil {
		return err
	}
	// Prune to the newest keyUsageKeep entries.
	prefix := []byte(kb.KeyID + "/")
	n := 0
	cur := ub.Cursor()
	for k, _ := cur.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, _ = cur.Next() {
		n++
	}
	for k, _ := cur.Seek(prefix); n > keyUsageKeep && k != nil && strings.HasPrefix(string(k), string(prefix)); k, _ = cur.Seek(prefix) {
		if err := ub.Delete(k); err != nil {
			return err
		}
		n--
	}
	return nil
}

func applyWalletCredit(c *applyCtx, p WalletCredit) (any, error) {
	if p.AmountUsdCents <= 0 || p.AmountUsdCents > maxAmount {
		return nil, fmt.Errorf("%w: amount must be 1 to %d cents", ErrInvalid, maxAmount)
	}
	acc, err := getAccount(c.tx, p.AccountID)
	if err != nil {
		return nil, err
	}
	acc.BalanceUsdCents += p.AmountUsdCents
	tx := api.WalletTransaction{
		ID: p.TxID, Type: api.TxDeposit, AmountUsdCents: p.AmountUsdCents, BalanceAfterUsdCents: acc.BalanceUsdCents,
		Description: p.Description, Gateway: p.Gateway, CreatedAt: c.at,
	}
	if err := store.PutAccount(c.tx, &acc); err != nil {
		return nil, err
	}
	if err := store.PutWalletTx(c.tx, acc.ID, &tx); err != nil {
		return nil, err
	}
	// A top-up pays the renewals whose non-payment suspended a server.
	if err := payOverdueRenewals(c, &acc, tx.ID); err != nil {
		return nil, err
	}
	return tx, c.emit(api.EventWalletDepositReceived, acc.ID, map[string]any{
		"amountUsdCents": p.AmountUsdCents, "gateway": p.Gateway, "transactionId": tx.ID,
	})
}

func applyInvoiceIssue(c *applyCtx, p InvoiceIssue) (any, error) {
	acc, err := getAccount(c.tx, p.AccountID)
	if err != nil {
		return nil, err
	}
	if len(p.Lines) == 0 {
		return nil, fmt.Errorf("%w: an invoice needs at least one line", ErrInvalid)
	}
	inv := store.Invoice{AccountID: acc.ID, Invoice: api.Invoice{
		ID: p.ID, Status: api.InvoiceUnpaid, Currency: "USD", CreatedAt: c.at, DueAt: p.DueAt, Payments: []api.Payment{},
	}}
	if len(p.Lines) > 100 {
		return nil, fmt.Errorf("%w: at most 100 lines", ErrInvalid)
	}
	for _, l := range p.Lines {
		if l.Quantity < 1 || l.Quantity > 10000 || l.UnitPriceUsdCents < 0 || l.UnitPriceUsdCents > 100_000_000 {
			return nil, fmt.Errorf("%w: line quantity or price out of range", ErrInvalid)
		}
		amt := l.Quantity * l.UnitPriceUsdCents
		inv.Lines = append(inv.Lines, api.InvoiceLine{Description: l.Description, Quantity: l.Quantity, UnitPriceUsdCents: l.UnitPriceUsdCents, AmountUsdCents: amt})
		inv.TotalUsdCents += amt
	}
	if p.PayFromWallet && acc.BalanceUsdCents < inv.TotalUsdCents {
		return nil, fmt.Errorf("%w: balance %d < total %d cents", ErrInsufficientFunds, acc.BalanceUsdCents, inv.TotalUsdCents)
	}
	// An operator's invoice is numbered as orders, renewals and domains
	// number theirs (INV-2026-000123) from semantics level 2; a cluster
	// still at 1 (mid-upgrade) numbers it INV-000123, as before. One counter
	// either way: the numbers stay gap-free.
	if err := recordInvoice(c, &acc, &inv, p.PayFromWallet, p.PaymentID, p.TxID, c.level() >= levelInvoiceYear); err != nil {
		return nil, err
	}
	return inv.Invoice, nil
}

// levelInvoiceYear is the semantics level from which an operator's invoice
// (CmdInvoiceIssue) carries the year in its number.
const levelInvoiceYear uint16 = 2

// recordInvoice numbers and stores a new invoice with its invoice.created
// event and, with pay, pays it from the wallet (the caller checked the
// balance). Numbers come from one gap-free counter per cluster: INV-000123,
// or with yearNumber INV-2026-000123 (the year of the command's time).
func recordInvoice(c *applyCtx, acc *api.Account, inv *store.Invoice, pay bool, paymentID, txID string, yearNumber bool) error {
	if err := numberInvoice(c, acc, inv, pay, paymentID, txID, yearNumber); err != nil {
		return err
	}
	return store.PutInvoice(c.tx, acc.ID, inv)
}

// numberInvoice is recordInvoice but for the invoice's own record, which
// the caller writes (a renewal sweep writes it once, after paying it).
func numberInvoice(c *applyCtx, acc *api.Account, inv *store.Invoice, pay bool, paymentID, txID string, yearNumber bool) error {
	n, err := store.NextCounter(c.tx, "invoice_number")
	if err != nil {
		return err
	}
	inv.Number = invoiceNumber(n, c.at.Year(), yearNumber)
	c.emitJSON(api.EventInvoiceCreated, acc.ID, invoiceEventData(inv, true))
	if pay {
		if err := payFromWallet(c, acc, inv, paymentID, txID); err != nil {
			return err
		}
	}
	return putOwner(c, store.BucketInvoiceIDs, inv.ID, acc.ID)
}

// payFromWallet debits the wallet and marks inv paid; the caller checked the balance.
func payFromWallet(c *applyCtx, acc *api.Account, inv *store.Invoice, paymentID, txID string) error {
	if err := store.PutAccount(c.tx, debitedAccount(acc, inv)); err != nil {
		return err
	}
	return recordWalletPayment(c, acc, inv, paymentID, txID)
}

// debitWallet is payFromWallet leaving the account's write to the caller
// (a renewal sweep writes each account once).
func debitWallet(c *applyCtx, acc *api.Account, inv *store.Invoice, paymentID, txID string) error {
	debitedAccount(acc, inv)
	return recordWalletPayment(c, acc, inv, paymentID, txID)
}

func debitedAccount(acc *api.Account, inv *store.Invoice) *api.Account {
	acc.BalanceUsdCents -= inv.TotalUsdCents
	return acc
}

// recordWalletPayment records a debit of acc (already applied to it): the
// wallet transaction, the invoice marked paid, its event.
func recordWalletPayment(c *applyCtx, acc *api.Account, inv *store.Invoice, paymentID, txID string) error {
	// The payment's time (the transaction's created_at, the payment's and
	// the invoice's paid_at): the command's, or from LevelIDOrder its id's
	// when the FSM made the transaction's id (createdAt).
	at := c.createdAt(txID)
	wtx := api.WalletTransaction{
		ID: txID, Type: api.TxInvoicePayment, AmountUsdCents: -inv.TotalUsdCents, BalanceAfterUsdCents: acc.BalanceUsdCents,
		Description: "payment of invoice " + inv.Number, InvoiceID: inv.ID, CreatedAt: at,
	}
	inv.Status = api.InvoicePaid
	inv.PaidAt = &at
	inv.Payments = append(inv.Payments, api.Payment{ID: paymentID, Method: "wallet", AmountUsdCents: inv.TotalUsdCents, TransactionID: txID, CreatedAt: at})
	if err := store.PutWalletTx(c.tx, acc.ID, &wtx); err != nil {
		return err
	}
	c.emitJSON(api.EventInvoicePaid, acc.ID, invoiceEventData(inv, false))
	return nil
}

func applyInvoicePay(c *applyCtx, p InvoicePay) (any, error) {
	accID := store.OwnerOf(c.tx, store.BucketInvoiceIDs, p.InvoiceID)
	if accID == nil {
		return nil, fmt.Errorf("invoice %s: %w", p.InvoiceID, ErrNotFound)
	}
	var inv store.Invoice
	if err := store.GetJSON(c.tx, store.BucketInvoices, store.OwnedKey(string(accID), p.InvoiceID), &inv); err != nil {
		return nil, err
	}
	if inv.Status == api.InvoicePaid {
		return inv.Invoice, nil
	}
	if inv.Status == api.InvoiceVoid {
		return nil, fmt.Errorf("%w: invoice %s is void (its service was deleted)", ErrConflict, inv.Number)
	}
	acc, err := getAccount(c.tx, inv.AccountID)
	if err != nil {
		return nil, err
	}
	if acc.BalanceUsdCents < inv.TotalUsdCents {
		return nil, fmt.Errorf("%w: balance %d < total %d cents", ErrInsufficientFunds, acc.BalanceUsdCents, inv.TotalUsdCents)
	}
	if err := payFromWallet(c, &acc, &inv, p.PaymentID, p.TxID); err != nil {
		return nil, err
	}
	if err := settleServiceInvoice(c, inv); err != nil {
		return nil, err
	}
	return inv.Invoice, store.PutJSON(c.tx, store.BucketInvoices, store.OwnedKey(acc.ID, inv.ID), inv)
}

// ticketCreateHandler decodes the payload without reflection when it can
// (readTicketCreate), as encoding/json would.
func ticketCreateHandler(c *applyCtx) (any, error) {
	if p, ok := readTicketCreate(c.env.Data); ok {
		return applyTicketCreate(c, p)
	}
	return typed(applyTicketCreate)(c)
}

func applyTicketCreate(c *applyCtx, p TicketCreate) (any, error) {
	if c.tx.Bucket(store.BucketAccounts).Get([]byte(p.AccountID)) == nil {
		return nil, fmt.Errorf("account %s: %w", p.AccountID, ErrNotFound)
	}
	n, err := nextTicketNumber(c.tx, p.AccountID, p.PerAccountNumber)
	if err != nil {
		return nil, err
	}
	t := api.Ticket{
		ID: p.ID, Number: int64(n), Subject: p.Subject, Status: api.TicketOpen, Priority: p.Priority,
		Department: p.Department, CreatedAt: c.at, UpdatedAt: c.at,
		Messages: []api.TicketMessage{{ID: p.MessageID, Author: "customer", Body: p.Message, CreatedAt: c.at}},
	}
	if err := putTicket(c, p.AccountID, t); err != nil {
		return nil, err
	}
	if err := c.tx.Bucket(store.BucketTicketIDs).Put([]byte(t.ID), []byte(p.AccountID)); err != nil {
		return nil, err
	}
	c.emitJSON(api.EventTicketCreated, p.AccountID, encodeTicketCreated(&t))
	return t, nil
}

// putTicket writes a ticket and its list view (the ticket without its thread).
// nextTicketNumber is the number of an account's next ticket: from the
// account's own counter, which starts after the highest number the account
// already holds (tickets numbered from the old provider-wide sequence), so
// numbers stay unique within the account; or, for old log entries, from the
// provider-wide counter.
func nextTicketNumber(tx *bolt.Tx, accountID string, perAccount bool) (uint64, error) {
	if !perAccount {
		return store.NextCounter(tx, "ticket_number")
	}
	name := "ticket_number/" + accountID
	if tx.Bucket(store.BucketCounters).Get([]byte(name)) == nil {
		var highest uint64
		c := tx.Bucket(store.BucketTicketList).Cursor()
		prefix := store.OwnedPrefix(accountID)
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var t struct {
				Number int64 `json:"number"`
			}
			if err := json.Unmarshal(v, &t); err != nil {
				return 0, fmt.Errorf("decode ticket %s: %w", k, err)
			}
			if t.Number > 0 && uint64(t.Number) > highest {
				highest = uint64(t.Number)
			}
		}
		if err := store.SetCounter(tx, name, highest); err != nil {
			return 0, err
		}
	}
	return store.NextCounter(tx, name)
}

func putTicket(c *applyCtx, owner string, t api.Ticket) error {
	if err := putTicketJSON(c.tx, store.BucketTickets, store.OwnedKey(owner, t.ID), &t); err != nil {
		return err
	}
	t.Messages = nil
	return putTicketJSON(c.tx, store.BucketTicketList, store.OwnedKey(owner, t.ID), &t)
}

// putTicketJSON stores t as store.PutJSON would, through EncodeTicket.
func putTicketJSON(tx *bolt.Tx, bucket, key []byte, t *api.Ticket) error {
	if raw, ok := EncodeTicket(t); ok {
		return tx.Bucket(bucket).Put(key, raw)
	}
	return store.PutJSON(tx, bucket, key, *t)
}

// loadTicket finds a ticket; a non-empty accountID restricts it to that account.
func loadTicket(tx *bolt.Tx, ticketID, accountID string) (api.Ticket, string, error) {
	var t api.Ticket
	owner := tx.Bucket(store.BucketTicketIDs).Get([]byte(ticketID))
	if owner == nil || (accountID != "" && string(owner) != accountID) {
		return t, "", fmt.Errorf("ticket %s: %w", ticketID, ErrNotFound)
	}
	err := store.GetJSON(tx, store.BucketTickets, store.OwnedKey(string(owner), ticketID), &t)
	return t, string(owner), err
}

func applyTicketReply(c *applyCtx, p TicketReply) (any, error) {
	t, owner, err := loadTicket(c.tx, p.TicketID, p.AccountID)
	if err != nil {
		return nil, err
	}
	msg := api.TicketMessage{ID: p.MessageID, Author: "customer", Body: p.Body, CreatedAt: c.at}
	if p.Staff {
		msg.Author, msg.StaffName = "staff", p.StaffName
		t.Status = api.TicketAnswered
	} else {
		t.Status = api.TicketCustomerReply // also re-opens a closed ticket
	}
	t.Messages = append(t.Messages, msg)
	t.UpdatedAt = c.at
	if err := putTicket(c, owner, t); err != nil {
		return nil, err
	}
	if p.Staff {
		if err := c.emit(api.EventTicketReplied, owner, map[string]any{
			"ticketId": t.ID, "ticketNumber": t.Number, "subject": t.Subject, "status": t.Status,
		}); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func applyTicketClose(c *applyCtx, p TicketClose) (any, error) {
	t, owner, err := loadTicket(c.tx, p.TicketID, p.AccountID)
	if err != nil {
		return nil, err
	}
	if t.Status == api.TicketClosed {
		return t, nil
	}
	t.Status, t.UpdatedAt = api.TicketClosed, c.at
	return t, putTicket(c, owner, t)
}

func applyTicketStatus(c *applyCtx, p TicketStatus) (any, error) {
	t, owner, err := loadTicket(c.tx, p.TicketID, "")
	if err != nil {
		return nil, err
	}
	t.Status, t.UpdatedAt = p.Status, c.at
	return t, putTicket(c, owner, t)
}

func applyIdemExpire(c *applyCtx, p IdemExpire) (any, error) {
	b := c.tx.Bucket(store.BucketIdempotency)
	var dead [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if p.Limit > 0 && len(dead) >= p.Limit {
			return nil
		}
		var rec store.IdemRecord
		if json.Unmarshal(v, &rec) == nil && !rec.ExpiresAt.After(c.at) {
			dead = append(dead, append([]byte{}, k...))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := deleteKeys(b, dead); err != nil {
		return nil, err
	}
	return len(dead), nil
}

func applyNodeRegister(c *applyCtx, p NodeRegister) (any, error) {
	return nil, store.PutJSON(c.tx, store.BucketCluster, []byte(p.ID), store.ClusterNode(p))
}
