package httpapi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/coordinator/internal/webhook"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/brand"
)

const (
	maxWebhookDescription = 500
	maxWebhookEvents      = 64
)

// WebhookDeps is what the webhook routes need beyond the API's own state.
type WebhookDeps struct {
	Sealer        *webhook.Sealer // seals new secrets under the KEK
	Guard         *webhook.Guard  // SSRF rules for subscription URLs
	MaxPerAccount int             // 0: no cap
	// Fetch is a client under the same SSRF rules for other outbound GETs
	// (OAuth client ID metadata documents); nil: Guard.Client with defaults.
	Fetch *http.Client
	// HoldDeliveries, if set, stops the webhook dispatcher until release
	// is called, waiting at most timeout for it to stop
	// (webhook.Dispatcher.HoldWithin): a cluster restore holds it.
	HoldDeliveries func(timeout time.Duration) (release func(), err error)
}

// SetWebhookDeps installs the webhook routes' dependencies; until it is called
// those routes answer 503.
func (a *API) SetWebhookDeps(d *WebhookDeps) { a.webhooks.Store(d) }

func (a *API) webhookDeps() (*WebhookDeps, error) {
	if d := a.webhooks.Load(); d != nil {
		return d, nil
	}
	return nil, errf(http.StatusServiceUnavailable, "webhooks_unavailable", "webhooks are starting on this coordinator; retry shortly")
}

// webhookRoutes are the /v1/webhooks operations.
func (a *API) webhookRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/v1/webhooks", Scope: api.ScopeWebhooksRead, handler: a.listWebhooks},
		{Method: "POST", Path: "/v1/webhooks", Scope: api.ScopeWebhooksWrite, Idempotent: true, handler: a.createWebhook},
		{Method: "GET", Path: "/v1/webhooks/{id}", Scope: api.ScopeWebhooksRead, handler: a.getWebhook},
		{Method: "PATCH", Path: "/v1/webhooks/{id}", Scope: api.ScopeWebhooksWrite, handler: a.updateWebhook},
		{Method: "DELETE", Path: "/v1/webhooks/{id}", Scope: api.ScopeWebhooksWrite, handler: a.deleteWebhook},
		{Method: "POST", Path: "/v1/webhooks/{id}/rotate-secret", Scope: api.ScopeWebhooksWrite, handler: a.rotateWebhookSecret},
		{Method: "GET", Path: "/v1/webhooks/{id}/deliveries", Scope: api.ScopeWebhooksRead, handler: a.listWebhookDeliveries},
		{Method: "POST", Path: "/v1/webhooks/{id}/deliveries/{deliveryId}/redeliver", Scope: api.ScopeWebhooksWrite, Idempotent: true, handler: a.redeliverWebhook},
	}
}

func invalidField(field, format string, args ...any) *httpError {
	return &httpError{status: http.StatusBadRequest, code: "invalid_field", msg: fmt.Sprintf("field %q ", field) + fmt.Sprintf(format, args...)}
}

// normalizeEvents checks event names against the catalogue: ["*"] or known
// names, duplicates removed.
func normalizeEvents(b *brand.Brand, evs []string) ([]string, error) {
	if len(evs) == 0 {
		return nil, invalidField("events", `must list at least one event, or ["*"] for all`)
	}
	if len(evs) > maxWebhookEvents {
		return nil, invalidField("events", "lists more than %d entries", maxWebhookEvents)
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(evs))
	all := false
	for _, e := range evs {
		switch {
		case e == api.WebhookEventAll:
			all = true
		case b.Event(b.CanonicalEvent(e)) == e && api.IsWebhookEvent(b.CanonicalEvent(e)):
			if !seen[e] {
				seen[e] = true
				out = append(out, e)
			}
		default:
			shown := e
			if len(shown) > 64 {
				shown = shown[:64] + "…"
			}
			return nil, &httpError{status: http.StatusBadRequest, code: "unknown_event", msg: fmt.Sprintf(
				"field \"events\": unknown event %q; valid events are \"*\" (all) and %s", strings.ToValidUTF8(shown, "?"), strings.Join(brandEventNames(b), ", "))}
		}
	}
	if all {
		return []string{api.WebhookEventAll}, nil
	}
	return out, nil
}

