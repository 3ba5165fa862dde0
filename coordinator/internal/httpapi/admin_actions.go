package httpapi

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// GET /admin/actions: every account's actions, newest first, for the
// operator (hostplanectl action list): filters account (an id or an
// email), server (srv_…), hosting (hst_…) and status; limit 1–200 (50);
// paged by cursor as GET /v1/actions (next_cursor, the last action of the
// page). It reads the actions themselves (not the level-2 account index),
// at most adminActionMaxScan of them per page, so a filter that matches
// little can give a short page that still has a next_cursor.
// GET /admin/actions/{id}: one action of any account.
const adminActionMaxScan = 5000

// actionAdminRoutes adds the operator's action routes to mux.
func (a *API) actionAdminRoutes(mux *http.ServeMux, leader func(adminFunc) http.Handler) {
	mux.Handle("GET /admin/actions", leader(a.adminListActions))
	mux.Handle("GET /admin/actions/{id}", leader(func(r *http.Request, _ []byte, _ time.Time) (int, any, error) {
		id := r.PathValue("id")
		if !ids.Valid(actionIDPrefix, id) {
			return 0, nil, notFound("action " + strconv.Quote(id))
		}
		var act store.Action
		if err := a.state.Read(func(rt store.ReadTx) (err error) { act, err = rt.Action(id); return err }); err != nil {
			return 0, nil, err
		}
		return http.StatusOK, adminAction(act), nil
	}))
}

func adminAction(act store.Action) api.AdminAction {
	return api.AdminAction{Action: publicAction(act), AccountID: act.AccountID, NodeID: act.NodeID, Step: act.Step}
}

func (a *API) adminListActions(r *http.Request, _ []byte, _ time.Time) (int, any, error) {
	q := r.URL.Query()
	bad := func(name, want string) error {
		return &httpError{status: http.StatusBadRequest, code: "invalid_query", msg: "query parameter " + strconv.Quote(name) + " must be " + want}
	}
	limit, err := queryLimit(q)
	if err != nil {
		return 0, nil, err
	}
	one := func(name string) (string, bool, error) {
		s, ok := q[name]
		if !ok {
			return "", false, nil
		}
		if len(s) != 1 || strings.TrimSpace(s[0]) == "" {
			return "", true, bad(name, "given once, not empty")
		}
		return s[0], true, nil
	}
	cursor, _, err := one("cursor")
	if err != nil {
		return 0, nil, err
	}
	if cursor != "" && !ids.Valid(actionIDPrefix, cursor) {
		return 0, nil, bad("cursor", "the next_cursor of a previous page (an action id, act_…)")
	}
	server, _, err := one("server")
	if err != nil {
		return 0, nil, err
	}
	if server != "" && !ids.Valid(serverIDPrefix, server) {
		return 0, nil, bad("server", "a server id (srv_…)")
	}
	hosting, _, err := one("hosting")
	if err != nil {
		return 0, nil, err
	}
	if hosting != "" && !ids.Valid(hostingIDPrefix, hosting) {
		return 0, nil, bad("hosting", "a hosting account id (hst_…)")
	}
	if server != "" && hosting != "" {
		return 0, nil, bad("hosting", "left out when \"server\" is given (an action is about one resource)")
	}
	status, _, err := one("status")
	if err != nil {
		return 0, nil, err
	}
	if status != "" && !slices.Contains(api.ActionStatuses, status) {
		return 0, nil, bad("status", "one of "+strings.Join(api.ActionStatuses, ", "))
	}
	account, _, err := one("account")
	if err != nil {
		return 0, nil, err
	}
	resource := server + hosting
	var page []store.Action
	var next string
	err = a.state.Read(func(rt store.ReadTx) error {
		acc := account
		if acc != "" {
			if acc = accountRef(rt, account); !rt.AccountExists(acc) {
				return notFound("account " + strconv.Quote(account))
			}
		}
		var err error
		page, next, err = rt.AllActions(store.ActionQuery{Before: cursor, Limit: limit, MaxScan: adminActionMaxScan}, func(x *store.Action) bool {
			return (acc == "" || x.AccountID == acc) && (resource == "" || x.ResourceID == resource) && (status == "" || x.Status == status)
		})
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	out := api.AdminActionList{Data: make([]api.AdminAction, 0, len(page)), Limit: limit}
	for _, act := range page {
		out.Data = append(out.Data, adminAction(act))
	}
	if next != "" {
		out.NextCursor = &next
	}
	return http.StatusOK, out, nil
}
