package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/mail"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/auth"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/raftnode"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/brand"
	"github.com/hostplane/hostplane/pkg/validate"
	"golang.org/x/text/unicode/norm"
)

// AdminHandler serves the operator API (unix socket; also mounted under /internal
// for forwarding between coordinators). Writes on a follower are forwarded to the
// leader; cluster status and backup answer locally.
func (a *API) AdminHandler() http.Handler {
	mux := a.newAdminMux()
	leader := func(h adminFunc) http.Handler { return a.adminWrap(h, true) }
	local := func(h adminFunc) http.Handler { return a.adminWrap(h, false) }
	mux.Handle("POST /admin/accounts", leader(a.adminCreateAccount))
	mux.Handle("GET /admin/accounts/{id}", leader(a.adminGetAccount))
	mux.Handle("POST /admin/accounts/{id}/keys", leader(a.adminCreateKey))
	mux.Handle("GET /admin/accounts/{id}/keys", leader(a.adminListKeys))
	mux.Handle("POST /admin/keys/{id}/revoke", leader(a.adminRevokeKey))
	mux.Handle("GET /admin/keys/{id}/usage", leader(a.adminKeyUsage))
	mux.Handle("POST /admin/accounts/{id}/wallet/credit", leader(a.adminWalletCredit))
	mux.Handle("POST /admin/accounts/{id}/invoices", leader(a.adminIssueInvoice))
	mux.Handle("POST /admin/invoices/{id}/pay", leader(a.adminPayInvoice))
	mux.Handle("GET /admin/tickets", leader(a.adminListTickets))
	mux.Handle("GET /admin/tickets/{id}", leader(a.adminGetTicket))
	mux.Handle("POST /admin/tickets/{id}/reply", leader(a.adminStaffReply))
	mux.Handle("POST /admin/tickets/{id}/status", leader(a.adminTicketStatus))
	mux.Handle("GET /admin/cluster/status", local(a.adminClusterStatus))
	mux.Handle("POST /admin/cluster/join", leader(a.adminClusterJoin))
	mux.Handle("POST /admin/cluster/remove", leader(a.adminClusterRemove))
	mux.Handle("POST /admin/cluster/transfer-leadership", leader(a.adminClusterTransferLeadership))
	mux.Handle("POST /admin/cluster/register", leader(a.adminClusterRegister))
	mux.Handle("POST /admin/cluster/restore", leader(a.adminClusterRestore))
	mux.HandleFunc("GET /admin/cluster/backup", a.adminClusterBackup)
	mux.Handle("POST /admin/oauth/approve", leader(a.adminOAuthApprove))
	mux.Handle("GET /admin/accounts/{id}/connected-apps", leader(a.adminListConnectedApps))
	mux.Handle("POST /admin/connected-apps/{id}/revoke", leader(a.adminRevokeConnectedApp))
	mux.HandleFunc("/", a.adminUnrouted)
	return mux
}

// newAdminMux is the mux of one admin layer (AdminHandler, NodeAdmin,
// ReverseZoneAdmin, ServerAdmin): the admin fallback knows its routes.
func (a *API) newAdminMux() *http.ServeMux {
	mux := http.NewServeMux()
	a.adminMu.Lock()
	a.adminMuxes = append(a.adminMuxes, mux)
	a.adminMu.Unlock()
	return mux
}

