package store

import (
	"strconv"

	"github.com/hostplane/hostplane/internal/plainjson"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// EncodeInvoice writes inv as json.Marshal writes it, without reflection,
// or gives up (ok false: use encoding/json) when one of its times is not
// UTC within years 0-9999. Every order writes its paid invoice on every
// replica (TestInvoiceEncodingMatchesEncodingJSON and FuzzEncodeInvoice hold
// it to encoding/json's bytes).
func EncodeInvoice(inv *Invoice) ([]byte, bool) {
	n := 320 + len(inv.ID) + len(inv.AccountID) + len(inv.ServerID) + len(inv.HostingID)
	for i := range inv.Lines {
		n += 100 + len(inv.Lines[i].Description)
	}
	n += 160 * len(inv.Payments)
	b := make([]byte, 0, n)
	b, ok := appendInvoiceFields(b, &inv.Invoice)
	if !ok {
		return nil, false
	}
	b = plainjson.AppendStringField(b, `,"account_id":`, inv.AccountID)
	b = appendOmitEmpty(b, `,"server_id":`, inv.ServerID)
	b = appendOmitEmpty(b, `,"hosting_id":`, inv.HostingID)
	return append(b, '}'), true
}

// AppendAPIInvoice appends inv as json.Marshal writes an api.Invoice (what
// a customer is shown), or gives up (ok false: use encoding/json) when one
// of its times is not UTC within years 0-9999.
func AppendAPIInvoice(b []byte, inv *api.Invoice) ([]byte, bool) {
	return closeObject(appendInvoiceFields(b, inv))
}

// appendInvoiceFields appends api.Invoice's object as json.Marshal writes
// it but for its closing brace (ok false: a time json.Marshal writes
// otherwise or refuses), for Invoice and AppendAPIInvoice.
func appendInvoiceFields(b []byte, inv *api.Invoice) ([]byte, bool) {
	b = plainjson.AppendStringField(b, `{"id":`, inv.ID)
	b = plainjson.AppendStringField(b, `,"number":`, inv.Number)
	b = plainjson.AppendStringField(b, `,"status":`, inv.Status)
	b = plainjson.AppendStringField(b, `,"currency":`, inv.Currency)
	b = append(b, `,"total_usd_cents":`...)
	b = strconv.AppendInt(b, inv.TotalUsdCents, 10)
	b = append(b, `,"created_at":`...)
	b, ok := plainjson.AppendTime(b, inv.CreatedAt)
	if ok {
		b = append(b, `,"due_at":`...)
		b, ok = plainjson.AppendTime(b, inv.DueAt)
	}
	b = append(b, `,"paid_at":`...)
	if inv.PaidAt == nil {
		b = append(b, "null"...)
	} else if ok {
		b, ok = plainjson.AppendTime(b, *inv.PaidAt)
	}
	b = append(b, `,"lines":`...)
	b = plainjson.AppendArray(b, inv.Lines, func(b []byte, l *api.InvoiceLine) []byte {
		b = plainjson.AppendStringField(b, `{"description":`, l.Description)
		b = append(b, `,"quantity":`...)
		b = strconv.AppendInt(b, l.Quantity, 10)
		b = append(b, `,"unit_price_usd_cents":`...)
		b = strconv.AppendInt(b, l.UnitPriceUsdCents, 10)
		b = append(b, `,"amount_usd_cents":`...)
		b = strconv.AppendInt(b, l.AmountUsdCents, 10)
		return append(b, '}')
	})
	b = append(b, `,"payments":`...)
	b = plainjson.AppendArray(b, inv.Payments, func(b []byte, p *api.Payment) []byte {
		b = plainjson.AppendStringField(b, `{"id":`, p.ID)
		b = plainjson.AppendStringField(b, `,"method":`, p.Method)
		b = append(b, `,"amount_usd_cents":`...)
		b = strconv.AppendInt(b, p.AmountUsdCents, 10)
		b = appendOmitEmpty(b, `,"transaction_id":`, p.TransactionID)
		if ok {
			b = append(b, `,"created_at":`...)
			b, ok = plainjson.AppendTime(b, p.CreatedAt)
		}
		return append(b, '}')
	})
	return b, ok
}

// PutInvoice stores inv under accountID (EncodeInvoice, else
// encoding/json).
func PutInvoice(tx *bolt.Tx, accountID string, inv *Invoice) error {
	if raw, ok := EncodeInvoice(inv); ok {
		return tx.Bucket(BucketInvoices).Put(OwnedKey(accountID, inv.ID), raw)
	}
	return PutJSON(tx, BucketInvoices, OwnedKey(accountID, inv.ID), inv)
}
