// Package client is the Go client of hostplane: the public /v1 API (API keys) and
// the operator admin API on a coordinator's unix socket. hostplanectl uses only it.
package client

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/brand"
)

// DefaultDataDir is $HOSTPLANE_DATA_DIR, else $XDG_DATA_HOME/hostplane, else
// ./.hostplane: where `make run` keeps the coordinator's data.
func DefaultDataDir() string {
	if d := os.Getenv("HOSTPLANE_DATA_DIR"); d != "" {
		return d
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "hostplane")
	}
	return ".hostplane"
}

// DefaultAdminSocket is $HOSTPLANE_ADMIN_SOCKET or admin.sock in DefaultDataDir.
func DefaultAdminSocket() string {
	if s := os.Getenv("HOSTPLANE_ADMIN_SOCKET"); s != "" {
		return s
	}
	return filepath.Join(DefaultDataDir(), "admin.sock")
}

// Client calls the public /v1 API with an API key.
type Client struct {
	BaseURL string
	Key     string
	HTTP    *http.Client
	// Brand is the dialect of the coordinator called (nil: sunucu): every
	// path the client's methods build in sunucu's names (/v1/servers…) is
	// sent in the brand's (/v1/vps…). Scope and event names the caller
	// passes are sent as given.
	Brand *brand.Brand
	// LeaderWait bounds how long Do sends a request again that a
	// coordinator answered 503 leader_unreachable (it is a follower that
	// forwarded the request and the leader did not answer: leadership is
	// moving, or the leader hangs) or 503 no_leader (an election is under
	// way): 0 means DefaultElectionWait, below 0 never. The request's
	// context bounds it too. See Resend for which requests are sent again.
	LeaderWait time.Duration
	// Waiting, if set, is called before each such resend with the answer
	// that caused it and the pause before it (Resend.Waiting).
	Waiting func(e *api.Error, pause time.Duration)
}

// NewBrand returns a client for a coordinator speaking brand b.
func NewBrand(baseURL, key string, b *brand.Brand) *Client {
	c := New(baseURL, key)
	c.Brand = b
	return c
}

// New returns a client for baseURL (e.g. http://127.0.0.1:8420).
func New(baseURL, key string) *Client {
	return &Client{BaseURL: baseURL, Key: key, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// Do sends a request and decodes a 2xx JSON body into out (if non-nil); a non-2xx
// response is returned as *api.Error.
//
// A 503 leader_unreachable (a follower forwarded the request and the leader
// did not answer, as during a leader change) or 503 no_leader (the
// coordinator knows no leader, or lost the leadership while it served the
// request: an election) with Retry-After is sent again as Resend says (a
// back-off, at least Retry-After), while ctx and
// LeaderWait allow, when sending it again cannot apply a change twice: a GET
// or HEAD, or a write that carries an Idempotency-Key (the coordinator
// answers a resent one with the first answer, or applies it once). A write
// without an Idempotency-Key is never sent again (the leader may have
// applied it before it stopped answering or lost the leadership), nor is a
// body given as an io.Reader. When the wait ends, the last 503 is returned.
func (c *Client) Do(ctx context.Context, method, path string, body, out any, hdr http.Header) (*http.Response, error) {
	var resp *http.Response
	err := Resend{Wait: c.LeaderWait, Waiting: c.Waiting}.Do(ctx, method, body, hdr, func() (http.Header, error) {
		var err error
		resp, err = do(ctx, c.HTTP, c.BaseURL, method, c.Brand.Path(path), body, out, func(r *http.Request) {
			if c.Key != "" {
				r.Header.Set("Authorization", "Bearer "+c.Key)
			}
			for k, v := range hdr {
				r.Header[k] = v
			}
		})
		return header(resp), err
	})
	return resp, err
}

// header is resp's headers; nil without a response.
func header(resp *http.Response) http.Header {
	if resp == nil {
		return nil
	}
	return resp.Header
}

// Account returns the caller's account and its reseller terms.
func (c *Client) Account(ctx context.Context) (api.AccountProfile, error) {
	return call[api.AccountProfile](ctx, c, "GET", "/v1/account", nil, nil)
}

// CreateTicket opens a ticket; idemKey may be empty.
func (c *Client) CreateTicket(ctx context.Context, req api.TicketCreateRequest, idemKey string) (api.Ticket, error) {
	return call[api.Ticket](ctx, c, "POST", "/v1/tickets", req, idem(idemKey))
}

// Ticket returns one ticket with its thread.
func (c *Client) Ticket(ctx context.Context, id string) (api.Ticket, error) {
	return call[api.Ticket](ctx, c, "GET", "/v1/tickets/"+seg("id", id), nil, nil)
}

// Tickets lists tickets.
func (c *Client) Tickets(ctx context.Context, page, limit int) (api.Page[api.Ticket], error) {
	return call[api.Page[api.Ticket]](ctx, c, "GET", "/v1/tickets?page="+strconv.Itoa(page)+"&limit="+strconv.Itoa(limit), nil, nil)
}

func do(ctx context.Context, hc *http.Client, base, method, path string, body, out any, decorate func(*http.Request)) (*http.Response, error) {
	if err := checkPath(method, path); err != nil {
		return nil, err
	}
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case io.Reader:
		rd = b
	default:
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	decorate(req)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e api.Error
		if json.Unmarshal(raw, &e) != nil || e.StatusCode == 0 {
			e = *api.NewError(resp.StatusCode, "", string(bytes.TrimSpace(raw)))
		}
		return resp, &e
	}
	if w, ok := out.(io.Writer); ok {
		_, err = io.Copy(w, resp.Body)
		return resp, err
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp, fmt.Errorf("decode response: %w", err)
		}
	}
	return resp, nil
}

