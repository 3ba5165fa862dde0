package api

import "time"

// WebhookEventAll subscribes to every event in the catalogue.
const WebhookEventAll = "*"

// WebhookEventInfo describes one event of the catalogue.
type WebhookEventInfo struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Payload     []string `json:"payload"`
	// Emitted is true when this build records the event; the others are part of
	// the contract and start arriving when their feature lands.
	Emitted bool `json:"emitted"`
}

// WebhookEvent is the name of an event of the catalogue. The coordinator emits
// events only through a WebhookEvent parameter, and a test (fsm) refuses an
// emit whose name is not one of the constants below; TestWebhookCatalogue
// checks each constant has its catalogue entry.
//
// History: the catalogue's names are part of the public contract and are only
// ever added. It was written whole with webhook delivery (the invoice, wallet
// and ticket events emitted from the start); the server.* events are emitted
// since the Servers API, server.ptr.changed since reverse DNS, server.suspended
// since renewals (the renewal sweep's suspension for non-payment);
// server.unsuspended, hosting.suspended and hosting.unsuspended since hosting
// orders. domain.registered is emitted since domain registration, which added
// domain.renewed and domain.expiring (the renewal job's reminders).
type WebhookEvent string

// The events of the catalogue.
const (
	EventServerCreated         WebhookEvent = "server.created"
	EventServerPowerChanged    WebhookEvent = "server.power.changed"
	EventServerReinstalled     WebhookEvent = "server.reinstalled"
	EventServerTerminated      WebhookEvent = "server.terminated"
	EventServerSuspended       WebhookEvent = "server.suspended"
	EventServerPTRChanged      WebhookEvent = "server.ptr.changed"
	EventServerUnsuspended     WebhookEvent = "server.unsuspended"
	EventHostingCreated        WebhookEvent = "hosting.created"
	EventHostingSuspended      WebhookEvent = "hosting.suspended"
	EventHostingUnsuspended    WebhookEvent = "hosting.unsuspended"
	EventHostingDomainReleased WebhookEvent = "hosting.domain.released"
	EventHostingDiskWarning    WebhookEvent = "hosting.disk_quota_warning"
	EventHostingDiskExceeded   WebhookEvent = "hosting.disk_quota_exceeded"
	EventInvoiceCreated        WebhookEvent = "invoice.created"
	EventInvoicePaid           WebhookEvent = "invoice.paid"
	EventWalletDepositReceived WebhookEvent = "wallet.deposit.received"
	EventDomainRegistered      WebhookEvent = "domain.registered"
	EventDomainRenewed         WebhookEvent = "domain.renewed"
	EventDomainExpiring        WebhookEvent = "domain.expiring"
	EventTicketCreated         WebhookEvent = "ticket.created"
	EventTicketReplied         WebhookEvent = "ticket.replied"
)

