package store

import "github.com/hostplane/hostplane/pkg/api"

// Ticket loads an account's ticket with its thread; another account's is not found.
func (r ReadTx) Ticket(accountID, id string) (api.Ticket, error) {
	var t api.Ticket
	return t, r.getNamed("ticket", id, BucketTickets, OwnedKey(accountID, id), &t)
}

// TicketListJSON pages an account's tickets without their threads, newest
// first, as the stored JSON (the API's list form), with the total count.
func (r ReadTx) TicketListJSON(accountID string, offset, limit int) ([][]byte, int) {
	return ListOwnedRaw(r.tx, BucketTicketList, accountID, offset, limit)
}
