package client

import (
	"context"

	"github.com/hostplane/hostplane/pkg/api"
)

// AdminActionQuery selects the operator's list of actions (GET
// /admin/actions); a zero field is no filter.
type AdminActionQuery struct {
	Account string // an account id or email
	Server  string // a server id (srv_…)
	Hosting string // a hosting account id (hst_…)
	Status  string // one of api.ActionStatuses
	Limit   int    // 1–200 (0: the server's default, 50)
	Cursor  string // a previous page's NextCursor
}

// Actions lists every account's actions, newest first, one page.
func (a *Admin) Actions(ctx context.Context, q AdminActionQuery) (api.AdminActionList, error) {
	v := nonEmpty(map[string]string{"account": q.Account, "server": q.Server, "hosting": q.Hosting, "status": q.Status, "cursor": q.Cursor, "limit": count(q.Limit)})
	return adminCall[api.AdminActionList](ctx, a, "GET", withQuery("/admin/actions", v), nil)
}

// Action shows one action of any account.
func (a *Admin) Action(ctx context.Context, id string) (api.AdminAction, error) {
	return adminCall[api.AdminAction](ctx, a, "GET", "/admin/actions/"+seg("id", id), nil)
}