// Admin calls a coordinator's admin API over its unix socket.
type Admin struct {
	Socket string
	HTTP   *http.Client
	// ElectionWait bounds how long a call a coordinator answered 503 during
	// an election is sent again: 0 means DefaultElectionWait, below 0 never.
	// A 503 not_leader with Retry-After (a coordinator that knows no leader:
	// it executed nothing, it forwarded nothing) is sent again for any
	// request; a 503 no_leader or leader_unreachable (an election, or a
	// leader that stopped answering: a write may have been applied) only
	// when that cannot apply a change twice: a GET or HEAD, or a write with
	// an Idempotency-Key. A body given as an io.Reader is not sent again.
	// Resend has the pauses.
	ElectionWait time.Duration
	// Waiting, if set, is called before each such wait with the answer
	// that caused it and the pause (hostplanectl says it is waiting).
	Waiting func(e *api.Error, pause time.Duration)
	// BackupStall bounds how long BackupWith waits for the next bytes of
	// the copy: 0 means DefaultBackupStall, below 0 no bound.
	BackupStall time.Duration
}

// NewAdmin returns an admin client for the socket path.
func NewAdmin(socket string) *Admin {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	return &Admin{Socket: socket, HTTP: &http.Client{Transport: tr, Timeout: 5 * time.Minute}}
}

// Do sends an admin request; out may be an io.Writer for streamed bodies.
func (a *Admin) Do(ctx context.Context, method, path string, body, out any) error {
	return a.DoWith(ctx, method, path, body, out, nil)
}

// DoWith is Do sending hdr's headers too (an Idempotency-Key, say).
func (a *Admin) DoWith(ctx context.Context, method, path string, body, out any, hdr http.Header) error {
	err := Resend{Wait: a.ElectionWait, Waiting: a.Waiting}.Do(ctx, method, body, hdr, func() (http.Header, error) {
		resp, err := do(ctx, a.HTTP, "http://admin", method, path, body, out, func(r *http.Request) {
			for k, vs := range hdr {
				r.Header[k] = vs
			}
		})
		return header(resp), err
	})
	return a.socketErr(err)
}

// socketErr wraps an error that is not the coordinator's answer as a
// SocketError naming the socket.
func (a *Admin) socketErr(err error) error {
	if err != nil {
		if _, ok := err.(*api.Error); !ok && !errors.Is(err, ErrBadPathValue) {
			return &SocketError{Socket: a.Socket, Err: err}
		}
	}
	return err
}

