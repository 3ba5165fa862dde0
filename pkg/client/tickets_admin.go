package client

import (
	"context"
	"strings"

	"github.com/hostplane/hostplane/pkg/api"
)

// AdminTicketQuery filters the operator's ticket list; zero values take
// every status, every account and the coordinator's default limit (200).
type AdminTicketQuery struct {
	Statuses []string // ticket statuses (api.TicketStatuses); any when empty
	Account  string   // an account id or email
	Limit    int      // 1..1000
}

// Tickets lists the newest tickets of every account (or of one) that match
// q, without their threads, with how many match in all.
func (a *Admin) Tickets(ctx context.Context, q AdminTicketQuery) (api.AdminTicketList, error) {
	v := nonEmpty(map[string]string{"account": q.Account, "limit": count(q.Limit)})
	if len(q.Statuses) > 0 { // sent even when it joins to "": the server refuses that
		v.Set("status", strings.Join(q.Statuses, ","))
	}
	return adminCall[api.AdminTicketList](ctx, a, "GET", withQuery("/admin/tickets", v), nil)
}

// Ticket shows a ticket of any account with its thread.
func (a *Admin) Ticket(ctx context.Context, ticketID string) (api.AdminTicket, error) {
	return adminCall[api.AdminTicket](ctx, a, "GET", "/admin/tickets/"+seg("ticketID", ticketID), nil)
}

// CloseTicket closes a ticket (its status becomes closed; a customer reply
// re-opens it).
func (a *Admin) CloseTicket(ctx context.Context, ticketID string) (api.Ticket, error) {
	return a.SetTicketStatus(ctx, ticketID, api.TicketClosed)
}
