// Package api holds the public wire types of the hostplane /v1 API and the admin API,
// shared by the coordinator, the Go client and the CLI. Standard library only.
package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Error is the body of every non-2xx response.
type Error struct {
	StatusCode int    `json:"statusCode"`
	Err        string `json:"error"`
	Message    string `json:"message"`
	Code       string `json:"code,omitempty"`
	RequestID  string `json:"request_id,omitempty"`
}

// Error implements error so clients can return the decoded body as-is.
func (e *Error) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%d %s: %s (%s)", e.StatusCode, e.Err, e.Message, e.Code)
	}
	return fmt.Sprintf("%d %s: %s", e.StatusCode, e.Err, e.Message)
}

// StatusOf is the status of the *Error err wraps (errors.As): the answer's
// HTTP status when err is a coordinator's error answer as pkg/client returns
// it, 0 when err is nil or wraps none (a network error, a timeout, a
// canceled context).
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

// NewError builds an error body with the reason phrase filled from the status.
func NewError(status int, code, msg string) *Error {
	return &Error{StatusCode: status, Err: http.StatusText(status), Message: msg, Code: code}
}

// Scope names exactly as SPEC.md lists them, plus account:write (revoking
// connected OAuth apps: a change a read-only key must not make).
const (
	ScopeAccountRead    = "account:read"
	ScopeAccountWrite   = "account:write"
	ScopeServersRead    = "servers:read"
	ScopeServersWrite   = "servers:write"
	ScopeServersDestroy = "servers:destroy"
	ScopeHostingRead    = "hosting:read"
	ScopeHostingWrite   = "hosting:write"
	ScopeHostingDestroy = "hosting:destroy"
	ScopeDomainsRead    = "domains:read"
	ScopeDomainsWrite   = "domains:write"
	ScopeBillingRead    = "billing:read"
	ScopeTicketsRead    = "tickets:read"
	ScopeTicketsWrite   = "tickets:write"
	ScopeWebhooksRead   = "webhooks:read"
	ScopeWebhooksWrite  = "webhooks:write"
	ScopeOrdersWrite    = "orders:write"
	// ScopeKeysWrite mints and revokes the account's own API keys
	// (/v1/account/api-keys). Default keys do not carry it: a key leaked
	// with the defaults cannot mint itself a successor or revoke the others.
	ScopeKeysWrite = "keys:write"
)

// AllScopes lists every scope in SPEC.md order (account:write after account:read).
var AllScopes = []string{
	ScopeAccountRead, ScopeAccountWrite, ScopeServersRead, ScopeServersWrite, ScopeServersDestroy,
	ScopeHostingRead, ScopeHostingWrite, ScopeHostingDestroy, ScopeDomainsRead, ScopeDomainsWrite,
	ScopeBillingRead, ScopeTicketsRead, ScopeTicketsWrite, ScopeWebhooksRead, ScopeWebhooksWrite,
	ScopeOrdersWrite, ScopeKeysWrite,
}

// DefaultScopes is every scope except the destructive ones, orders:write and keys:write.
func DefaultScopes() []string {
	out := make([]string, 0, len(AllScopes))
	for _, s := range AllScopes {
		switch s {
		case ScopeServersDestroy, ScopeHostingDestroy, ScopeOrdersWrite, ScopeKeysWrite:
			continue
		}
		out = append(out, s)
	}
	return out
}

// IsScope reports whether s is a known scope.
func IsScope(s string) bool {
	for _, x := range AllScopes {
		if x == s {
			return true
		}
	}
	return false
}

// Account is the profile returned by GET /v1/account.
type Account struct {
	ID              string    `json:"id"`
	Email           string    `json:"email"`
	Name            string    `json:"name"`
	Country         string    `json:"country"`
	EmailVerified   bool      `json:"email_verified"`
	CreatedAt       time.Time `json:"created_at"`
	BalanceUsdCents int64     `json:"balance_usd_cents"`
}

// AccountProfile is the answer of GET /v1/account: the account and its
// reseller terms (444host v1.2: "GET /v1/account now reports reseller.enabled
// + discount_pct").
type AccountProfile struct {
	Account
	Reseller AccountReseller `json:"reseller"`
}

// AccountReseller is whether the account has reseller terms (a discount, or
// an own price for some product; GET /v1/products shows what it pays) and its
// discount in percent off the retail price.
type AccountReseller struct {
	Enabled     bool  `json:"enabled"`
	DiscountPct int64 `json:"discount_pct"`
}

