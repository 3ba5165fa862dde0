package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

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
	if _, err := a.loadWebhook(rq, id); err != nil {
		return 0, nil, err
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
	log := func(r store.ReadTx, owner string, offset, limit int) ([]api.WebhookAttempt, int, error) {
		return a.deliveryLog(r, owner, id, offset, limit)
	}
	status, body, err := listPage(a, rq, rq.caller.accountID, log, same[api.WebhookAttempt])
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, notFound("webhook")
	}
	return status, body, err
}

// deliveryLog pages the delivery log of an account's subscription with its
// queued rows (webhook.Queued) first, newest first, then the recorded
// attempts, newest first. A queued delivery's first attempt is recorded at
// the head of the attempts, right after the queued rows left: as the
// dispatcher sends a subscription's deliveries oldest first, the last
// queued row, the row keeps its place when it turns into its attempt (only
// attempts finishing out of their events' order, up to the in-flight limit
// per subscription, swap places), so a walk through the pages neither skips
// nor repeats it for that.
func (a *API) deliveryLog(r store.ReadTx, owner, id string, offset, limit int) ([]api.WebhookAttempt, int, error) {
	w, err := r.Webhook(owner, id)
	if err != nil {
		return nil, 0, err
	}
	queued, _ := webhook.Queued(r, a.brand, &w, webhook.MaxQueuedScan)
	var rows []api.WebhookAttempt
	if offset < len(queued) {
		rows = queued[offset:min(len(queued), offset+limit)]
	}
	logged, total, err := r.DeliveryLog(owner, id, max(0, offset-len(queued)), limit-len(rows))
	if err != nil {
		return nil, 0, err
	}
	return append(rows, logged...), total + len(queued), nil
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
