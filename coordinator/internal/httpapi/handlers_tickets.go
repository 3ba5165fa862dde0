package httpapi

import (
	"net/http"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

const (
	maxSubject = 200
	maxMessage = 20000
	// maxThreadBytes and maxThreadMessages bound a ticket's thread (its
	// messages' bodies, and their number: each has a fixed overhead) for a
	// customer's reply: every reply rewrites the whole thread in the
	// replicated state and answers it whole, so a thread grown without end
	// (20,000-character replies at the rate limit) slowed every account's
	// writes. Staff replies are not bounded.
	maxThreadBytes    = 1 << 20
	maxThreadMessages = 200
)

func (a *API) listTickets(rq *request) (int, any, error) {
	return a.listRaw(rq, "tkt", store.ReadTx.TicketListJSONAt)
}

func (a *API) getTicket(rq *request) (int, any, error) {
	id := rq.PathValue("id")
	if !ids.Valid("tkt", id) {
		return 0, nil, notFound("ticket")
	}
	t, err := readOne(a, "ticket", func(r store.ReadTx) (api.Ticket, error) { return r.Ticket(rq.caller.accountID, id) })
	return http.StatusOK, t, err
}

// DecodeTicketCreate validates a POST /v1/tickets body (exported for fuzzing).
func DecodeTicketCreate(body []byte) (api.TicketCreateRequest, error) {
	return decodeChecked(body, func(req *api.TicketCreateRequest) error {
		if req.Department == "" {
			req.Department = "technical"
		}
		if req.Priority == "" {
			req.Priority = "medium"
		}
		return firstErr(
			oneLine("subject", req.Subject, 1, maxSubject),
			text("message", req.Message, 1, maxMessage),
			oneOf("department", req.Department, api.TicketDepartments),
			oneOf("priority", req.Priority, api.TicketPriorities),
		)
	})
}

// DecodeTicketReply validates a POST /v1/tickets/:id/reply body.
func DecodeTicketReply(body []byte) (api.TicketReplyRequest, error) {
	return decodeChecked(body, func(req *api.TicketReplyRequest) error { return text("body", req.Body, 1, maxMessage) })
}

func (a *API) createTicket(rq *request) (int, any, error) {
	req, err := DecodeTicketCreate(rq.body)
	if err != nil {
		return 0, nil, err
	}
	return ticketAnswer(a.propose(rq.Context(), rq, fsm.CmdTicketCreate, fsm.TicketCreate{
		ID: ids.New("tkt", rq.now), AccountID: rq.caller.accountID, MessageID: ids.New("msg", rq.now),
		Subject: req.Subject, Message: req.Message, Department: req.Department, Priority: req.Priority,
		PerAccountNumber: true,
	}, http.StatusCreated))
}

// ticketAnswer encodes a ticket answer through fsm.EncodeTicket: the bytes
// writeJSON's encoder writes (json.Marshal's and a newline), without
// reflection. Anything else passes unchanged.
func ticketAnswer(status int, v any, err error) (int, any, error) {
	if t, ok := v.(api.Ticket); ok && err == nil {
		if raw, ok := fsm.EncodeTicket(&t); ok {
			return status, rawJSON(append(raw, '\n')), nil
		}
	}
	return status, v, err
}

func (a *API) replyTicket(rq *request) (int, any, error) {
	id := rq.PathValue("id")
	if !ids.Valid("tkt", id) {
		return 0, nil, notFound("ticket")
	}
	req, err := DecodeTicketReply(rq.body)
	if err != nil {
		return 0, nil, err
	}
	if err := a.threadRoom(rq, id, len(req.Body)); err != nil {
		return 0, nil, err
	}
	return ticketAnswer(a.propose(rq.Context(), rq, fsm.CmdTicketReply, fsm.TicketReply{
		TicketID: id, AccountID: rq.caller.accountID, MessageID: ids.New("msg", rq.now), Body: req.Body,
	}, http.StatusCreated))
}

// threadRoom refuses a customer's reply of n bytes that would take ticket
// id's thread past maxThreadBytes or maxThreadMessages (409
// ticket_thread_full). A ticket it cannot read is left to the command, which
// answers it as before.
func (a *API) threadRoom(rq *request, id string, n int) error {
	var size, count int
	err := a.state.Read(func(r store.ReadTx) error {
		t, err := r.Ticket(rq.caller.accountID, id)
		for _, m := range t.Messages {
			size += len(m.Body)
		}
		count = len(t.Messages)
		return err
	})
	switch {
	case err != nil:
		return nil
	case count >= maxThreadMessages:
		return errf(http.StatusConflict, "ticket_thread_full", "ticket %s holds %d messages, the most a thread holds: open a new ticket", id, count)
	case size+n > maxThreadBytes:
		return errf(http.StatusConflict, "ticket_thread_full", "ticket %s holds %d bytes of messages and a thread holds at most %d (1 MiB): open a new ticket", id, size, maxThreadBytes)
	}
	return nil
}

func (a *API) closeTicket(rq *request) (int, any, error) {
	id := rq.PathValue("id")
	if !ids.Valid("tkt", id) {
		return 0, nil, notFound("ticket")
	}
	if err := decodeEmptyObject(rq.body); err != nil {
		return 0, nil, err
	}
	return ticketAnswer(a.propose(rq.Context(), rq, fsm.CmdTicketClose, fsm.TicketClose{TicketID: id, AccountID: rq.caller.accountID}, http.StatusOK))
}