// adminUnrouted answers what no admin route matched, as the public listener
// does: a path some layer serves with other methods is a 405 with Allow, any
// other a 404.
func (a *API) adminUnrouted(w http.ResponseWriter, r *http.Request) {
	rid := requestID(r)
	w.Header().Set(headerRequestID, rid)
	a.adminMu.Lock()
	muxes := a.adminMuxes
	a.adminMu.Unlock()
	var allow []string
	for _, m := range muxes {
		for _, meth := range allowedMethods(m, r) {
			if !slices.Contains(allow, meth) {
				allow = append(allow, meth)
			}
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, rid, api.NewError(http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed on "+r.URL.Path+"; allowed: "+strings.Join(allow, ", ")))
		return
	}
	writeError(w, rid, api.NewError(http.StatusNotFound, "route_not_found", "no such admin endpoint: "+r.Method+" "+r.URL.Path))
}

// adminQuery is the query parameters each operator route takes (by its mux
// pattern; sorted); a route not listed takes none. A name not listed, one in
// another case or one given twice is a 400 invalid_query before anything is
// read or changed, as on /v1 (queryparams.go): ignored, a script calling
// GET /admin/servers?acount=acc_1 (a typo) listed every account's servers.
// The operator API has no OpenAPI document to read them from.
var adminQuery = map[string][]string{
	"GET /admin/servers":        {"account", "node"},
	"GET /admin/actions":        {"account", "cursor", "hosting", "limit", "server", "status"},
	"GET /admin/tickets":        {"account", "limit", "status"},
	"GET /admin/domains":        {"account"},
	"GET /admin/hosting":        {"account"},
	"GET /admin/cluster/backup": {paramConsistency},
}

type adminFunc func(r *http.Request, body []byte, now time.Time) (int, any, error)

// adminRequest starts the answer to an admin request: its request id in
// the answer's header, and a query parameter its route does not take
// refused (ok false: answered). The request comes back without the
// parameters given empty: as on /v1 (queryparams.go), ?limit=, ?cursor=,
// ?status= are as if not given (the default, no filter), for every route
// in one place rather than in each handler's parsing. Before, the action
// and ticket lists refused them.
func adminRequest(w http.ResponseWriter, r *http.Request) (rid string, _ *http.Request, ok bool) {
	rid = requestID(r)
	w.Header().Set(headerRequestID, rid)
	if err := checkQuery(r, adminQuery[r.Pattern]); err != nil {
		writeErr(w, rid, err)
		return rid, r, false
	}
	return rid, withoutEmptyQuery(r), true
}

// withoutEmptyQuery is r (a shallow copy) without the query parameters
// given with an empty value (?a= or ?a), the others as they came. r's query
// has passed checkQuery: it parses, and no name is given twice.
func withoutEmptyQuery(r *http.Request) *http.Request {
	if r.URL.RawQuery == "" {
		return r
	}
	parts := strings.Split(r.URL.RawQuery, "&")
	kept := parts[:0:0]
	for _, p := range parts {
		if _, v, _ := strings.Cut(p, "="); v != "" {
			kept = append(kept, p)
		}
	}
	if len(kept) == len(parts) {
		return r
	}
	u := *r.URL
	u.RawQuery = strings.Join(kept, "&")
	r2 := r.WithContext(r.Context())
	r2.URL = &u
	return r2
}

// writeErr answers err as the API error it is (toAPIError).
func writeErr(w http.ResponseWriter, rid string, err error) {
	ae, _ := toAPIError(err)
	writeError(w, rid, ae)
}

func (a *API) adminWrap(h adminFunc, needLeader bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rid, r, ok := adminRequest(w, r)
		if !ok {
			return
		}
		restore := r.URL.Path == "/admin/cluster/restore"
		if restore {
			// A backup may take longer than the body timeout to upload: it
			// only has to keep arriving.
			r.Body = &stallBody{ReadCloser: r.Body, rc: http.NewResponseController(w), d: a.cfg.Timeouts.Body}
		}
		if needLeader && !a.raft.IsLeader() {
			a.forwardAdmin(w, r, rid)
			return
		}
		if needLeader && !a.awaitLeaderReady(r.Context()) {
			w.Header().Set("Retry-After", "1")
			writeError(w, rid, api.NewError(http.StatusServiceUnavailable, "no_leader", "leadership is changing; retry shortly"))
			return
		}
		if needLeader && isRead(r) {
			if ae := a.linearizableRead(r.Context()); ae != nil {
				w.Header().Set("Retry-After", "1")
				writeError(w, rid, ae)
				return
			}
		}
		var body []byte
		if (r.Method == http.MethodPost || r.Method == http.MethodPut) && !restore {
			var err error
			if body, err = readBody(w, r); err != nil {
				writeErr(w, rid, err)
				return
			}
		}
		status, out, err := h(r, body, a.now().UTC())
		if err != nil {
			ae, internal := toAPIError(err)
			if internal {
				a.log.Error("admin request failed", "request_id", rid, "path", r.URL.Path, "err", err)
			}
			if ae.StatusCode == http.StatusServiceUnavailable {
				// As on /v1 (wrap): a leadership change, try again shortly.
				w.Header().Set("Retry-After", "1")
			}
			writeError(w, rid, ae)
			return
		}
		a.log.Info("admin", "request_id", rid, "method", r.Method, "path", r.URL.Path, "status", status)
		writeJSON(w, status, out)
	})
}

// forwardAdmin sends an admin write to the leader's /internal/admin mount.
func (a *API) forwardAdmin(w http.ResponseWriter, r *http.Request, rid string) {
	addr := a.LeaderAPIAddr()
	if addr == "" || !a.clusterAuth() || r.Header.Get(headerForwardedBy) != "" {
		// Nothing was executed or forwarded: with Retry-After the admin
		// client sends it again while an election runs. Without a secret
		// waiting does not help, so no Retry-After.
		msg := "this coordinator is not the leader and has no cluster secret to forward with; run the command on the leader (" + addr + ")"
		if addr == "" && !a.isMember() {
			// Waiting does not help: no Retry-After.
			writeError(w, rid, api.NewError(http.StatusServiceUnavailable, "not_leader", notMemberMessage(a.cfg.NodeID)))
			return
		}
		if a.clusterAuth() || addr == "" {
			w.Header().Set("Retry-After", "1")
			msg = "this coordinator is not the leader and the leader is unknown; retry shortly"
		}
		writeError(w, rid, api.NewError(http.StatusServiceUnavailable, "not_leader", msg))
		return
	}
	r.URL.Path = "/internal" + r.URL.Path
	// A leader that hangs does not hold the operator past a new leader's
	// election, as on /v1 (forward_leadermove.go); an answer it has started
	// (a backup streaming) is not cut.
	ctx, done := a.fwd.untilAnswered(r.Context(), addr)
	defer done()
	a.fwd.proxyTo(w, r.WithContext(ctx), rid, a.fwd.leaderURL(addr))
}

func (a *API) adminApply(ctx context.Context, t fsm.CommandType, now time.Time, payload any) (any, error) {
	env, err := fsm.NewEnvelope(t, now, payload)
	if err != nil {
		return nil, err
	}
	res, err := a.apply(ctx, env)
	if err != nil {
		return nil, err
	}
	return res.Value, nil
}