func checkWebhookURL(g *webhook.Guard, raw string) error {
	if err := text("url", raw, 1, webhook.MaxURLLength); err != nil {
		return err
	}
	if _, err := g.ParseURL(raw); err != nil {
		return urlRefused(err)
	}
	return nil
}

func urlRefused(err error) error {
	return &httpError{status: http.StatusBadRequest, code: "webhook_url_refused", msg: "field \"url\": " + err.Error()}
}

// DecodeWebhookCreate validates a POST /v1/webhooks body. It checks the URL's
// form with g but does no DNS; the handler resolves it afterwards.
func DecodeWebhookCreate(body []byte, g *webhook.Guard) (api.WebhookCreateRequest, error) {
	return DecodeBrandWebhookCreate(nil, body, g)
}

// brandEventNames is the event catalogue in b's names.
func brandEventNames(b *brand.Brand) []string {
	names := api.WebhookEventNames()
	for i, n := range names {
		names[i] = b.Event(n)
	}
	return names
}

// DecodeBrandWebhookCreate is DecodeWebhookCreate with event names in b's.
func DecodeBrandWebhookCreate(b *brand.Brand, body []byte, g *webhook.Guard) (api.WebhookCreateRequest, error) {
	return decodeChecked(body, func(req *api.WebhookCreateRequest) error {
		if err := checkWebhookURL(g, req.URL); err != nil {
			return err
		}
		evs, err := normalizeEvents(b, req.Events)
		if err != nil {
			return err
		}
		req.Events = evs
		return text("description", req.Description, 0, maxWebhookDescription)
	})
}

// DecodeWebhookUpdate validates a PATCH /v1/webhooks/:id body; isActive and
// is_active are synonyms (IsActive holds the result).
func DecodeWebhookUpdate(body []byte, g *webhook.Guard) (api.WebhookUpdateRequest, error) {
	return DecodeBrandWebhookUpdate(nil, body, g)
}

// DecodeBrandWebhookUpdate is DecodeWebhookUpdate with event names in b's.
func DecodeBrandWebhookUpdate(b *brand.Brand, body []byte, g *webhook.Guard) (api.WebhookUpdateRequest, error) {
	return decodeChecked(body, func(req *api.WebhookUpdateRequest) error {
		if req.IsActiveAlt != nil {
			if req.IsActive != nil && *req.IsActive != *req.IsActiveAlt {
				return badRequest("isActive and is_active disagree; send one of them")
			}
			req.IsActive, req.IsActiveAlt = req.IsActiveAlt, nil
		}
		if req.URL == nil && req.Events == nil && req.Description == nil && req.IsActive == nil {
			return badRequest("nothing to change: send at least one of url, events, description, isActive")
		}
		if req.URL != nil {
			if err := checkWebhookURL(g, *req.URL); err != nil {
				return err
			}
		}
		if req.Events != nil {
			evs, err := normalizeEvents(b, *req.Events)
			if err != nil {
				return err
			}
			req.Events = &evs
		}
		if req.Description != nil {
			return text("description", *req.Description, 0, maxWebhookDescription)
		}
		return nil
	})
}

func webhookID(rq *request) (string, error) { return pathID(rq, "wh", "webhook") }

func (a *API) loadWebhook(rq *request, id string) (store.Webhook, error) {
	return readOne(a, "webhook", func(r store.ReadTx) (store.Webhook, error) { return r.Webhook(rq.caller.accountID, id) })
}

func (a *API) listWebhooks(rq *request) (int, any, error) {
	return listWalk(a, rq, rq.caller.accountID, "wh", store.ReadTx.WebhooksAt, store.Webhook.Public)
}

