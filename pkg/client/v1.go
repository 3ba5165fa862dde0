package client

import (
	"context"
	"net/http"
	"strconv"

	"github.com/hostplane/hostplane/pkg/api"
)

// idem is the Idempotency-Key header (none when key is empty).
func idem(key string) http.Header {
	h := http.Header{}
	if key != "" {
		h.Set("Idempotency-Key", key)
	}
	return h
}

func pageQuery(page, limit int) string {
	return "?page=" + strconv.Itoa(page) + "&limit=" + strconv.Itoa(limit)
}

// get is a GET of path answered with a T.
func get[T any](ctx context.Context, c *Client, path string) (T, error) {
	return call[T](ctx, c, "GET", path, nil, nil)
}

// Billing.

// Wallet returns the account's prepaid balance.
func (c *Client) Wallet(ctx context.Context) (api.Wallet, error) {
	return get[api.Wallet](ctx, c, "/v1/billing/wallet")
}

// WalletTransactions lists the wallet's credits and debits.
func (c *Client) WalletTransactions(ctx context.Context, page, limit int) (api.Page[api.WalletTransaction], error) {
	return get[api.Page[api.WalletTransaction]](ctx, c, "/v1/billing/wallet/transactions"+pageQuery(page, limit))
}

// Invoices lists the account's invoices.
func (c *Client) Invoices(ctx context.Context, page, limit int) (api.Page[api.Invoice], error) {
	return get[api.Page[api.Invoice]](ctx, c, "/v1/billing/invoices"+pageQuery(page, limit))
}

// Invoice returns one invoice with its lines.
func (c *Client) Invoice(ctx context.Context, id string) (api.Invoice, error) {
	return get[api.Invoice](ctx, c, "/v1/billing/invoices/"+seg("id", id))
}

// Tickets.

// ReplyTicket adds the customer's message to a ticket; idemKey may be empty.
func (c *Client) ReplyTicket(ctx context.Context, id string, req api.TicketReplyRequest, idemKey string) (api.Ticket, error) {
	return call[api.Ticket](ctx, c, "POST", "/v1/tickets/"+seg("id", id)+"/reply", req, idem(idemKey))
}

// CloseTicket closes a ticket.
func (c *Client) CloseTicket(ctx context.Context, id string) (api.Ticket, error) {
	return call[api.Ticket](ctx, c, "POST", "/v1/tickets/"+seg("id", id)+"/close", nil, nil)
}

// Servers and actions. Every call that changes a server answers 202 with the
// action to follow (Action, WaitAction).

// Servers lists the account's servers.
func (c *Client) Servers(ctx context.Context, page, limit int) (api.ServerList, error) {
	return get[api.ServerList](ctx, c, "/v1/servers"+pageQuery(page, limit))
}

// Server returns one server.
func (c *Client) Server(ctx context.Context, id string) (api.Server, error) {
	return get[api.Server](ctx, c, "/v1/servers/"+seg("id", id))
}

func (c *Client) serverPath(id string, rest ...string) string {
	p := "/v1/servers/" + seg("id", id)
	for _, r := range rest {
		p += "/" + r // a constant, or a seg
	}
	return p
}

func (c *Client) accepted(ctx context.Context, method, path string, body any, hdr http.Header) (api.ActionAccepted, error) {
	return call[api.ActionAccepted](ctx, c, method, path, body, hdr)
}

// TerminateServer destroys a server and its disks; idemKey may be empty.
func (c *Client) TerminateServer(ctx context.Context, id, idemKey string) (api.ActionAccepted, error) {
	return c.accepted(ctx, "DELETE", c.serverPath(id), nil, idem(idemKey))
}

// ServerStats returns one live sample of the server's usage.
func (c *Client) ServerStats(ctx context.Context, id string) (api.ServerStats, error) {
	return get[api.ServerStats](ctx, c, c.serverPath(id, "stats"))
}

// ServerSnapshots lists a server's snapshots.
func (c *Client) ServerSnapshots(ctx context.Context, id string) (api.ServerSnapshotList, error) {
	return get[api.ServerSnapshotList](ctx, c, c.serverPath(id, "snapshots"))
}

// CreateServerSnapshot snapshots a server; idemKey may be empty.
func (c *Client) CreateServerSnapshot(ctx context.Context, id string, req api.SnapshotCreateRequest, idemKey string) (api.ActionAccepted, error) {
	return c.accepted(ctx, "POST", c.serverPath(id, "snapshots"), req, idem(idemKey))
}

// DeleteServerSnapshot deletes a snapshot; idemKey may be empty.
func (c *Client) DeleteServerSnapshot(ctx context.Context, id, snapshotID, idemKey string) (api.ActionAccepted, error) {
	return c.accepted(ctx, "DELETE", c.serverPath(id, "snapshots", seg("snapshotID", snapshotID)), nil, idem(idemKey))
}