// WebhookEvents is the event catalogue (SPEC.md, Webhook events), in SPEC order.
var WebhookEvents = []WebhookEventInfo{
	{Name: string(EventServerCreated), Description: "A server finished provisioning.", Payload: []string{"serverId", "status", "label"}, Emitted: true},
	{Name: string(EventServerPowerChanged), Description: "A power action ran. method, when the node said, is how (as the action's method): start started or already; stop graceful, forced or already; reboot guest-acpi, reset, or started (the server was stopped: it was started, a fresh boot, not a reboot).", Payload: []string{"serverId", "action"}, Emitted: true},
	{Name: string(EventServerReinstalled), Description: "A reinstall ran.", Payload: []string{"serverId", "os", "osTemplate"}, Emitted: true},
	{Name: string(EventServerTerminated), Description: "A server was terminated.", Payload: []string{"serverId"}, Emitted: true},
	{Name: string(EventServerSuspended), Description: "A server was suspended (e.g. expiry).", Payload: []string{"serverId", "reason"}, Emitted: true},
	{Name: string(EventServerPTRChanged), Description: "A reverse-DNS (PTR) record was set or cleared; ptr is null when cleared.", Payload: []string{"serverId", "ip", "ptr"}, Emitted: true},
	{Name: string(EventServerUnsuspended), Description: "A server's suspension was lifted (its renewal paid, or an operator).", Payload: []string{"serverId"}, Emitted: true},
	{Name: string(EventHostingCreated), Description: "A web-hosting account finished provisioning.", Payload: []string{"hostingId", "username", "domain", "status"}, Emitted: true},
	{Name: string(EventHostingSuspended), Description: "A web-hosting account was suspended (e.g. expiry).", Payload: []string{"hostingId", "domain", "reason"}, Emitted: true},
	{Name: string(EventHostingUnsuspended), Description: "A web-hosting account's suspension was lifted (its renewal paid, or an operator).", Payload: []string{"hostingId", "domain"}, Emitted: true},
	{Name: string(EventHostingDomainReleased), Description: "Another hosting account proved control of this account's domain through DNS and took the name over: a primary domain or a custom domain not verified yet, or a verified custom domain whose ownership TXT record (_hostplane-verify) is gone from the domain's DNS. It is no longer served for this account.", Payload: []string{"hostingId", "domain", "kind"}, Emitted: true},
	{Name: string(EventHostingDiskWarning), Description: "A web-hosting account's disk usage reached 90 % of its plan's allowance (quota.disk_used_bytes against limits.disk_mib, as the node's usage reports measure it). Sent once per crossing: again only after the usage went back under 90 %.", Payload: []string{"hostingId", "domain", "diskUsedBytes", "diskMib"}, Emitted: true},
	{Name: string(EventHostingDiskExceeded), Description: "A web-hosting account's disk usage reached its plan's allowance (100 %). Where the node enforces it (quota.enforced), further writes fail: an SFTP client sees only \"Failure\". Sent once per crossing (a usage that jumps past both thresholds sends this one only): again only after the usage went back under 100 %.", Payload: []string{"hostingId", "domain", "diskUsedBytes", "diskMib"}, Emitted: true},
	{Name: string(EventInvoiceCreated), Description: "A new invoice was issued (any source: order, renewal, admin).", Payload: []string{"invoiceId", "invoiceNumber", "status", "totalUsdCents", "currency"}, Emitted: true},
	{Name: string(EventInvoicePaid), Description: "An invoice transitioned to paid.", Payload: []string{"invoiceId", "invoiceNumber", "totalUsdCents", "currency"}, Emitted: true},
	{Name: string(EventWalletDepositReceived), Description: "A wallet top-up was credited.", Payload: []string{"amountUsdCents", "gateway", "transactionId"}, Emitted: true},
	{Name: string(EventDomainRegistered), Description: "A domain registration completed (post-payment).", Payload: []string{"domainId", "domain", "periodYears", "expiresAt"}, Emitted: true},
	{Name: string(EventDomainRenewed), Description: "A domain was renewed at the registry (paid from the wallet).", Payload: []string{"domainId", "domain", "periodYears", "expiresAt"}, Emitted: true},
	{Name: string(EventDomainExpiring), Description: "A domain expires soon and will not be renewed (auto-renew off, or the wallet cannot pay).", Payload: []string{"domainId", "domain", "expiresAt", "daysLeft", "autoRenew", "reason"}, Emitted: true},
	{Name: string(EventTicketCreated), Description: "A support ticket was opened.", Payload: []string{"ticketId", "ticketNumber", "subject", "status", "priority"}, Emitted: true},
	{Name: string(EventTicketReplied), Description: "Support staff replied to your ticket.", Payload: []string{"ticketId", "ticketNumber", "subject", "status"}, Emitted: true},
}

// WebhookEventNames lists the catalogue's event names in order.
func WebhookEventNames() []string {
	out := make([]string, len(WebhookEvents))
	for i, e := range WebhookEvents {
		out[i] = e.Name
	}
	return out
}

