package client_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hostplane/hostplane/pkg/client"
)

// TestListQueries: the list methods with filters send each filter given,
// and nothing for one left empty (0 for a limit); a statuses list is sent
// even when it joins to "" (the server then names the bad status). The
// request-URIs as sent, query keys sorted.
func TestListQueries(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	c := client.New(srv.URL, "k")
	adm := &client.Admin{Socket: "test", HTTP: &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", srv.Listener.Addr().String())
	}}}}
	ctx := context.Background()
	for _, tc := range []struct {
		call func() error
		want string
	}{
		{func() error { _, err := adm.Actions(ctx, client.AdminActionQuery{}); return err }, "/admin/actions"},
		{func() error {
			_, err := adm.Actions(ctx, client.AdminActionQuery{Account: "a@x.org", Server: "srv_1", Hosting: "hst_1", Status: "failed", Limit: 7, Cursor: "c 1"})
			return err
		}, "/admin/actions?account=a%40x.org&cursor=c+1&hosting=hst_1&limit=7&server=srv_1&status=failed"},
		{func() error { _, err := adm.Actions(ctx, client.AdminActionQuery{Server: "srv_1"}); return err }, "/admin/actions?server=srv_1"},
		{func() error { _, err := adm.Tickets(ctx, client.AdminTicketQuery{}); return err }, "/admin/tickets"},
		{func() error {
			_, err := adm.Tickets(ctx, client.AdminTicketQuery{Statuses: []string{"open", "answered"}, Account: "acc_1", Limit: 3})
			return err
		}, "/admin/tickets?account=acc_1&limit=3&status=open%2Canswered"},
		{func() error { _, err := adm.Tickets(ctx, client.AdminTicketQuery{Statuses: []string{""}}); return err }, "/admin/tickets?status="},
		{func() error { _, err := adm.Tickets(ctx, client.AdminTicketQuery{Limit: -1}); return err }, "/admin/tickets?limit=-1"},
		{func() error { _, err := adm.Servers(ctx, "", ""); return err }, "/admin/servers"},
		{func() error { _, err := adm.Servers(ctx, "acc_1", "node-1"); return err }, "/admin/servers?account=acc_1&node=node-1"},
		{func() error { _, err := adm.Servers(ctx, "", "node-1"); return err }, "/admin/servers?node=node-1"},
		{func() error { _, err := c.Actions(ctx, client.ActionsQuery{}); return err }, "/v1/actions"},
		{func() error {
			_, err := c.Actions(ctx, client.ActionsQuery{Limit: 20, Cursor: "c", ResourceType: "server", ResourceID: "srv_1", Status: "running", Command: "power"})
			return err
		}, "/v1/actions?command=power&cursor=c&limit=20&resource_id=srv_1&resource_type=server&status=running"},
		{func() error { _, err := c.Actions(ctx, client.ActionsQuery{Limit: 5}); return err }, "/v1/actions?limit=5"},
		{func() error { _, err := c.ListTickets(ctx, client.ListQuery{}); return err }, "/v1/tickets"},
		{func() error { _, err := c.ListTickets(ctx, client.ListQuery{Limit: 2, Cursor: "tkt_1"}); return err }, "/v1/tickets?cursor=tkt_1&limit=2"},
		{func() error { _, err := c.ListWebhooks(ctx, client.ListQuery{Page: 3, Limit: 2}); return err }, "/v1/webhooks?limit=2&page=3"},
		{func() error { _, err := c.ListServers(ctx, client.ListQuery{Cursor: "srv_1"}); return err }, "/v1/servers?cursor=srv_1"},
		{func() error { _, err := c.ListAccountIPs(ctx, client.ListQuery{Cursor: "srv_1"}); return err }, "/v1/servers/ips?cursor=srv_1"},
		{func() error { _, err := c.ListHosting(ctx, client.ListQuery{Cursor: "hst_1"}); return err }, "/v1/hosting?cursor=hst_1"},
		{func() error { _, err := c.ListDomains(ctx, client.ListQuery{Cursor: "dom_1"}); return err }, "/v1/domains?cursor=dom_1"},
		{func() error { _, err := c.ListInvoices(ctx, client.ListQuery{Cursor: "inv_1"}); return err }, "/v1/billing/invoices?cursor=inv_1"},
		{func() error { _, err := c.ListWalletTransactions(ctx, client.ListQuery{Cursor: "wtx_1"}); return err }, "/v1/billing/wallet/transactions?cursor=wtx_1"},
		{func() error {
			_, err := c.ListWebhookDeliveries(ctx, "wh_1", client.ListQuery{Limit: 3, Cursor: "ZAbc-_"})
			return err
		}, "/v1/webhooks/wh_1/deliveries?cursor=ZAbc-_&limit=3"},
		{func() error { _, err := c.ListWebhookDeliveries(ctx, "wh_1", client.ListQuery{}); return err }, "/v1/webhooks/wh_1/deliveries"},
		{func() error { _, err := c.ListAPIKeyUsage(ctx, "key_1", client.ListQuery{Cursor: "dQ"}); return err }, "/v1/account/api-keys/key_1/usage?cursor=dQ"},
	} {
		if err := tc.call(); err == nil {
			t.Fatalf("%s: the recorder answers 404, the call succeeded", tc.want)
		}
		if got := rec.take(); len(got) != 1 || got[0] != tc.want {
			t.Errorf("sent %q, want [%q]", got, tc.want)
		}
	}
}
