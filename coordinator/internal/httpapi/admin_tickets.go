package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// The operator's support queue: every account's tickets (the customer API
// shows an account its own only). Replies and status changes are
// POST /admin/tickets/{id}/reply and /status (admin.go).

const (
	adminTicketsDefault = 200
	adminTicketsMax     = 1000
)

// adminTicketQuery is a parsed GET /admin/tickets query.
type adminTicketQuery struct {
	statuses []string // any status when empty
	account  string   // an account id or email; every account when empty
	limit    int
}

// parseAdminTicketQuery checks ?status= (comma-separated ticket statuses),
// ?account= and ?limit= (1..1000, default 200); any other parameter is a 400
// naming it.
func parseAdminTicketQuery(r *http.Request) (adminTicketQuery, error) {
	q := adminTicketQuery{limit: adminTicketsDefault}
	vals := r.URL.Query()
	for k, v := range vals {
		switch k {
		case "status", "account", "limit":
			if len(v) > 1 {
				return q, &httpError{status: 400, code: "invalid_query", msg: "query parameter " + strconv.Quote(k) + " is given more than once"}
			}
		default:
			return q, &httpError{status: 400, code: "invalid_query", msg: "unknown query parameter " + strconv.Quote(k) + " (status, account, limit)"}
		}
	}
	if s, ok := vals["status"]; ok {
		for _, st := range strings.Split(s[0], ",") {
			st = strings.TrimSpace(st)
			if !slices.Contains(api.TicketStatuses, st) {
				return q, &httpError{status: 400, code: "invalid_query", msg: "query parameter \"status\": " + strconv.Quote(st) + " is not a ticket status; use " + strings.Join(api.TicketStatuses, ", ") + " (comma-separated for several)"}
			}
			if !slices.Contains(q.statuses, st) {
				q.statuses = append(q.statuses, st)
			}
		}
	}
	if s, ok := vals["account"]; ok {
		if q.account = strings.TrimSpace(s[0]); q.account == "" || len(q.account) > 320 {
			return q, &httpError{status: 400, code: "invalid_query", msg: "query parameter \"account\" must be an account id or email"}
		}
	}
	if s, ok := vals["limit"]; ok {
		n, err := strconv.Atoi(s[0])
		if err != nil || n < 1 || n > adminTicketsMax {
			return q, &httpError{status: 400, code: "invalid_query", msg: "query parameter \"limit\" must be an integer from 1 to " + strconv.Itoa(adminTicketsMax)}
		}
		q.limit = n
	}
	return q, nil
}

// adminListTickets answers the newest tickets (by creation) that match the
// query, without their threads, and how many match in all.
func (a *API) adminListTickets(r *http.Request, _ []byte, _ time.Time) (int, any, error) {
	q, err := parseAdminTicketQuery(r)
	if err != nil {
		return 0, nil, err
	}
	out := api.AdminTicketList{Data: []api.AdminTicket{}}
	newestFirst := func(a, b api.AdminTicket) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID) // one millisecond's ids are in no order
	}
	err = a.state.Read(func(rt store.ReadTx) error {
		acc := q.account
		if acc != "" {
			if acc = accountRef(rt, q.account); !rt.AccountExists(acc) {
				return notFound("account " + strconv.Quote(q.account))
			}
		}
		rt.ForEachTicketJSON(acc, func(owner string, raw []byte) bool {
			var t api.Ticket
			if json.Unmarshal(raw, &t) != nil || (len(q.statuses) > 0 && !slices.Contains(q.statuses, t.Status)) {
				return true
			}
			out.Total++
			out.Data = append(out.Data, api.AdminTicket{Ticket: t, AccountID: owner})
			if len(out.Data) >= 2*q.limit { // keep the newest limit, in bounded memory
				slices.SortFunc(out.Data, newestFirst)
				out.Data = out.Data[:q.limit]
			}
			return true
		})
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	slices.SortFunc(out.Data, newestFirst)
	if len(out.Data) > q.limit {
		out.Data = out.Data[:q.limit]
	}
	return http.StatusOK, out, nil
}

// adminGetTicket answers a ticket of any account with its thread.
func (a *API) adminGetTicket(r *http.Request, _ []byte, _ time.Time) (int, any, error) {
	id := r.PathValue("id")
	var t api.AdminTicket
	err := a.state.Read(func(rt store.ReadTx) error {
		owner := rt.TicketOwner(id)
		if owner == "" {
			return store.ErrNotFound
		}
		tk, err := rt.Ticket(owner, id)
		t = api.AdminTicket{Ticket: tk, AccountID: owner}
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, notFound("ticket " + strconv.Quote(id))
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, t, nil
}
