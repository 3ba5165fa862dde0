package httpapi

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/hostplane/hostplane/coordinator/internal/auth"
	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// GET /v1/actions: the account's actions, newest first, each as GET
// /v1/actions/{id} shows it.
//
// Paging is by cursor, not by page number as the other lists: actions are
// made all the time (a sweep, a retry, another client), and a numbered page
// of a list that grows at its head shifts by every action made between two
// requests, showing some twice. next_cursor is the last action of the page;
// the next page starts at the newest action older than it, whatever was
// made since. A page examines at most actionListMaxScan index entries of
// the account, so a filter that matches little of a long history costs a
// bounded read: such a page can hold fewer than limit actions (even none)
// and still have a next_cursor. The end is next_cursor null.
//
// Scopes: the route lets in a key with servers:read or hosting:read (as GET
// /v1/actions/{id}); the list then holds the actions whose resource the key
// reads: a server's with servers:read, a hosting account's with
// hosting:read. Asking for resource_type=hosting without hosting:read (or
// server without servers:read) is a 403 naming the scope, as the route of
// that resource would answer. A key with neither is the route's 403.
//
// resource_id filters the caller's own actions: an id that is none of the
// caller's servers (terminated ones included) or hosting accounts is a 404,
// as on every route, and so is a cursor that is none of its actions
// (ownedActionIDs); another account's id and an unknown one get the same
// answer, so a list never says whether something of another account exists.
// A resource of the caller's that has no action is an empty list.
const actionListMaxScan = 5000

// actionListQuery is GET /v1/actions's query, checked.
type actionListQuery struct {
	limit                  int
	cursor                 string
	resourceType, resource string
	status, command        string
}

// parseActionListQuery checks q; an error is a 400 naming the parameter.
func parseActionListQuery(q url.Values) (actionListQuery, error) {
	var out actionListQuery
	bad := func(name, want string) error {
		return &httpError{status: http.StatusBadRequest, code: "invalid_query", msg: "query parameter " + strconv.Quote(name) + " must be " + want}
	}
	var err error
	if out.limit, err = queryLimit(q); err != nil {
		return out, err
	}
	if s, ok := q["cursor"]; ok && (len(s) != 1 || s[0] != "") { // cursor= (empty) is the first page
		if len(s) != 1 || !ids.Valid(actionIDPrefix, s[0]) {
			return out, bad("cursor", "the next_cursor of a previous page (an action id, act_…)")
		}
		out.cursor = s[0]
	}
	oneOfQuery := func(name string, allowed []string) (string, error) {
		s, ok := q[name]
		if !ok || len(s) == 1 && s[0] == "" { // empty: no filter, as absent
			return "", nil
		}
		if len(s) != 1 || !slices.Contains(allowed, s[0]) {
			return "", bad(name, "one of "+strings.Join(allowed, ", "))
		}
		return s[0], nil
	}
	if out.resourceType, err = oneOfQuery("resource_type", api.ActionResourceTypes); err != nil {
		return out, err
	}
	if out.status, err = oneOfQuery("status", api.ActionStatuses); err != nil {
		return out, err
	}
	if out.command, err = oneOfQuery("command", api.ActionCommands); err != nil {
		return out, err
	}
	if s, ok := q["resource_id"]; ok && (len(s) != 1 || s[0] != "") { // empty: no filter
		if len(s) != 1 || !ids.Valid(serverIDPrefix, s[0]) && !ids.Valid(hostingIDPrefix, s[0]) {
			return out, bad("resource_id", "a server id (srv_…) or a hosting account id (hst_…)")
		}
		out.resource = s[0]
	}
	return out, nil
}

// ownedActionIDs is the 404 of an id in q that is not the caller's, as on
// every route: resource_id that is none of accountID's servers (terminated
// ones included) or hosting accounts (deleted ones included), a cursor that
// is none of its actions. Another account's id and one that names nothing
// get the same answer.
func ownedActionIDs(r store.ReadTx, accountID string, q actionListQuery) error {
	if q.cursor != "" {
		if act, err := r.Action(q.cursor); errors.Is(err, store.ErrNotFound) || err == nil && act.AccountID != accountID {
			return errf(http.StatusNotFound, "not_found", "action not found (query parameter \"cursor\")")
		} else if err != nil {
			return err
		}
	}
	switch {
	case q.resource == "":
	case strings.HasPrefix(q.resource, serverIDPrefix+"_"):
		if _, err := r.OwnedServer(accountID, q.resource); errors.Is(err, store.ErrNotFound) {
			return errf(http.StatusNotFound, "not_found", "server not found (query parameter \"resource_id\")")
		} else if err != nil {
			return err
		}
	default:
		if _, err := r.OwnedHostingAccount(accountID, q.resource); errors.Is(err, store.ErrNotFound) {
			return errf(http.StatusNotFound, "not_found", "hosting account not found (query parameter \"resource_id\")")
		} else if err != nil {
			return err
		}
	}
	return nil
}

func (a *API) listActions(rq *request) (int, any, error) {
	q, err := parseActionListQuery(rq.URL.Query())
	if err != nil {
		return 0, nil, err
	}
	servers := a.brand.Scope(api.ScopeServersRead)
	hosting := a.brand.Scope(api.ScopeHostingRead)
	readServers, readHosting := auth.HasScope(rq.caller.scopes, servers), auth.HasScope(rq.caller.scopes, hosting)
	switch {
	case q.resourceType == "server" && !readServers:
		return 0, nil, errf(http.StatusForbidden, "missing_scope", "this API key lacks the %q scope (resource_type=server)", servers)
	case q.resourceType == fsm.ResourceHosting && !readHosting:
		return 0, nil, errf(http.StatusForbidden, "missing_scope", "this API key lacks the %q scope (resource_type=hosting)", hosting)
	}
	match := func(resourceType, resourceID, command string) bool {
		if resourceType == fsm.ResourceHosting {
			if !readHosting {
				return false
			}
		} else if resourceType = "server"; !readServers {
			return false
		}
		return (q.resourceType == "" || q.resourceType == resourceType) &&
			(q.resource == "" || q.resource == resourceID) && (q.command == "" || q.command == command)
	}
	var page []store.Action
	var next string
	err = a.state.Read(func(r store.ReadTx) (err error) {
		if l := r.ClusterLevel(); l < 2 {
			return &store.ActionLevelError{Have: l}
		}
		if err := ownedActionIDs(r, rq.caller.accountID, q); err != nil {
			return err
		}
		page, next, err = r.AccountActions(rq.caller.accountID, store.ActionQuery{
			Before: q.cursor, Limit: q.limit, MaxScan: actionListMaxScan, Match: match, Status: q.status})
		return err
	})
	var le *store.ActionLevelError
	if errors.As(err, &le) {
		return 0, nil, &fsm.LevelError{Need: 2, Have: le.Have}
	}
	if err != nil {
		return 0, nil, err
	}
	out := api.ActionList{Data: make([]api.Action, 0, len(page)), Limit: q.limit}
	for _, act := range page {
		out.Data = append(out.Data, publicAction(act))
	}
	if next != "" {
		out.NextCursor = &next
	}
	return http.StatusOK, out, nil
}