func (a *API) getWebhook(rq *request) (int, any, error) {
	id, err := webhookID(rq)
	if err != nil {
		return 0, nil, err
	}
	w, err := a.loadWebhook(rq, id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, w.Public(), nil
}

func (a *API) createWebhook(rq *request) (int, any, error) {
	deps, err := a.webhookDeps()
	if err != nil {
		return 0, nil, err
	}
	req, err := DecodeBrandWebhookCreate(a.brand, rq.body, deps.Guard)
	if err != nil {
		return 0, nil, err
	}
	if _, err := deps.Guard.CheckURL(rq.Context(), req.URL); err != nil {
		return 0, nil, urlRefused(err)
	}
	id := ids.New("wh", rq.now)
	return a.proposeWithSecret(rq, deps, id, fsm.CmdWebhookCreate, http.StatusCreated, func(sealed, hint string) any {
		return fsm.WebhookCreate{
			ID: id, AccountID: rq.caller.accountID, URL: req.URL, Events: req.Events, Description: req.Description,
			SealedSecret: sealed, SecretHint: hint, MaxPerAccount: deps.MaxPerAccount,
		}
	})
}

// proposeWithSecret makes a new signing secret for subscription id, proposes
// the command payload builds around its sealed form, and shows the secret in
// the answer: the only time it leaves the coordinator (a replay of the request,
// Idempotency-Key, returns the masked form).
func (a *API) proposeWithSecret(rq *request, deps *WebhookDeps, id string, t fsm.CommandType, status int, payload func(sealed, hint string) any) (int, any, error) {
	secret, hint := webhook.NewSecret()
	sealed, err := deps.Sealer.Seal(id, secret)
	if err != nil {
		return 0, nil, err
	}
	status, v, err := a.propose(rq.Context(), rq, t, payload(sealed, hint), status)
	if w, ok := v.(api.Webhook); ok && err == nil {
		w.Secret = secret
		v = w
	}
	return status, v, err
}

// webhookTarget is the webhook settings and the subscription id of the {id}
// path value, for the routes that change a subscription.
func (a *API) webhookTarget(rq *request) (*WebhookDeps, string, error) {
	deps, err := a.webhookDeps()
	if err != nil {
		return nil, "", err
	}
	id, err := webhookID(rq)
	return deps, id, err
}

func (a *API) updateWebhook(rq *request) (int, any, error) {
	deps, id, err := a.webhookTarget(rq)
	if err != nil {
		return 0, nil, err
	}
	req, err := DecodeBrandWebhookUpdate(a.brand, rq.body, deps.Guard)
	if err != nil {
		return 0, nil, err
	}
	// A PATCH that changes nothing answers the subscription as it is.
	w, same, err := unchanged(a, rq, func() (store.Webhook, error) { return a.loadWebhook(rq, id) }, func(w store.Webhook) bool {
		return (req.URL == nil || *req.URL == w.URL) && (req.Events == nil || slices.Equal(*req.Events, w.Events)) &&
			(req.Description == nil || *req.Description == w.Description) && (req.IsActive == nil || *req.IsActive == w.Active)
	})
	if err != nil {
		return 0, nil, err
	}
	if same {
		return http.StatusOK, w.Public(), nil
	}
	if req.URL != nil {
		if _, err := deps.Guard.CheckURL(rq.Context(), *req.URL); err != nil {
			return 0, nil, urlRefused(err)
		}
	}
	return a.propose(rq.Context(), rq, fsm.CmdWebhookUpdate, fsm.WebhookUpdate{
		ID: id, AccountID: rq.caller.accountID, URL: req.URL, Events: req.Events, Description: req.Description, Active: req.IsActive,
	}, http.StatusOK)
}

func (a *API) deleteWebhook(rq *request) (int, any, error) {
	id, err := webhookID(rq)
	if err != nil {
		return 0, nil, err
	}
	if _, _, err := a.propose(rq.Context(), rq, fsm.CmdWebhookDelete, fsm.WebhookDelete{ID: id, AccountID: rq.caller.accountID}, http.StatusOK); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"id": id, "deleted": true}, nil
}

