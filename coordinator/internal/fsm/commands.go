package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/internal/plainjson"
)

// Envelope is the record written to the Raft log: a typed, versioned payload and the
// time it was proposed (the FSM never reads the clock).
type Envelope struct {
	Type    CommandType     `json:"t"`
	Version uint8           `json:"v"`
	At      time.Time       `json:"at"`
	Data    json.RawMessage `json:"d"`
	Idem    *IdemRequest    `json:"i,omitempty"`
}

// IdemRequest asks the FSM to store the command's response under an idempotency key
// in the same transaction, or to return the stored one if the key was used already.
type IdemRequest struct {
	Scope     string    `json:"s"` // keyID/Idempotency-Key
	ReqHash   string    `json:"h"`
	Status    int       `json:"st"`
	ExpiresAt time.Time `json:"exp"`
}

// EncodeBatch builds the log entry for several encoded envelopes without
// re-encoding them.
func EncodeBatch(at time.Time, encoded [][]byte) []byte {
	n := 64
	for _, e := range encoded {
		n += len(e) + 1
	}
	buf := make([]byte, 0, n)
	head, _ := json.Marshal(struct {
		Type    CommandType `json:"t"`
		Version uint8       `json:"v"`
		At      time.Time   `json:"at"`
	}{CmdBatch, 1, at.UTC()})
	buf = append(buf, head[:len(head)-1]...)
	buf = append(buf, `,"d":[`...)
	for i, e := range encoded {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, e...)
	}
	return append(buf, "]}"...)
}

// NewEnvelope encodes a command payload (as json.Marshal does; a
// plainPayload without reflection when it can).
func NewEnvelope(t CommandType, at time.Time, payload any) (*Envelope, error) {
	if raw, ok := plainPayload(payload); ok {
		return &Envelope{Type: t, Version: 1, At: at.UTC(), Data: raw}, nil
	}
	raw, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encode command %d: %w", t, err)
	}
	return &Envelope{Type: t, Version: 1, At: at.UTC(), Data: raw}, nil
}

// Encode serialises the envelope for raft.Apply. The payload is already JSON,
// so it is spliced in rather than re-validated by json.Marshal.
func (e *Envelope) Encode() ([]byte, error) {
	if b, ok := e.encodePlain(); ok {
		return b, nil
	}
	return e.encodeJSON()
}

// encodePlain is Encode without reflection for an envelope with no
// idempotency request and a UTC time within years 0-9999, which json.Marshal
// writes exactly so (TestEnvelopeEncodingMatchesEncodingJSON,
// FuzzEnvelopeEncoding); ok is false for any other.
func (e *Envelope) encodePlain() ([]byte, bool) {
	if e.Idem != nil || !plainjson.PlainTime(e.At) {
		return nil, false
	}
	data := e.Data
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	b := make([]byte, 0, 64+len(data))
	b = append(b, `{"t":`...)
	b = strconv.AppendUint(b, uint64(e.Type), 10)
	b = append(b, `,"v":`...)
	b = strconv.AppendUint(b, uint64(e.Version), 10)
	b = append(b, `,"at":`...)
	b, _ = plainjson.AppendTime(b, e.At) // plain: checked above
	b = append(b, `,"d":`...)
	b = append(b, data...)
	return append(b, '}'), true
}

// encodeJSON is Encode through encoding/json.
func (e *Envelope) encodeJSON() ([]byte, error) {
	head, err := json.Marshal(struct {
		Type    CommandType  `json:"t"`
		Version uint8        `json:"v"`
		At      time.Time    `json:"at"`
		Idem    *IdemRequest `json:"i,omitempty"`
	}{e.Type, e.Version, e.At, e.Idem})
	if err != nil {
		return nil, err
	}
	data := e.Data
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	buf := make([]byte, 0, len(head)+len(data)+8)
	buf = append(buf, head[:len(head)-1]...)
	buf = append(buf, `,"d":`...)
	buf = append(buf, data...)
	return append(buf, '}'), nil
}

// DecodeEnvelope parses a log entry: one laid out as Envelope.Encode writes
// it (every command the leader proposes alone) without reflection
// (decodeEnvelopeLayout), anything else through encoding/json, to the same
// Envelope.
func DecodeEnvelope(b []byte) (*Envelope, error) {
	if e, ok := decodeEnvelopeLayout(b); ok && e.Type != 0 {
		return &e, nil
	}
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("decode command envelope: %w", err)
	}
	if e.Type == 0 {
		return nil, errors.New("decode command envelope: missing type")
	}
	return &e, nil
}

// Business errors returned (as values) by Apply. The HTTP layer maps them to statuses.
var (
	ErrNotFound          = store.ErrNotFound // the store's: a typed read's not-found is the API's 404
	ErrConflict          = errors.New("conflict")
	ErrInsufficientFunds = errors.New("insufficient wallet balance")
	ErrInvalid           = errors.New("invalid")
	ErrIdemMismatch      = errors.New("idempotency key reused with a different request")
)

