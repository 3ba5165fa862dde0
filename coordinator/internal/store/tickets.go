package store

import (
	"bytes"

	"github.com/hostplane/hostplane/pkg/api"
)

// Ticket loads an account's ticket with its thread; another account's is not found.
func (r ReadTx) Ticket(accountID, id string) (api.Ticket, error) {
	var t api.Ticket
	err := r.getNamed("ticket", id, BucketTickets, OwnedKey(accountID, id), &t)
	return t, err
}

// TicketListJSON pages an account's tickets without their threads, newest
// first, as the stored JSON (the API's list form), with the total count.
func (r ReadTx) TicketListJSON(accountID string, offset, limit int) ([][]byte, int) {
	return ListOwnedRaw(r.tx, BucketTicketList, accountID, offset, limit)
}

// TicketListJSONAt is TicketListJSON from at, with the next page's Below
// (ListOwnedRawAt).
func (r ReadTx) TicketListJSONAt(accountID string, at PageAt, limit int) ([][]byte, int, string) {
	return ListOwnedRawAt(r.tx, BucketTicketList, accountID, at, limit)
}

// TicketOwner is the account a ticket belongs to ("" when there is no such ticket).
func (r ReadTx) TicketOwner(id string) string { return string(r.value(BucketTicketIDs, []byte(id))) }

// ForEachTicketJSON visits the list form (no thread) of every ticket, or of
// accountID's only when it is set, in key order (account, then ticket id),
// with the account it belongs to, until visit returns false.
func (r ReadTx) ForEachTicketJSON(accountID string, visit func(accountID string, raw []byte) bool) {
	c := r.tx.Bucket(BucketTicketList).Cursor()
	var prefix []byte
	if accountID != "" {
		prefix = OwnedPrefix(accountID)
	}
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		acc, _, ok := bytes.Cut(k, []byte("/"))
		if !ok {
			continue
		}
		if !visit(string(acc), v) {
			return
		}
	}
}