// DecodeAccountCreate validates an admin account-create body.
func DecodeAccountCreate(body []byte) (api.AccountCreateRequest, error) {
	return decodeChecked(body, func(req *api.AccountCreateRequest) error {
		if err := oneLine("email", req.Email, 3, 254); err != nil {
			return err
		}
		if addr, err := mail.ParseAddress(req.Email); err != nil || addr.Address != req.Email {
			return &httpError{status: 400, code: "invalid_field", msg: `field "email" is not a valid address`}
		}
		// The e-mail index (applyAccountCreate) lower-cases by Unicode
		// rules, the operator's reference (accountRef) ASCII only, as every
		// host name: a non-ASCII capital, which the two read apart (and
		// U+212A KELVIN SIGN as another account's "k"), is refused.
		if strings.ToLower(req.Email) != validate.LowerASCII(req.Email) {
			return &httpError{status: 400, code: "invalid_field", msg: `field "email" has a capital letter outside ASCII: write it in lower case`}
		}
		// The index keys the bytes: "josé@" with é as one code point and
		// as e and a combining accent would be two accounts that print
		// alike, the second not found by the spelling a keyboard types.
		// Only the composed form (NFC, as RFC 6532 asks of a sender) is
		// taken.
		if !norm.NFC.IsNormalString(req.Email) {
			return &httpError{status: 400, code: "invalid_field", msg: `field "email" is not in Unicode normalization form C (a letter and a combining mark where one precomposed character exists): send it composed`}
		}
		if req.Name == "" {
			req.Name = req.Email
		}
		if err := oneLine("name", req.Name, 1, 200); err != nil {
			return err
		}
		if req.Country == "" {
			req.Country = "TR"
		}
		if !isCountry(req.Country) {
			return &httpError{status: 400, code: "invalid_field", msg: `field "country" must be the ISO 3166-1 alpha-2 code of a country, in upper case, such as TR`}
		}
		return nil
	})
}

func (a *API) adminCreateAccount(r *http.Request, body []byte, now time.Time) (int, any, error) {
	return adminCommand(a, r, body, now, DecodeAccountCreate, fsm.CmdAccountCreate, func(req api.AccountCreateRequest) any {
		return fsm.AccountCreate{ID: ids.New("acc", now), Email: req.Email, Name: req.Name, Country: req.Country}
	})
}

// adminCommand decodes body with decode and applies the command of type t
// that payload makes of it: 201 with the command's result.
func adminCommand[R any](a *API, r *http.Request, body []byte, now time.Time, decode func([]byte) (R, error), t fsm.CommandType, payload func(R) any) (int, any, error) {
	req, err := decode(body)
	if err != nil {
		return 0, nil, err
	}
	v, err := a.adminApply(r.Context(), t, now, payload(req))
	return http.StatusCreated, v, err
}

