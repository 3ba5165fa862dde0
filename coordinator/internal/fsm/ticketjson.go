package fsm

import (
	"strconv"

	"github.com/hostplane/hostplane/internal/plainjson"
	"github.com/hostplane/hostplane/pkg/api"
)

// EncodeTicket writes a ticket as json.Marshal writes it, without reflection,
// or gives up (ok false: use json.Marshal) when one of its times is not UTC
// within years 0-9999. A ticket is written twice per change (the ticket and
// its list view) on every replica and once more in the answer to the
// request, so on the ticket write path this encoding was a good part of the
// CPU. TestTicketEncodingMatchesEncodingJSON and FuzzTicketEncoding hold it
// to encoding/json's bytes, escapes and invalid UTF-8 included.
func EncodeTicket(t *api.Ticket) ([]byte, bool) {
	if !plainjson.PlainTime(t.CreatedAt) || !plainjson.PlainTime(t.UpdatedAt) {
		return nil, false
	}
	for i := range t.Messages {
		if !plainjson.PlainTime(t.Messages[i].CreatedAt) {
			return nil, false
		}
	}
	n := 200 + len(t.ID) + len(t.Subject)
	for i := range t.Messages {
		n += 120 + len(t.Messages[i].Body)
	}
	b := appendTicketSummary(make([]byte, 0, n), `{"id":`, `,"number":`, t)
	b = plainjson.AppendStringField(b, `,"department":`, t.Department)
	b = append(b, `,"created_at":`...)
	b, _ = plainjson.AppendTime(b, t.CreatedAt)
	b = append(b, `,"updated_at":`...)
	b, _ = plainjson.AppendTime(b, t.UpdatedAt)
	if len(t.Messages) > 0 {
		b = append(b, `,"messages":`...)
		b = plainjson.AppendArray(b, t.Messages, func(b []byte, m *api.TicketMessage) []byte {
			b = plainjson.AppendStringField(b, `{"id":`, m.ID)
			b = plainjson.AppendStringField(b, `,"author":`, m.Author)
			if m.StaffName != "" {
				b = plainjson.AppendStringField(b, `,"staff_name":`, m.StaffName)
			}
			b = plainjson.AppendStringField(b, `,"body":`, m.Body)
			b = append(b, `,"created_at":`...)
			b, _ = plainjson.AppendTime(b, m.CreatedAt)
			return append(b, '}')
		})
	}
	return append(b, '}'), true
}

// ticketCreateKeys are TicketCreate's JSON keys as json.Marshal writes them.
var ticketCreateKeys = [...]string{`{"id":`, `,"account_id":`, `,"message_id":`, `,"subject":`, `,"message":`, `,"department":`, `,"priority":`}

// readTicketCreate reads a TicketCreate payload as json.Marshal writes it
// (keys in field order, per_account_number present only when true) whose
// strings need no unescaping and are valid UTF-8, giving exactly what
// json.Unmarshal gives; anything else fails it (ok false) and the caller
// decodes with encoding/json (FuzzReadTicketCreate).
func readTicketCreate(b []byte) (p TicketCreate, ok bool) {
	fields := [...]*string{&p.ID, &p.AccountID, &p.MessageID, &p.Subject, &p.Message, &p.Department, &p.Priority}
	i := 0
	for k, key := range ticketCreateKeys {
		if len(b)-i < len(key) || string(b[i:i+len(key)]) != key {
			return p, false
		}
		i += len(key)
		if *fields[k], i, ok = plainjson.ReadString(b, i); !ok {
			return p, false
		}
	}
	switch rest := string(b[i:]); rest {
	case "}":
	case `,"per_account_number":true}`:
		p.PerAccountNumber = true
	default:
		return p, false
	}
	return p, true
}

// ticketCreated is the data of a ticket.created event.
type ticketCreated struct {
	TicketID     string `json:"ticketId"`
	TicketNumber int64  `json:"ticketNumber"`
	Subject      string `json:"subject"`
	Status       string `json:"status"`
	Priority     string `json:"priority"`
}

// encodeTicketCreated writes t's ticket.created data as json.Marshal writes a
// ticketCreated, without reflection (TestTicketCreatedMatchesEncodingJSON,
// FuzzTicketCreatedEncoding).
func encodeTicketCreated(t *api.Ticket) []byte {
	b := make([]byte, 0, 96+len(t.ID)+len(t.Subject)+len(t.Status)+len(t.Priority))
	b = appendTicketSummary(b, `{"ticketId":`, `,"ticketNumber":`, t)
	return append(b, '}')
}

// appendTicketSummary writes the fields a ticket and its ticket.created data
// share, in their order: the id and the number under the keys given (each
// with its leading punctuation), then subject, status and priority.
func appendTicketSummary(b []byte, idKey, numberKey string, t *api.Ticket) []byte {
	b = plainjson.AppendStringField(b, idKey, t.ID)
	b = append(b, numberKey...)
	b = strconv.AppendInt(b, t.Number, 10)
	b = plainjson.AppendStringField(b, `,"subject":`, t.Subject)
	b = plainjson.AppendStringField(b, `,"status":`, t.Status)
	return plainjson.AppendStringField(b, `,"priority":`, t.Priority)
}