func (a *API) rotateWebhookSecret(rq *request) (int, any, error) {
	deps, id, err := a.webhookTarget(rq)
	if err != nil {
		return 0, nil, err
	}
	if err := decodeEmptyObject(rq.body); err != nil {
		return 0, nil, err
	}
	if _, err := a.loadWebhook(rq, id); err != nil {
		return 0, nil, err
	}
	return a.proposeWithSecret(rq, deps, id, fsm.CmdWebhookRotateSecret, http.StatusOK, func(sealed, hint string) any {
		return fsm.WebhookRotateSecret{ID: id, AccountID: rq.caller.accountID, SealedSecret: sealed, SecretHint: hint}
	})
}

func (a *API) listWebhookDeliveries(rq *request) (int, any, error) {
	id, err := webhookID(rq)
	if err != nil {
		return 0, nil, err
	}
	cursor, page, limit, err := pagingToken(rq.Request)
	if err != nil {
		return 0, nil, err
	}
	var at deliveryAt
	if cursor != "" {
		pos, err := openListToken(cursor, tokenDeliveries, rq.caller.accountID, id)
		if err != nil {
			return 0, nil, err
		}
		if at, err = decodeDeliveryAt(pos); err != nil {
			return 0, nil, err
		}
	}
	out := api.Page[api.WebhookAttempt]{Page: page, Limit: limit}
	var next *deliveryAt
	err = a.state.Read(func(r store.ReadTx) (err error) {
		out.Data, out.Total, next, err = a.deliveryLog(r, rq.caller.accountID, id, at, max(0, page-1)*limit, limit)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, notFound("webhook")
	}
	if err != nil {
		return 0, nil, err
	}
	var pos []byte
	if next != nil {
		pos = next.encode()
	}
	return tokenPage(rq, out, tokenDeliveries, id, pos)
}

// deliveryAt is a place in a subscription's delivery log (deliveryLog), the
// position a delivery-log cursor holds: the zero value is the head.
type deliveryAt struct {
	// Queued is the delivery id of the last queued row the walk showed, ""
	// before any: the walk goes on with the queued rows below it and, among
	// the attempts logged since the walk began, with the first attempts of
	// those deliveries only.
	Queued string
	// Since is the seq of the newest attempt logged when the walk began.
	Since uint64
	// Below is the seq of the last attempt the walk showed, 0 before any
	// (while in the queued rows).
	Below uint64
}

func (at deliveryAt) encode() []byte {
	b := binary.BigEndian.AppendUint64(nil, at.Since)
	b = binary.BigEndian.AppendUint64(b, at.Below)
	return append(b, at.Queued...)
}

func decodeDeliveryAt(b []byte) (deliveryAt, error) {
	if len(b) < 16 || len(b) > 16 && !ids.Valid("dlv", string(b[16:])) {
		return deliveryAt{}, badListToken()
	}
	return deliveryAt{Since: binary.BigEndian.Uint64(b), Below: binary.BigEndian.Uint64(b[8:]), Queued: string(b[16:])}, nil
}

// deliveryLog is one page of the delivery log of an account's subscription,
// from at, the first offset rows passed over (page numbers), with the
// total and the place of the page's last row when another row follows (nil
// at the end). The log is the queued rows (webhook.Queued), newest
// delivery first, then the logged attempts, newest first. A walk shows a
// delivery not attempted yet once, whether it is still queued when the walk
// reaches it or attempted by then: a queued row's first attempt is logged
// at the head of the attempts, newer than every attempt the walk began
// with (Since), so the walk takes, of those, only the first attempts of
// the deliveries it has yet to reach among the queued rows (Queued), and
// once past the queued rows, the attempts below the last it showed (a
// first attempt logged after the page is newer still). Attempts logged
// since the walk began that are not such first attempts (a retry, a
// redeliver) are newer than the walk, as new items are in every list.
// A page reads the queued rows it needs out of webhook.Queued's (which
// the total counts) and the logged attempts from where it starts.
func (a *API) deliveryLog(r store.ReadTx, owner, id string, at deliveryAt, offset, limit int) (rows []api.WebhookAttempt, total int, next *deliveryAt, err error) {
	w, err := r.Webhook(owner, id)
	if err != nil {
		return nil, 0, nil, err
	}
	logged, newest, err := r.DeliveryLogSize(owner, id)
	if err != nil {
		return nil, 0, nil, err
	}
	queued, _ := webhook.Queued(r, a.brand, &w, webhook.MaxQueuedScan)
	total = len(queued) + logged
	if at == (deliveryAt{}) {
		at.Since = newest
	}
	rows = []api.WebhookAttempt{}
	last := at
	if at.Below == 0 {
		i := 0
		if at.Queued != "" {
			// Newest delivery first: the rows below at.Queued.
			i = sort.Search(len(queued), func(i int) bool { return queued[i].DeliveryID < at.Queued })
		}
		skip := min(offset, len(queued)-i)
		i, offset = i+skip, offset-skip
		for ; i < len(queued) && len(rows) < limit; i++ {
			rows = append(rows, queued[i])
			last.Queued = queued[i].DeliveryID
		}
		if i < len(queued) {
			return rows, total, &last, nil
		}
	}
	more := false
	err = r.DeliveryLogBelow(id, at.Below, offset, func(seq uint64, att api.WebhookAttempt) (bool, error) {
		if seq > at.Since && (att.Chain != 1 || att.Attempt != 1 || at.Queued != "" && att.DeliveryID >= at.Queued) {
			return true, nil // logged since the walk began, and no queued row it has yet to show
		}
		if len(rows) == limit {
			more = true
			return false, nil
		}
		att.DeliveryStatus = r.DeliveryStatus(id, att.DeliveryID)
		rows = append(rows, att)
		last.Below = seq
		return true, nil
	})
	if err != nil || !more {
		return rows, total, nil, err
	}
	if last.Below != at.Below {
		last.Queued = at.Queued // past the queued rows: the walk's filter of new first attempts stays
	}
	return rows, total, &last, nil
}

// queuedDelivery reports whether dlv is a queued delivery of an account's
// subscription: not recorded yet, its event waiting for the dispatcher.
func (a *API) queuedDelivery(owner, id, dlv string) bool {
	found := false
	_ = a.state.Read(func(r store.ReadTx) error {
		w, err := r.Webhook(owner, id)
		if err != nil || r.DeliveryExists(id, dlv) {
			return nil
		}
		queued, _ := webhook.Queued(r, a.brand, &w, webhook.MaxQueuedScan)
		for _, q := range queued {
			found = found || q.DeliveryID == dlv
		}
		return nil
	})
	return found
}

func (a *API) redeliverWebhook(rq *request) (int, any, error) {
	id, err := webhookID(rq)
	if err != nil {
		return 0, nil, err
	}
	dlv := rq.PathValue("deliveryId")
	if !ids.Valid("dlv", dlv) {
		return 0, nil, notFound("delivery")
	}
	if err := decodeEmptyObject(rq.body); err != nil {
		return 0, nil, err
	}
	status, v, err := a.propose(rq.Context(), rq, fsm.CmdWebhookRedeliver, fsm.WebhookRedeliver{
		WebhookID: id, AccountID: rq.caller.accountID, DeliveryID: dlv,
	}, http.StatusAccepted)
	if errors.Is(err, fsm.ErrNotFound) && a.queuedDelivery(rq.caller.accountID, id, dlv) {
		return 0, nil, errf(http.StatusConflict, "not_attempted_yet",
			"delivery %s is queued: its first attempt has not been made yet; redeliver it once it has (its outcome in the delivery log is no longer \"queued\")", dlv)
	}
	return status, v, err
}
