package store

import (
	"github.com/hostplane/hostplane/pkg/api"
)

// Invoice is a stored invoice with its owner.
type Invoice struct {
	api.Invoice
	AccountID string `json:"account_id"`
	// ServerID is the server a renewal invoice renews (its payment extends
	// the server's paid_until to the renewal's period end).
	ServerID string `json:"server_id,omitempty"`
	// HostingID is the hosting account a renewal invoice renews.
	HostingID string `json:"hosting_id,omitempty"`
}

// WalletTransactions pages an account's wallet transactions, newest first,
// with the total count.
func (r ReadTx) WalletTransactions(accountID string, offset, limit int) ([]api.WalletTransaction, int, error) {
	return ListOwned[api.WalletTransaction](r.tx, BucketWalletTx, accountID, offset, limit)
}

// WalletTransactionsJSON is WalletTransactions as the stored JSON, which is the
// API's form (served without decoding).
func (r ReadTx) WalletTransactionsJSON(accountID string, offset, limit int) ([][]byte, int) {
	return ListOwnedRaw(r.tx, BucketWalletTx, accountID, offset, limit)
}

// WalletTransactionsJSONAt is WalletTransactionsJSON from at, with the next
// page's Below (ListOwnedRawAt).
func (r ReadTx) WalletTransactionsJSONAt(accountID string, at PageAt, limit int) ([][]byte, int, string) {
	return ListOwnedRawAt(r.tx, BucketWalletTx, accountID, at, limit)
}

// Invoices pages an account's invoices, newest first, with the total count.
func (r ReadTx) Invoices(accountID string, offset, limit int) ([]api.Invoice, int, error) {
	return ListOwned[api.Invoice](r.tx, BucketInvoices, accountID, offset, limit)
}

// InvoicesAt is Invoices from at, with the next page's Below (ListOwnedAt).
func (r ReadTx) InvoicesAt(accountID string, at PageAt, limit int) ([]api.Invoice, int, string, error) {
	return ListOwnedAt[api.Invoice](r.tx, BucketInvoices, accountID, at, limit)
}

// Invoice loads an account's invoice; another account's is not found.
func (r ReadTx) Invoice(accountID, id string) (Invoice, error) {
	var inv Invoice
	err := r.getNamed("invoice", id, BucketInvoices, OwnedKey(accountID, id), &inv)
	return inv, err
}