// IsWebhookEvent reports whether name is in the catalogue.
func IsWebhookEvent(name string) bool {
	for _, e := range WebhookEvents {
		if e.Name == name {
			return true
		}
	}
	return false
}

// Webhook is a subscription. Secret is masked except in the responses of create
// and rotate-secret, which carry it once.
type Webhook struct {
	ID             string    `json:"id"`
	URL            string    `json:"url"`
	Events         []string  `json:"events"`
	Description    string    `json:"description"`
	IsActive       bool      `json:"isActive"`
	Secret         string    `json:"secret"`
	DisabledReason string    `json:"disabledReason,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// WebhookCreateRequest is the body of POST /v1/webhooks.
type WebhookCreateRequest struct {
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Description string   `json:"description"`
}

// WebhookUpdateRequest is the body of PATCH /v1/webhooks/:id; absent fields stay.
// is_active is accepted as a synonym of isActive.
type WebhookUpdateRequest struct {
	URL         *string   `json:"url,omitempty"`
	Events      *[]string `json:"events,omitempty"`
	Description *string   `json:"description,omitempty"`
	IsActive    *bool     `json:"isActive,omitempty"`
	IsActiveAlt *bool     `json:"is_active,omitempty"`
}

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed"
	// DeliveryQueued is the status of a delivery log's queued row (AttemptQueued).
	DeliveryQueued = "queued"
)

// Attempt outcomes.
const (
	AttemptSucceeded = "succeeded" // 2xx
	AttemptRetrying  = "retrying"  // failed; another attempt is scheduled at next_attempt_at
	AttemptFailed    = "failed"    // failed; the retry window is over, the delivery failed
	AttemptDisabled  = "disabled"  // 410 Gone: the subscription was disabled
	// AttemptExpired: not sent; the delivery was held while its subscription
	// was paused or disabled, and at the resume its retry window (counted from
	// its first attempt) was over. The delivery failed; a redeliver sends it.
	AttemptExpired = "expired"
	// AttemptQueued: a row of the delivery log for a delivery not attempted
	// yet (its event applied, its first attempt has not): attempt 0, no
	// attempted_at and an empty id, delivery_status "queued". Its
	// delivery_id is the one the attempts will carry; a redeliver of it is
	// a 409 not_attempted_yet.
	AttemptQueued = "queued"
)

// WebhookDelivery is one (event, subscription) pair. Its id is stable across
// retries and leader changes and is sent as X-Sunucu-Delivery.
type WebhookDelivery struct {
	ID            string     `json:"id"`
	WebhookID     string     `json:"webhook_id"`
	EventID       string     `json:"event_id"`
	EventType     string     `json:"event_type"`
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	Chain         int        `json:"chain"` // 1 for the original chain, +1 per redeliver
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

// WebhookAttempt is one entry of a subscription's delivery log: one HTTP attempt.
type WebhookAttempt struct {
	ID             string     `json:"id"`
	DeliveryID     string     `json:"delivery_id"`
	EventID        string     `json:"event_id"`
	EventType      string     `json:"event_type"`
	Attempt        int        `json:"attempt"` // 1-based within the chain; 0 on a queued row
	Chain          int        `json:"chain"`
	AttemptedAt    time.Time  `json:"attempted_at,omitzero"` // absent on a queued row
	StatusCode     int        `json:"status_code"`           // 0 when no response arrived
	DurationMs     int64      `json:"duration_ms"`
	Error          string     `json:"error,omitempty"`
	ResponseBody   string     `json:"response_body,omitempty"` // first 1 KiB
	Outcome        string     `json:"outcome"`
	NextAttemptAt  *time.Time `json:"next_attempt_at"`
	DeliveryStatus string     `json:"delivery_status"` // the delivery's current status
}

// WebhookEventBody is the JSON body POSTed to the subscriber.
type WebhookEventBody struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"created_at"`
	Data      any       `json:"data"`
}