// Wallet is the prepaid wallet state.
type Wallet struct {
	BalanceUsdCents int64     `json:"balance_usd_cents"`
	Currency        string    `json:"currency"`
	State           string    `json:"state"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// Wallet transaction types.
const (
	TxDeposit        = "deposit"
	TxInvoicePayment = "invoice_payment"
	TxRefund         = "refund"
)

// WalletTransaction is one movement of the wallet balance; amounts are signed.
type WalletTransaction struct {
	ID                   string    `json:"id"`
	Type                 string    `json:"type"`
	AmountUsdCents       int64     `json:"amount_usd_cents"`
	BalanceAfterUsdCents int64     `json:"balance_after_usd_cents"`
	Description          string    `json:"description"`
	Gateway              string    `json:"gateway,omitempty"`
	InvoiceID            string    `json:"invoice_id,omitempty"`
	CreatedAt            time.Time `json:"created_at"`
}

// Invoice statuses.
const (
	InvoiceUnpaid = "unpaid"
	InvoicePaid   = "paid"
	// InvoiceVoid is an unpaid renewal invoice of a service deleted before
	// it was paid: it can no longer be paid.
	InvoiceVoid = "void"
)

// InvoiceLine is one line item.
type InvoiceLine struct {
	Description       string `json:"description"`
	Quantity          int64  `json:"quantity"`
	UnitPriceUsdCents int64  `json:"unit_price_usd_cents"`
	AmountUsdCents    int64  `json:"amount_usd_cents"`
}

// Payment records how (part of) an invoice was paid.
type Payment struct {
	ID             string    `json:"id"`
	Method         string    `json:"method"`
	AmountUsdCents int64     `json:"amount_usd_cents"`
	TransactionID  string    `json:"transaction_id,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
}

// Invoice is a bill with its line items and payments.
type Invoice struct {
	ID            string        `json:"id"`
	Number        string        `json:"number"`
	Status        string        `json:"status"`
	Currency      string        `json:"currency"`
	TotalUsdCents int64         `json:"total_usd_cents"`
	CreatedAt     time.Time     `json:"created_at"`
	DueAt         time.Time     `json:"due_at"`
	PaidAt        *time.Time    `json:"paid_at"`
	Lines         []InvoiceLine `json:"lines"`
	Payments      []Payment     `json:"payments"`
}

// Ticket statuses, priorities and departments.
const (
	TicketOpen          = "open"
	TicketAnswered      = "answered"
	TicketCustomerReply = "customer_reply"
	TicketOnHold        = "on_hold"
	TicketClosed        = "closed"
)

// TicketStatuses lists the statuses staff may set.
var TicketStatuses = []string{TicketOpen, TicketAnswered, TicketCustomerReply, TicketOnHold, TicketClosed}

// TicketPriorities lists valid priorities.
var TicketPriorities = []string{"low", "medium", "high", "urgent"}

// TicketDepartments lists valid departments.
var TicketDepartments = []string{"technical", "billing", "sales", "general"}

// TicketMessage is one message of a ticket thread.
type TicketMessage struct {
	ID        string    `json:"id"`
	Author    string    `json:"author"` // customer | staff
	StaffName string    `json:"staff_name,omitempty"`
	Body      string    `json:"body"`
	CreatedAt time.Time `json:"created_at"`
}

// Ticket is a support ticket; Messages is filled on detail reads only.
type Ticket struct {
	ID         string          `json:"id"`
	Number     int64           `json:"number"`
	Subject    string          `json:"subject"`
	Status     string          `json:"status"`
	Priority   string          `json:"priority"`
	Department string          `json:"department"`
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
	Messages   []TicketMessage `json:"messages,omitempty"`
}

// AdminTicket is a ticket as the operator API shows it: with the account it
// belongs to (GET /admin/tickets, /admin/tickets/{id}; the thread on the latter).
type AdminTicket struct {
	Ticket
	AccountID string `json:"account_id"`
}

// AdminTicketList is GET /admin/tickets: the newest matching tickets
// (without threads, at most the limit asked) and how many match in all.
type AdminTicketList struct {
	Data  []AdminTicket `json:"data"`
	Total int           `json:"total"`
}

// TicketCreateRequest is the body of POST /v1/tickets.
type TicketCreateRequest struct {
	Subject    string `json:"subject"`
	Message    string `json:"message"`
	Department string `json:"department"`
	Priority   string `json:"priority"`
}

// TicketReplyRequest is the body of POST /v1/tickets/:id/reply.
type TicketReplyRequest struct {
	Body string `json:"body"`
}

// Page is the envelope of every list response. A list that takes a cursor
// (?cursor=, the id of the last item seen) answers NextCursor, the cursor of
// the next page (nil at the end); a page asked for by cursor has Page 0 and
// NextPage nil. Walk by cursor for a walk that neither repeats nor skips
// items made or deleted meanwhile: page numbers shift under such writes.
type Page[T any] struct {
	Data       []T     `json:"data"`
	Page       int     `json:"page"`
	Limit      int     `json:"limit"`
	Total      int     `json:"total"`
	NextPage   *int    `json:"next_page"`
	NextCursor *string `json:"next_cursor"`
}