// RevertServerSnapshot returns a server's disk to a snapshot; idemKey may be empty.
func (c *Client) RevertServerSnapshot(ctx context.Context, id, snapshotID, idemKey string) (api.ActionAccepted, error) {
	return c.accepted(ctx, "POST", c.serverPath(id, "snapshots", seg("snapshotID", snapshotID), "revert"), nil, idem(idemKey))
}

// PowerServer starts, stops or reboots a server (action: one of
// api.PowerActions); req may be nil, idemKey empty.
func (c *Client) PowerServer(ctx context.Context, id, action string, req *api.PowerRequest, idemKey string) (api.ActionAccepted, error) {
	var body any
	if req != nil {
		body = req
	}
	return c.accepted(ctx, "POST", c.serverPath(id, "power", seg("action", action)), body, idem(idemKey))
}

// ResetServerPassword sets a new root password, returned this once.
func (c *Client) ResetServerPassword(ctx context.Context, id string) (api.PasswordResetAccepted, error) {
	return c.accepted(ctx, "POST", c.serverPath(id, "password-reset"), nil, nil)
}

// LabelServer renames a server.
func (c *Client) LabelServer(ctx context.Context, id string, req api.LabelRequest) (api.Server, error) {
	return call[api.Server](ctx, c, "PATCH", c.serverPath(id, "label"), req, nil)
}

// ReinstallServer reinstalls a server from a template (the new root password
// is returned this once); idemKey may be empty.
func (c *Client) ReinstallServer(ctx context.Context, id string, req api.ReinstallRequest, idemKey string) (api.ActionAccepted, error) {
	return c.accepted(ctx, "POST", c.serverPath(id, "reinstall"), req, idem(idemKey))
}

// ServerIPs lists a server's addresses with their reverse-DNS names.
func (c *Client) ServerIPs(ctx context.Context, id string) (api.ServerIPList, error) {
	return get[api.ServerIPList](ctx, c, c.serverPath(id, "ips"))
}

// AccountIPs lists every address of the account's servers (not terminated)
// with its reverse-DNS name, grouped per server (GET /v1/servers/ips, every
// page; the result holds them all, with the last page's counts).
func (c *Client) AccountIPs(ctx context.Context) (api.AccountIPList, error) {
	var all api.AccountIPList
	for page := 1; ; {
		l, err := c.AccountIPsPage(ctx, page, 200)
		if err != nil {
			return all, err
		}
		data := append(all.Data, l.Data...)
		all, all.Data = l, data
		if l.NextPage == nil || *l.NextPage <= page {
			if all.Data == nil {
				all.Data = []api.ServerIPGroup{}
			}
			return all, nil
		}
		page = *l.NextPage
	}
}

// AccountIPsPage is one page of AccountIPs (page from 1, limit 1-200).
func (c *Client) AccountIPsPage(ctx context.Context, page, limit int) (api.AccountIPList, error) {
	return get[api.AccountIPList](ctx, c, "/v1/servers/ips"+pageQuery(page, limit))
}

// SetServerPTR sets the reverse-DNS name of one of the server's addresses.
func (c *Client) SetServerPTR(ctx context.Context, id, ip string, req api.PTRRequest) (api.ServerIP, error) {
	return call[api.ServerIP](ctx, c, "PUT", c.serverPath(id, "ips", seg("ip", ip), "ptr"), req, nil)
}

// DeleteServerPTR removes the reverse-DNS name of one of the server's addresses.
func (c *Client) DeleteServerPTR(ctx context.Context, id, ip string) (api.ServerIP, error) {
	return call[api.ServerIP](ctx, c, "DELETE", c.serverPath(id, "ips", seg("ip", ip), "ptr"), nil, nil)
}

// ActionsQuery selects a page of GET /v1/actions; an empty field (a zero
// Limit) is not sent.
type ActionsQuery struct {
	Limit        int
	Cursor       string // the previous page's NextCursor; "" the newest
	ResourceType string // "server" or "hosting"
	ResourceID   string
	Status       string
	Command      string
}

// Actions returns a page of the account's actions, newest first. A page's
// NextCursor, when not nil, is the next (older) page's Cursor; nil is the
// end. A page may hold fewer than Limit actions and still have a next one.
func (c *Client) Actions(ctx context.Context, q ActionsQuery) (api.ActionList, error) {
	v := nonEmpty(map[string]string{"limit": count(q.Limit), "cursor": q.Cursor, "resource_type": q.ResourceType, "resource_id": q.ResourceID, "status": q.Status, "command": q.Command})
	return get[api.ActionList](ctx, c, withQuery("/v1/actions", v))
}

// Action returns an action (queued, running, success or failed).
func (c *Client) Action(ctx context.Context, id string) (api.Action, error) {
	return get[api.Action](ctx, c, "/v1/actions/"+seg("id", id))
}