func (a *API) adminGetAccount(r *http.Request, _ []byte, _ time.Time) (int, any, error) {
	var acc api.Account
	err := a.state.Read(func(rt store.ReadTx) (err error) {
		acc, err = rt.Account(accountRef(rt, r.PathValue("id")))
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, notFound("account")
	}
	return http.StatusOK, acc, err
}

// accountRef is the id of the account an operator names by its id or its
// e-mail (in any case): ref itself when it is an id or no account has that
// e-mail.
func accountRef(rt store.ReadTx, ref string) string {
	if !ids.Valid("acc", ref) {
		if v := rt.AccountIDByEmail(validate.LowerASCII(ref)); v != "" {
			return v
		}
	}
	return ref
}

// DecodeKeyCreate validates an admin key-create body, filling defaults
// (scopes in the default brand's names).
func DecodeKeyCreate(body []byte, now time.Time) (api.KeyCreateRequest, error) {
	return DecodeBrandKeyCreate(nil, body, now)
}

// DecodeBrandKeyCreate is DecodeKeyCreate with scopes in b's names.
func DecodeBrandKeyCreate(b *brand.Brand, body []byte, now time.Time) (api.KeyCreateRequest, error) {
	return decodeChecked(body, func(req *api.KeyCreateRequest) error {
		if req.Name == "" {
			req.Name = "default"
		}
		if err := oneLine("name", req.Name, 1, 100); err != nil {
			return err
		}
		if len(req.Scopes) == 0 {
			req.Scopes = b.DefaultScopes()
		}
		req.ExpiresAt = inUTC(req.ExpiresAt)
		if err := checkKeyFields(b, req.Scopes, req.ExpiresAt, req.AllowedCIDRs, now); err != nil {
			return err
		}
		if req.RateLimitPerMin < 0 || req.RateLimitPerMin > 100_000_000 {
			return &httpError{status: 400, code: "invalid_field", msg: `field "rate_limit_per_min" must be 0 (default) to 100000000`}
		}
		return nil
	})
}

func (a *API) adminCreateKey(r *http.Request, body []byte, now time.Time) (int, any, error) {
	req, err := DecodeBrandKeyCreate(a.brand, body, now)
	if err != nil {
		return 0, nil, err
	}
	plain, hash, prefix := auth.NewKey(a.cfg.KeyPrefix)
	v, err := a.adminApply(r.Context(), fsm.CmdKeyCreate, now, fsm.KeyCreate{
		ID: ids.New("key", now), AccountID: r.PathValue("id"), Name: req.Name, Hash: hash, Prefix: prefix,
		Scopes: req.Scopes, ExpiresAt: req.ExpiresAt, AllowedCIDRs: req.AllowedCIDRs, RateLimitPerMin: req.RateLimitPerMin,
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, api.KeyCreated{Key: plain, Info: v.(api.KeyInfo)}, nil
}

func (a *API) adminListKeys(r *http.Request, _ []byte, _ time.Time) (int, any, error) {
	accID := r.PathValue("id")
	var out []api.KeyInfo
	err := a.state.Read(func(r store.ReadTx) (err error) {
		if !r.AccountExists(accID) {
			return store.ErrNotFound
		}
		out, err = r.AccountKeys(accID)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, notFound("account")
	}
	return http.StatusOK, out, err
}

func (a *API) adminRevokeKey(r *http.Request, _ []byte, now time.Time) (int, any, error) {
	v, err := a.adminApply(r.Context(), fsm.CmdKeyRevoke, now, fsm.KeyRevoke{ID: r.PathValue("id")})
	return http.StatusOK, v, err
}

func (a *API) adminKeyUsage(r *http.Request, _ []byte, _ time.Time) (int, any, error) {
	keyID := r.PathValue("id")
	out := []api.KeyUsage{}
	err := a.state.Read(func(r store.ReadTx) (err error) {
		if !r.KeyExists(keyID) {
			return store.ErrNotFound
		}
		out, err = r.KeyUsage(keyID, 200)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, notFound("key")
	}
	return http.StatusOK, out, err
}

// DecodeWalletCredit validates an admin wallet-credit body, filling defaults.
func DecodeWalletCredit(body []byte) (api.WalletCreditRequest, error) {
	return decodeChecked(body, func(req *api.WalletCreditRequest) error {
		if req.AmountUsdCents <= 0 || req.AmountUsdCents > 1_000_000_000_000 {
			return &httpError{status: 400, code: "invalid_field", msg: `field "amount_usd_cents" must be from 1 to 1000000000000`}
		}
		if req.Gateway == "" {
			req.Gateway = "manual"
		}
		if req.Description == "" {
			req.Description = "wallet top-up"
		}
		return firstErr(oneLine("gateway", req.Gateway, 1, 40), oneLine("description", req.Description, 1, 500))
	})
}

func (a *API) adminWalletCredit(r *http.Request, body []byte, now time.Time) (int, any, error) {
	req, err := DecodeWalletCredit(body)
	if err != nil {
		return 0, nil, err
	}
	return a.adminApplyOnce(r, body, now, fsm.CmdWalletCredit, http.StatusCreated, fsm.WalletCredit{TxID: ids.New("wtx", now),
		AccountID: r.PathValue("id"), AmountUsdCents: req.AmountUsdCents, Gateway: req.Gateway, Description: req.Description})
}

// adminApplyOnce is adminApply for the operator's money commands (a credit,
// an invoice), honouring an Idempotency-Key as /v1 does: the command's
// answer is stored with the key in the same Raft command, and a retry with
// the same key and body answers it again instead of crediting or invoicing
// twice (another body with the key is a 422). Keys are the operators' own,
// apart from every API key's.
func (a *API) adminApplyOnce(r *http.Request, body []byte, now time.Time, t fsm.CommandType, status int, payload any) (int, any, error) {
	env, err := fsm.NewEnvelope(t, now, payload)
	if err != nil {
		return 0, nil, err
	}
	key, err := idempotencyKey(r.Header)
	if err != nil {
		return 0, nil, err
	}
	if key != "" {
		sum := sha256.Sum256([]byte(r.Method + " " + r.URL.Path + "\n" + string(body)))
		env.Idem = &fsm.IdemRequest{Scope: "admin/" + key, ReqHash: hex.EncodeToString(sum[:]), Status: status, ExpiresAt: now.Add(a.cfg.IdempotencyTTL)}
	}
	res, err := a.apply(r.Context(), env)
	if err != nil {
		return 0, nil, err
	}
	if res.Replayed != nil {
		return res.Replayed.Status, json.RawMessage(res.Replayed.Body), nil
	}
	return status, res.Value, nil
}

// DecodeInvoiceIssue validates an admin invoice body into FSM line items.
func DecodeInvoiceIssue(body []byte) (api.InvoiceIssueRequest, []fsm.InvoiceLineReq, error) {
	var req api.InvoiceIssueRequest
	if err := decodeStrict(body, &req); err != nil {
		return req, nil, err
	}
	if len(req.Lines) == 0 || len(req.Lines) > 100 {
		return req, nil, &httpError{status: 400, code: "invalid_field", msg: `field "lines" needs 1 to 100 items`}
	}
	var lines []fsm.InvoiceLineReq
	for i, l := range req.Lines {
		if err := oneLine(fmt.Sprintf("lines[%d].description", i), l.Description, 1, 500); err != nil {
			return req, nil, err
		}
		if l.Quantity == 0 {
			l.Quantity = 1
		}
		if l.Quantity < 1 || l.Quantity > 10000 || l.UnitPriceUsdCents < 0 || l.UnitPriceUsdCents > 100_000_000 {
			return req, nil, &httpError{status: 400, code: "invalid_field", msg: fmt.Sprintf("lines[%d]: quantity must be 1-10000 and unit_price_usd_cents 0-100000000", i)}
		}
		lines = append(lines, fsm.InvoiceLineReq(l))
	}
	if req.DueDays == 0 {
		req.DueDays = 7
	}
	if req.DueDays < 0 || req.DueDays > 365 {
		return req, nil, &httpError{status: 400, code: "invalid_field", msg: `field "due_days" must be 1-365`}
	}
	return req, lines, nil
}

func (a *API) adminIssueInvoice(r *http.Request, body []byte, now time.Time) (int, any, error) {
	req, lines, err := DecodeInvoiceIssue(body)
	if err != nil {
		return 0, nil, err
	}
	return a.adminApplyOnce(r, body, now, fsm.CmdInvoiceIssue, http.StatusCreated, fsm.InvoiceIssue{
		ID: ids.New("inv", now), AccountID: r.PathValue("id"), Lines: lines, DueAt: now.AddDate(0, 0, req.DueDays),
		PayFromWallet: req.PayFromWallet, PaymentID: ids.New("pay", now), TxID: ids.New("wtx", now),
	})
}

func (a *API) adminPayInvoice(r *http.Request, _ []byte, now time.Time) (int, any, error) {
	v, err := a.adminApply(r.Context(), fsm.CmdInvoicePay, now, fsm.InvoicePay{
		InvoiceID: r.PathValue("id"), PaymentID: ids.New("pay", now), TxID: ids.New("wtx", now),
	})
	return http.StatusOK, v, err
}

// DecodeStaffReply validates a staff reply body.
func DecodeStaffReply(body []byte) (api.StaffReplyRequest, error) {
	return decodeChecked(body, func(req *api.StaffReplyRequest) error {
		if err := text("body", req.Body, 1, maxMessage); err != nil {
			return err
		}
		if req.StaffName == "" {
			req.StaffName = "Support"
		}
		return oneLine("staff_name", req.StaffName, 1, 100)
	})
}

func (a *API) adminStaffReply(r *http.Request, body []byte, now time.Time) (int, any, error) {
	return adminCommand(a, r, body, now, DecodeStaffReply, fsm.CmdTicketReply, func(req api.StaffReplyRequest) any {
		return fsm.TicketReply{TicketID: r.PathValue("id"), MessageID: ids.New("msg", now), Staff: true, StaffName: req.StaffName, Body: req.Body}
	})
}

func (a *API) adminTicketStatus(r *http.Request, body []byte, now time.Time) (int, any, error) {
	var req api.TicketStatusRequest
	if err := decodeStrict(body, &req); err != nil {
		return 0, nil, err
	}
	if err := oneOf("status", req.Status, api.TicketStatuses); err != nil {
		return 0, nil, err
	}
	v, err := a.adminApply(r.Context(), fsm.CmdTicketStatus, now, fsm.TicketStatus{TicketID: r.PathValue("id"), Status: req.Status})
	return http.StatusOK, v, err
}

// ClusterStatus describes the cluster as this node sees it.
func (a *API) ClusterStatus() (api.ClusterStatus, error) {
	rs := a.raft.Status()
	st := api.ClusterStatus{
		NodeID: a.cfg.NodeID, State: rs.State, LeaderID: rs.LeaderID, Term: rs.Term,
		LastIndex: rs.LastIndex, CommitIndex: rs.CommitIndex, AppliedIndex: rs.AppliedIndex, FSMBytes: a.state.Size(),
		Level: a.state.ClusterLevel(), MaxLevel: a.state.MaxLevel(),
	}
	var levels map[string]uint16
	if p := a.memberLevels.Load(); p != nil && rs.State == "Leader" {
		levels = *p
	}
	members, err := a.raft.Servers()
	if err != nil {
		return st, err
	}
	var nodes map[string]string
	_ = a.state.Read(func(r store.ReadTx) error { nodes, st.StateEpoch = r.ClusterAPIAddrs(), r.RestoreEpoch(); return nil })
	for _, s := range members {
		st.Servers = append(st.Servers, api.ClusterServer{
			ID: s.ID, RaftAddr: s.Address, APIAddr: nodes[s.ID], Suffrage: s.Suffrage, Leader: s.ID == rs.LeaderID,
			MaxLevel: levels[s.ID],
		})
	}
	if !slices.ContainsFunc(members, func(s raftnode.Server) bool { return s.ID == a.cfg.NodeID }) {
		st.Warnings = append(st.Warnings, notMemberWarning(len(members) > 0))
	}
	if a.cfg.IssuerDefaulted && len(members) > 1 {
		st.Warnings = append(st.Warnings, NoPublicURLWarning(len(members)))
	}
	if !a.clusterAuth() && len(members) > 1 {
		st.Warnings = append(st.Warnings, OpenRaftPortWarning(len(members)))
	}
	return st, nil
}

// notMemberMessage answers an admin command that needs the leader on
// coordinator id, outside the cluster's configuration, which knows no leader
// and never will until it is joined. It names id: the operator may be running
// a command about it (`cluster remove` of itself, again).
func notMemberMessage(id string) string {
	return "this coordinator (" + id + ") is no member of the cluster (not joined yet, or removed), so it knows no leader: " +
		"run the command on a member (`hostplanectl cluster status` there lists them)"
}

// notMemberWarning is the status warning of a coordinator outside its own
// Raft configuration: never joined (configured false: it knows none), or
// removed. Either serves nothing: every request is a 503.
func notMemberWarning(configured bool) string {
	if !configured {
		return "this coordinator is in no cluster yet: it serves nothing (503) until `hostplanectl cluster join ID RAFT_ADDR` " +
			"is run on a member of the cluster (or, for a new cluster, until it is started with --bootstrap)"
	}
	return "this coordinator is no member of the cluster (it was removed): it serves nothing (every request is a 503 no_leader); " +
		"stop it and take it out of the clients' and load balancers' lists, or, to bring it back, start it on an empty " +
		"--data-dir with --bootstrap=false and run `hostplanectl cluster join ID RAFT_ADDR` on a member"
}

// isMember reports whether this coordinator is in its own Raft
// configuration (true when that cannot be read: nothing is said then).
func (a *API) isMember() bool {
	members, err := a.raft.Servers()
	return err != nil || slices.ContainsFunc(members, func(s raftnode.Server) bool { return s.ID == a.cfg.NodeID })
}

// OpenRaftPortWarning says that a cluster of n coordinators without a cluster
// secret or Raft TLS serves Raft to anyone who reaches the port, and what to do.
func OpenRaftPortWarning(n int) string {
	return fmt.Sprintf("neither --cluster-secret nor --raft-tls-*, in a cluster of %d coordinators: the Raft port is open to anyone "+
		"who reaches it (any process there can send this coordinator Raft messages and rewrite the cluster's state), and "+
		"followers cannot forward admin writes to the leader; give every coordinator the same --cluster-secret-file (every Raft connection then "+
		"proves it) or --raft-tls-cert/-key/-ca (README, \"What protects the Raft port\")", n)
}

// NoPublicURLWarning says what goes wrong in a cluster of n coordinators
// started without --public-url, and what to do.
func NoPublicURLWarning(n int) string {
	return fmt.Sprintf("no --public-url, in a cluster of %d coordinators: each names its own address as the OAuth issuer and "+
		"resource, so MCP clients' OAuth sign-in breaks when it reaches another coordinator than the one it started on "+
		"(a token or code issued through one is refused by the others); set the same --public-url on every coordinator "+
		"(README, \"Connecting AI tools: OAuth\")", n)
}

func (a *API) adminClusterStatus(_ *http.Request, _ []byte, _ time.Time) (int, any, error) {
	st, err := a.ClusterStatus()
	return http.StatusOK, st, err
}

func (a *API) adminClusterJoin(r *http.Request, body []byte, now time.Time) (int, any, error) {
	req, err := decodeClusterBody(body, func(req *api.ClusterJoinRequest) string { return req.ID })
	if err != nil {
		return 0, nil, err
	}
	// A voter added at an address no coordinator can listen on is a voter
	// that never answers: on a one-node cluster that alone loses the quorum.
	if err := validHostPort("raft_addr", req.RaftAddr); err != nil {
		return 0, nil, err
	}
	if req.APIAddr != "" {
		if err := validAPIAddr(req.APIAddr); err != nil {
			return 0, nil, err
		}
	}
	// Raft would re-address a member joined again at another address (a
	// typo cuts it off), and take a second id at a member's address.
	members, err := a.raft.Servers()
	if err != nil {
		return 0, nil, err
	}
	for _, m := range members {
		switch {
		case m.ID == req.ID && m.Address != req.RaftAddr:
			return 0, nil, &httpError{status: http.StatusConflict, code: "conflict", msg: fmt.Sprintf("coordinator %q is already a member at %s; to move it, cluster remove it first", req.ID, m.Address)}
		case m.ID != req.ID && m.Address == req.RaftAddr:
			return 0, nil, &httpError{status: http.StatusConflict, code: "conflict", msg: fmt.Sprintf("raft_addr %s is already coordinator %q's", req.RaftAddr, m.ID)}
		}
	}
	if err := a.raft.Join(req.ID, req.RaftAddr); err != nil {
		return 0, nil, err
	}
	if req.APIAddr != "" {
		if err := a.registerAPIAddr(r, now, req.ID, req.APIAddr); err != nil {
			return 0, nil, err
		}
	}
	// Answered as GET /admin/cluster/status, the new member in it.
	return a.adminClusterStatus(r, nil, now)
}

func (a *API) adminClusterRegister(r *http.Request, body []byte, now time.Time) (int, any, error) {
	req, err := decodeClusterBody(body, func(req *api.ClusterRegisterRequest) string { return req.ID })
	if err != nil {
		return 0, nil, err
	}
	if err := validAPIAddr(req.APIAddr); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, req, a.registerAPIAddr(r, now, req.ID, req.APIAddr)
}

// validAPIAddr checks the api_addr field of a join or register: host:port.
func validAPIAddr(addr string) error { return validHostPort("api_addr", addr) }

// validHostPort checks that field is host:port with a host name or IP
// address and a port number from 1 to 65535 (what a coordinator can listen on
// and its peers dial).
func validHostPort(field, addr string) error {
	bad := invalidField(field, "must be host:port (a host name or IP address and a port from 1 to 65535), e.g. 10.0.0.2:8421")
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || len(addr) > 300 {
		return bad
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return bad
	}
	ip, err := netip.ParseAddr(host)
	if err != nil && validate.Hostname(validate.LowerASCII(host)) != nil {
		return bad
	}
	// An IPv6 zone is an interface name (netip takes any text there).
	if z := ip.Zone(); z != "" && (len(z) > 15 || strings.TrimLeft(z, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != "") {
		return bad
	}
	return nil
}

// registerAPIAddr records the API address of coordinator id in the FSM, where
// every member finds it to forward to.
func (a *API) registerAPIAddr(r *http.Request, now time.Time, id, addr string) error {
	_, err := a.adminApply(r.Context(), fsm.CmdNodeRegister, now, fsm.NodeRegister{ID: id, APIAddr: addr})
	return err
}

func (a *API) adminClusterRemove(_ *http.Request, body []byte, _ time.Time) (int, any, error) {
	req, err := decodeClusterBody(body, func(req *api.ClusterRemoveRequest) string { return req.ID })
	if err != nil {
		return 0, nil, err
	}
	// Removing an id that is no member would change nothing and answer as if
	// it had (a mistyped id looks removed). It may be one removed already:
	// a removal committed as the leader lost the leadership answered 503
	// no_leader, and the README says to run it again.
	members, err := a.raft.Servers()
	if err != nil {
		return 0, nil, err
	}
	if !slices.ContainsFunc(members, func(s raftnode.Server) bool { return s.ID == req.ID }) {
		return 0, nil, &httpError{status: http.StatusNotFound, code: "not_found", msg: fmt.Sprintf("coordinator %q is not a member of the cluster (already removed? see hostplanectl cluster status)", req.ID)}
	}
	// The removal commits under the configuration without the member: if
	// the voters left hold no quorum that answers, it never commits, the
	// leader steps down and no write (this one included) goes through until
	// enough of them are back.
	if msg := removalLosesQuorum(members, a.cfg.NodeID, req.ID, a.raft.Unreachable()); msg != "" && !req.Force {
		return 0, nil, &httpError{status: http.StatusConflict, code: "quorum_at_risk", msg: msg}
	}
	if err := a.raft.Remove(req.ID); err != nil {
		return 0, nil, err
	}
	st, err := a.ClusterStatus()
	return http.StatusOK, st, err
}

// removalLosesQuorum says why removing id from members would leave voters of
// which fewer than a quorum answer the leader self (unreachable: the members
// its heartbeats do not reach), or "" when enough of them answer.
func removalLosesQuorum(members []raftnode.Server, self, id string, unreachable []string) string {
	var left, down []string
	for _, m := range members {
		if m.Suffrage != "Voter" || m.ID == id {
			continue
		}
		left = append(left, m.ID)
		if m.ID != self && slices.Contains(unreachable, m.ID) {
			down = append(down, m.ID)
		}
	}
	if !slices.ContainsFunc(members, func(m raftnode.Server) bool { return m.ID == id && m.Suffrage == "Voter" }) {
		return "" // a non-voter counts for no quorum
	}
	if len(left) == 0 {
		return fmt.Sprintf("removing %s would leave the cluster without a voter; to remove it anyway pass --force (API: \"force\": true)", id)
	}
	need := len(left)/2 + 1
	if len(left)-len(down) >= need {
		return ""
	}
	return fmt.Sprintf("removing %s would leave the voters %s, and the leader's heartbeats do not reach %s: %d of %d answer, a quorum is %d, so the cluster would lose its quorum and take no write (this removal included) until enough are back; bring %s back first, or to remove it anyway pass --force (API: \"force\": true)",
		id, strings.Join(left, ", "), strings.Join(down, ", "), len(left)-len(down), len(left), need, strings.Join(down, ", "))
}

// DecodeTransferLeadership decodes and checks a transfer-leadership body: an
// optional "to" coordinator id.
func DecodeTransferLeadership(body []byte) (api.ClusterTransferLeadershipRequest, error) {
	return decodeChecked(body, func(req *api.ClusterTransferLeadershipRequest) error {
		if req.To != "" && validate.CoordinatorID(req.To) != nil {
			return &httpError{status: 400, code: "invalid_field", msg: `field "to" must be 1-64 characters of a-z, 0-9, '-', '_' and '.'`}
		}
		return nil
	})
}

// adminClusterTransferLeadership hands the leadership to another voter (before
// this leader is stopped for an upgrade) and answers with the status afterwards.
func (a *API) adminClusterTransferLeadership(_ *http.Request, body []byte, _ time.Time) (int, any, error) {
	req, err := DecodeTransferLeadership(body)
	if err != nil {
		return 0, nil, err
	}
	if err := a.raft.TransferLeadership(req.To); err != nil {
		switch {
		case errors.Is(err, raftnode.ErrNotVoter):
			return 0, nil, &httpError{status: 400, code: "invalid_field", msg: fmt.Sprintf(`field "to": %q is not another voter of the cluster`, req.To)}
		case errors.Is(err, raftnode.ErrNotLeader):
			return 0, nil, err
		}
		return 0, nil, &httpError{status: 409, code: "leadership_transfer_failed", msg: err.Error()}
	}
	st, err := a.ClusterStatus()
	return http.StatusOK, st, err
}

// decodeClusterBody decodes a join, register or remove body and checks the
// coordinator id it names (id).
func decodeClusterBody[T any](body []byte, id func(*T) string) (T, error) {
	return decodeChecked(body, func(req *T) error { return validNodeID(id(req)) })
}

// validNodeID checks a coordinator (Raft server) id with validate.CoordinatorID.
func validNodeID(id string) error {
	if validate.CoordinatorID(id) != nil {
		return &httpError{status: 400, code: "invalid_field", msg: `field "id" must be 1-64 characters of a-z, 0-9, '-', '_' and '.'`}
	}
	return nil
}

// adminClusterBackup streams a consistent copy of the cluster's state: a
// follower forwards the request to the leader, and the leader streams its
// state after a read barrier, so the copy holds every write acknowledged
// before the request (a follower's own state may be behind, by any amount when
// it is cut off from the leader). With ?consistency=stale the coordinator
// asked streams its own state, leader or not (a member cut off from the rest
// can still be backed up); X-Hostplane-Read-Consistency says which, and
// X-Hostplane-Node whose state it is.
func (a *API) adminClusterBackup(w http.ResponseWriter, r *http.Request) {
	rid, r, ok := adminRequest(w, r)
	if !ok {
		return
	}
	stale, err := staleRequested(r)
	if err != nil {
		writeErr(w, rid, err)
		return
	}
	if !stale {
		if !a.raft.IsLeader() {
			a.forwardAdmin(w, r, rid)
			return
		}
		if !a.awaitLeaderReady(r.Context()) {
			w.Header().Set("Retry-After", "1")
			writeError(w, rid, api.NewError(http.StatusServiceUnavailable, "no_leader", "leadership is changing; retry shortly"))
			return
		}
		if ae := a.linearizableRead(r.Context()); ae != nil {
			w.Header().Set("Retry-After", "1")
			writeError(w, rid, ae)
			return
		}
		w.Header().Set(headerReadConsistency, consistencyLinear)
	} else {
		w.Header().Set(headerReadConsistency, consistencyStale)
	}
	w.Header().Set("X-Hostplane-Node", a.cfg.NodeID)
	// A large state takes a while to stream: each write, not the whole, is bounded.
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	w = newStallWriter(w, a.cfg.Timeouts.Write)
	w.Header().Set("Content-Type", "application/octet-stream")
	// The index is the copy's own: read in its transaction, as its first
	// write sends the headers.
	started := false
	backup := a.backupState
	if backup == nil {
		backup = (*fsm.FSM).BackupLabelled
	}
	err = backup(a.state, w, func(applied uint64) {
		started = true
		w.Header().Set("X-Hostplane-Applied-Index", fmt.Sprint(applied))
	})
	if err != nil {
		a.log.Error("backup failed", "request_id", rid, "err", err)
		if !started {
			writeErr(w, rid, err)
			return
		}
		// The 200 and part of the copy are sent: a response ended as usual
		// would hand the client (and a follower relaying it) a cut copy as
		// a whole one. Aborted, the stream is seen broken.
		panic(http.ErrAbortHandler)
	}
}

// adminClusterRestore installs a backup as the state of the whole cluster. The
// backup's own record of coordinator API addresses belongs to the cluster it was
// taken from, so this cluster's addresses are written back right after.
func (a *API) adminClusterRestore(r *http.Request, _ []byte, now time.Time) (int, any, error) {
	before, err := a.ClusterStatus()
	if err != nil {
		return 0, nil, err
	}
	// The whole upload is read and checked first: the deliveries pause
	// for the install only, not for the transfer.
	prep, err := a.raft.PrepareRestore(io.LimitReader(r.Body, 64<<30))
	if err != nil {
		return 0, nil, &httpError{status: 400, code: "restore_failed", msg: "restore failed: " + err.Error()}
	}
	defer prep.Close()
	if d := a.webhooks.Load(); d != nil && d.HoldDeliveries != nil {
		// The dispatcher's records are read from the state the restore
		// replaces: none may apply after it (its cursor would pass the
		// backup's undelivered events). Held, it proposes nothing more;
		// the barrier waits for what it already proposed. (From semantics
		// level 11 a record the leader's group commit took before the
		// barrier and applied after the restore carries the state it was
		// read from, and its cursor is ignored: fsm.LevelRestoreEpoch.)
		release, err := d.HoldDeliveries(30 * time.Second)
		if err != nil {
			return 0, nil, &httpError{status: http.StatusServiceUnavailable, code: "restore_interrupted", cause: err,
				msg: "the webhook dispatcher did not stop within 30 s (a record of its deliveries did not finish applying); nothing was restored: run the same restore again"}
		}
		defer release()
		if err := a.raft.Barrier(30 * time.Second); err != nil {
			return 0, nil, &httpError{status: http.StatusServiceUnavailable, code: "restore_interrupted", cause: err,
				msg: "the cluster did not settle before the restore (leadership changed or no quorum); nothing was restored: run the same restore again"}
		}
	}
	if err := prep.Install(); err != nil {
		if errors.Is(err, raftnode.ErrNotLeader) {
			return 0, nil, &httpError{status: http.StatusServiceUnavailable, code: "restore_interrupted",
				msg: "leadership changed during the restore, which may be installed on some coordinators only: run the same restore again"}
		}
		if errors.Is(err, raftnode.ErrUnsettled) {
			return 0, nil, &httpError{status: http.StatusServiceUnavailable, code: "restore_interrupted", cause: err,
				msg: "the cluster did not settle before the restore (leadership changed or no quorum); nothing was restored: run the same restore again"}
		}
		return 0, nil, &httpError{status: 400, code: "restore_failed", msg: "restore failed: " + err.Error()}
	}
	for _, s := range before.Servers {
		if s.APIAddr == "" {
			continue
		}
		if _, err := a.adminApply(r.Context(), fsm.CmdNodeRegister, now, fsm.NodeRegister{ID: s.ID, APIAddr: s.APIAddr}); err != nil {
			return 0, nil, fmt.Errorf("re-register %s after restore: %w", s.ID, err)
		}
	}
	st, err := a.ClusterStatus()
	return http.StatusOK, st, err
}