// SocketError is a call that got no answer from the coordinator on the admin
// socket (none listens there, the socket is not there, the connection broke).
// Flag is the command-line flag that sets the socket, for the message; a CLI
// whose command names it otherwise sets it (hostplanectl's node commands use
// --admin-socket, since their --socket is the agent's).
// Note, if set, is said after that (what else the operator should know:
// that a --socket they gave is not this socket, say).
type SocketError struct {
	Socket string
	Flag   string // "" means --socket
	Err    error
	Note   string
}

func (e *SocketError) Error() string {
	note := ""
	if e.Note != "" {
		note = "; " + e.Note
	}
	return fmt.Sprintf("admin socket %s: %v (is the coordinator running? set %s or HOSTPLANE_ADMIN_SOCKET%s)", e.Socket, e.Err, cmp.Or(e.Flag, "--socket"), note)
}

func (e *SocketError) Unwrap() error { return e.Err }

// call is c.Do decoding the answer into a T.
func call[T any](ctx context.Context, c *Client, method, path string, body any, hdr http.Header) (T, error) {
	var out T
	_, err := c.Do(ctx, method, path, body, &out, hdr)
	return out, err
}

// adminCall makes one admin request and decodes its answer into a T.
func adminCall[T any](ctx context.Context, a *Admin, method, path string, body any) (T, error) {
	return adminCallWith[T](ctx, a, method, path, body, nil)
}

// adminCallWith is adminCall sending hdr's headers too (a.DoWith).
func adminCallWith[T any](ctx context.Context, a *Admin, method, path string, body any, hdr http.Header) (T, error) {
	var out T
	err := a.DoWith(ctx, method, path, body, &out, hdr)
	return out, err
}

// CreateAccount creates an account.
func (a *Admin) CreateAccount(ctx context.Context, req api.AccountCreateRequest) (api.Account, error) {
	return adminCall[api.Account](ctx, a, "POST", "/admin/accounts", req)
}

// Account returns an account by id or email.
func (a *Admin) Account(ctx context.Context, idOrEmail string) (api.Account, error) {
	return adminCall[api.Account](ctx, a, "GET", "/admin/accounts/"+seg("idOrEmail", idOrEmail), nil)
}

// CreateKey mints a key for an account.
func (a *Admin) CreateKey(ctx context.Context, accountID string, req api.KeyCreateRequest) (api.KeyCreated, error) {
	return adminCall[api.KeyCreated](ctx, a, "POST", "/admin/accounts/"+seg("accountID", accountID)+"/keys", req)
}

// Keys lists an account's keys.
func (a *Admin) Keys(ctx context.Context, accountID string) ([]api.KeyInfo, error) {
	return adminCall[[]api.KeyInfo](ctx, a, "GET", "/admin/accounts/"+seg("accountID", accountID)+"/keys", nil)
}

// RevokeKey revokes a key.
func (a *Admin) RevokeKey(ctx context.Context, keyID string) (api.KeyInfo, error) {
	return adminCall[api.KeyInfo](ctx, a, "POST", "/admin/keys/"+seg("keyID", keyID)+"/revoke", nil)
}

// KeyUsage returns a key's usage log, newest first.
func (a *Admin) KeyUsage(ctx context.Context, keyID string) ([]api.KeyUsage, error) {
	return adminCall[[]api.KeyUsage](ctx, a, "GET", "/admin/keys/"+seg("keyID", keyID)+"/usage", nil)
}

// CreditWallet credits a deposit.
func (a *Admin) CreditWallet(ctx context.Context, accountID string, req api.WalletCreditRequest) (api.WalletTransaction, error) {
	return a.CreditWalletOnce(ctx, accountID, req, "")
}

// CreditWalletOnce is CreditWallet with an Idempotency-Key: a retry with the
// same key and request answers the first credit instead of crediting again.
func (a *Admin) CreditWalletOnce(ctx context.Context, accountID string, req api.WalletCreditRequest, key string) (api.WalletTransaction, error) {
	return adminCallWith[api.WalletTransaction](ctx, a, "POST", "/admin/accounts/"+seg("accountID", accountID)+"/wallet/credit", req, idempotencyHeader(key))
}

