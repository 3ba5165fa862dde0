package httpapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// DecodeAdminSuspend validates an operator's suspension body: the reason
// the customer is shown (1-500 characters).
func DecodeAdminSuspend(body []byte) (api.AdminSuspendRequest, error) {
	return decodeChecked(body, func(req *api.AdminSuspendRequest) error {
		req.Reason = strings.TrimSpace(req.Reason)
		if req.Reason == "" {
			return invalidField("reason", "is required: the customer is shown why")
		}
		return oneLine("reason", req.Reason, 1, 500)
	})
}

// suspendAdminRoutes are an operator's suspension and unsuspension of a
// server or hosting account (`hostplanectl server|hosting suspend|unsuspend`).
func (a *API) suspendAdminRoutes(mux *http.ServeMux, leader func(adminFunc) http.Handler) {
	refOf := map[string]func(rt store.ReadTx, id string) (fsm.ServiceRef, error){
		"servers": func(rt store.ReadTx, id string) (fsm.ServiceRef, error) {
			s, err := rt.Server(id)
			return fsm.ServiceRef{AccountID: s.AccountID, ServerID: s.ID}, err
		},
		"hosting": func(rt store.ReadTx, id string) (fsm.ServiceRef, error) {
			h, err := rt.HostingAccountByID(id)
			return fsm.ServiceRef{AccountID: h.AccountID, HostingID: h.ID}, err
		},
	}
	for kind, lookup := range refOf {
		for _, suspend := range []bool{true, false} {
			verb := map[bool]string{true: "suspend", false: "unsuspend"}[suspend]
			mux.Handle("POST /admin/"+kind+"/{id}/"+verb, leader(func(r *http.Request, body []byte, now time.Time) (int, any, error) {
				p := fsm.ServiceSuspend{Suspend: suspend}
				if suspend {
					req, err := DecodeAdminSuspend(body)
					if err != nil {
						return 0, nil, err
					}
					p.Reason = req.Reason
				} else if err := decodeNoBody(body); err != nil {
					return 0, nil, err
				}
				err := a.state.Read(func(rt store.ReadTx) (err error) { p.Ref, err = lookup(rt, r.PathValue("id")); return })
				if err != nil {
					return 0, nil, err
				}
				if deps, err := a.serverDeps(); err == nil {
					p.ActionDeadlineSeconds = int(deps.actionDeadline() / time.Second)
				}
				v, err := a.adminApply(r.Context(), fsm.CmdServiceSuspend, now, p)
				if err != nil {
					return 0, nil, err
				}
				res, _ := v.(fsm.ServiceSuspended)
				out := api.AdminSuspension{ActionID: res.ActionID}
				if s := res.Suspension; s != nil {
					at := s.At
					out.Suspended, out.By, out.Reason, out.Since = true, s.By, s.Reason, &at
				}
				if deps, err := a.serverDeps(); err == nil && res.ActionID != "" {
					deps.Kick()
				}
				a.log.Info("operator "+verb, "resource", r.PathValue("id"), "action", res.ActionID)
				return http.StatusOK, out, nil
			}))
		}
	}
}