// Payloads.

// AccountCreate creates an account.
type AccountCreate struct {
	ID      string `json:"id"`
	Email   string `json:"email"`
	Name    string `json:"name"`
	Country string `json:"country"`
}

// KeyCreate stores a new key (hash only).
type KeyCreate struct {
	ID              string     `json:"id"`
	AccountID       string     `json:"account_id"`
	Name            string     `json:"name"`
	Hash            string     `json:"hash"`
	Prefix          string     `json:"prefix"`
	Scopes          []string   `json:"scopes"`
	ExpiresAt       *time.Time `json:"expires_at,omitempty"`
	AllowedCIDRs    []string   `json:"allowed_cidrs,omitempty"`
	RateLimitPerMin int        `json:"rate_limit_per_min,omitempty"`
}

// KeyRevoke revokes a key.
type KeyRevoke struct {
	ID string `json:"id"`
}

// KeyUsage is a batch of usage records flushed by the leader.
type KeyUsage struct {
	Keys []KeyUsageBatch `json:"keys"`
}

// KeyUsageBatch is the usage of one key since the last flush.
type KeyUsageBatch struct {
	KeyID      string    `json:"key_id"`
	LastUsedAt time.Time `json:"last_used_at"`
	// LastUsedIP is the client address of the request at LastUsedAt
	// (written to the key from semantics level 2, LevelKeyLastIP, with
	// LastUsedAt as one pair: empty, when that use's coordinator did not
	// send it, clears the key's).
	LastUsedIP string          `json:"last_used_ip,omitempty"`
	Count      int64           `json:"count"`
	Entries    []KeyUsageEntry `json:"entries"`
}

// KeyUsageEntry is one logged request.
type KeyUsageEntry struct {
	At     time.Time `json:"at"`
	Method string    `json:"m"`
	Path   string    `json:"p"`
	Route  string    `json:"r,omitempty"` // the route's template: /v1/servers/{id}
	Status int       `json:"s"`
	IP     string    `json:"ip"`
}

// WalletCredit credits a deposit.
type WalletCredit struct {
	TxID           string `json:"tx_id"`
	AccountID      string `json:"account_id"`
	AmountUsdCents int64  `json:"amount_usd_cents"`
	Gateway        string `json:"gateway"`
	Description    string `json:"description"`
}

// InvoiceIssue issues an invoice, optionally paying it from the wallet.
type InvoiceIssue struct {
	ID            string           `json:"id"`
	AccountID     string           `json:"account_id"`
	Lines         []InvoiceLineReq `json:"lines"`
	DueAt         time.Time        `json:"due_at"`
	PayFromWallet bool             `json:"pay_from_wallet"`
	PaymentID     string           `json:"payment_id"`
	TxID          string           `json:"tx_id"`
}

// InvoiceLineReq is a line item of InvoiceIssue.
type InvoiceLineReq struct {
	Description       string `json:"description"`
	Quantity          int64  `json:"quantity"`
	UnitPriceUsdCents int64  `json:"unit_price_usd_cents"`
}

// InvoicePay pays an unpaid invoice from the wallet.
type InvoicePay struct {
	InvoiceID string `json:"invoice_id"`
	PaymentID string `json:"payment_id"`
	TxID      string `json:"tx_id"`
}

// TicketCreate opens a ticket.
type TicketCreate struct {
	ID         string `json:"id"`
	AccountID  string `json:"account_id"`
	MessageID  string `json:"message_id"`
	Subject    string `json:"subject"`
	Message    string `json:"message"`
	Department string `json:"department"`
	Priority   string `json:"priority"`
	// PerAccountNumber numbers the ticket in its account's own sequence (1, 2,
	// 3, … per account) instead of the provider-wide one, which told every
	// customer the provider's ticket volume. Entries written before it was
	// added (false) keep the provider-wide number when the log is replayed.
	PerAccountNumber bool `json:"per_account_number,omitempty"`
}

// TicketReply adds a message; AccountID is empty for staff replies (any account).
type TicketReply struct {
	TicketID  string `json:"ticket_id"`
	AccountID string `json:"account_id,omitempty"`
	MessageID string `json:"message_id"`
	Staff     bool   `json:"staff"`
	StaffName string `json:"staff_name,omitempty"`
	Body      string `json:"body"`
}

// TicketClose closes a customer's ticket (idempotent).
type TicketClose struct {
	TicketID  string `json:"ticket_id"`
	AccountID string `json:"account_id"`
}

// TicketStatus sets a ticket's status (staff).
type TicketStatus struct {
	TicketID string `json:"ticket_id"`
	Status   string `json:"status"`
}

// IdemExpire removes idempotency records that expired before At.
type IdemExpire struct {
	Limit int `json:"limit"`
}

// NodeRegister records a coordinator's API address.
type NodeRegister struct {
	ID      string `json:"id"`
	APIAddr string `json:"api_addr"`
}