// idempotencyHeader is an Idempotency-Key header, or none for "".
func idempotencyHeader(key string) http.Header {
	if key == "" {
		return nil
	}
	return http.Header{"Idempotency-Key": {key}}
}

// IssueInvoice issues an invoice.
func (a *Admin) IssueInvoice(ctx context.Context, accountID string, req api.InvoiceIssueRequest) (api.Invoice, error) {
	return a.IssueInvoiceOnce(ctx, accountID, req, "")
}

// IssueInvoiceOnce is IssueInvoice with an Idempotency-Key ("" for none): a
// retry with the same key and request answers the first invoice instead of
// issuing (and perhaps paying) a second.
func (a *Admin) IssueInvoiceOnce(ctx context.Context, accountID string, req api.InvoiceIssueRequest, key string) (api.Invoice, error) {
	return adminCallWith[api.Invoice](ctx, a, "POST", "/admin/accounts/"+seg("accountID", accountID)+"/invoices", req, idempotencyHeader(key))
}

// PayInvoice pays an invoice from the wallet.
func (a *Admin) PayInvoice(ctx context.Context, invoiceID string) (api.Invoice, error) {
	return adminCall[api.Invoice](ctx, a, "POST", "/admin/invoices/"+seg("invoiceID", invoiceID)+"/pay", nil)
}

// StaffReply posts a staff reply.
func (a *Admin) StaffReply(ctx context.Context, ticketID string, req api.StaffReplyRequest) (api.Ticket, error) {
	return adminCall[api.Ticket](ctx, a, "POST", "/admin/tickets/"+seg("ticketID", ticketID)+"/reply", req)
}

// SetTicketStatus changes a ticket's status.
func (a *Admin) SetTicketStatus(ctx context.Context, ticketID, status string) (api.Ticket, error) {
	return adminCall[api.Ticket](ctx, a, "POST", "/admin/tickets/"+seg("ticketID", ticketID)+"/status", api.TicketStatusRequest{Status: status})
}

// ClusterStatus returns the cluster as the socket's coordinator sees it.
func (a *Admin) ClusterStatus(ctx context.Context) (api.ClusterStatus, error) {
	return adminCall[api.ClusterStatus](ctx, a, "GET", "/admin/cluster/status", nil)
}

// ClusterJoin adds a voter.
// apiAddr may be empty: the node then registers its API address itself.
func (a *Admin) ClusterJoin(ctx context.Context, id, raftAddr, apiAddr string) (api.ClusterStatus, error) {
	return adminCall[api.ClusterStatus](ctx, a, "POST", "/admin/cluster/join", api.ClusterJoinRequest{ID: id, RaftAddr: raftAddr, APIAddr: apiAddr})
}

// ClusterRemove removes a server. A voter whose removal would leave no
// answering quorum is refused (409 quorum_at_risk): see ClusterRemoveWith.
func (a *Admin) ClusterRemove(ctx context.Context, id string) (api.ClusterStatus, error) {
	return a.ClusterRemoveWith(ctx, api.ClusterRemoveRequest{ID: id})
}

// ClusterRemoveWith removes a server as req says (Force: even when the
// voters left would not include an answering quorum).
func (a *Admin) ClusterRemoveWith(ctx context.Context, req api.ClusterRemoveRequest) (api.ClusterStatus, error) {
	return adminCall[api.ClusterStatus](ctx, a, "POST", "/admin/cluster/remove", req)
}

// ClusterTransferLeadership hands the leadership to the coordinator to, or to
// the most up-to-date one when to is "", and returns the status afterwards.
func (a *Admin) ClusterTransferLeadership(ctx context.Context, to string) (api.ClusterStatus, error) {
	return adminCall[api.ClusterStatus](ctx, a, "POST", "/admin/cluster/transfer-leadership", api.ClusterTransferLeadershipRequest{To: to})
}

// Restore installs a backup stream as the cluster's state.
func (a *Admin) Restore(ctx context.Context, r io.Reader) (api.ClusterStatus, error) {
	return adminCall[api.ClusterStatus](ctx, a, "POST", "/admin/cluster/restore", r)
}
