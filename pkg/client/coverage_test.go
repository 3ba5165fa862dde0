package client_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
)

// discard is err alone, for a call whose answer the table does not look at.
func discard[T any](_ T, err error) error { return err }

// v1Calls maps every operationId of the public API to a call of the client
// method that serves it. TestClientCoversOpenAPI fails when the document has an
// operation this table lacks, and when a call sends another method or path
// than the document says.
var v1Calls = map[string]func(ctx context.Context, c *client.Client) error{
	"listDomains": func(ctx context.Context, c *client.Client) error { return discard(c.Domains(ctx, 1, 20)) },
	"getDomain":   func(ctx context.Context, c *client.Client) error { return discard(c.Domain(ctx, "dom_1")) },
	"checkDomain": func(ctx context.Context, c *client.Client) error { return discard(c.CheckDomain(ctx, "example.com")) },
	"registerDomain": func(ctx context.Context, c *client.Client) error {
		return discard(c.RegisterDomain(ctx, api.DomainOrderRequest{Name: "example.com"}, "k"))
	},
	"transferDomain": func(ctx context.Context, c *client.Client) error {
		return discard(c.TransferDomain(ctx, api.DomainTransferRequest{Name: "example.com", AuthCode: "x"}, "k"))
	},
	"quoteDomainTransfer": func(ctx context.Context, c *client.Client) error {
		return discard(c.QuoteDomainTransfer(ctx, api.DomainTransferRequest{Name: "example.com", AuthCode: "x"}))
	},
	"quoteDomain": func(ctx context.Context, c *client.Client) error {
		return discard(c.QuoteDomain(ctx, api.DomainOrderRequest{Name: "example.com"}))
	},
	"updateDomain": func(ctx context.Context, c *client.Client) error {
		return discard(c.UpdateDomain(ctx, "dom_1", api.DomainUpdateRequest{Nameservers: []string{"ns1.example.net", "ns2.example.net"}}, "k"))
	},
	"putDomainHost": func(ctx context.Context, c *client.Client) error {
		return discard(c.SetDomainHost(ctx, "dom_1", "ns1.example.com", api.DomainHostRequest{Addresses: []string{"8.8.8.8"}}, "k"))
	},
	"deleteDomainHost": func(ctx context.Context, c *client.Client) error {
		return discard(c.DeleteDomainHost(ctx, "dom_1", "ns1.example.com", "k"))
	},
	"listHosting":     func(ctx context.Context, c *client.Client) error { return discard(c.Hosting(ctx, 1, 20)) },
	"getCustomDomain": func(ctx context.Context, c *client.Client) error { return discard(c.CustomDomain(ctx, "hst_1")) },
	"setCustomDomain": func(ctx context.Context, c *client.Client) error {
		return discard(c.SetCustomDomain(ctx, "hst_1", "shop.example.com", "k"))
	},
	"verifyCustomDomain": func(ctx context.Context, c *client.Client) error { return discard(c.VerifyCustomDomain(ctx, "hst_1")) },
	"retryCertificate":   func(ctx context.Context, c *client.Client) error { return discard(c.RetryCertificate(ctx, "hst_1")) },
	"deleteCustomDomain": func(ctx context.Context, c *client.Client) error {
		return c.DeleteCustomDomain(ctx, "hst_1", "k")
	},
	"getHosting":     func(ctx context.Context, c *client.Client) error { return discard(c.HostingAccount(ctx, "hst_1")) },
	"suspendHosting": func(ctx context.Context, c *client.Client) error { return discard(c.SuspendHosting(ctx, "hst_1", "k")) },
	"unsuspendHosting": func(ctx context.Context, c *client.Client) error {
		return discard(c.UnsuspendHosting(ctx, "hst_1", "k"))
	},
	"setHostingPHP": func(ctx context.Context, c *client.Client) error {
		return discard(c.SetHostingPHP(ctx, "hst_1", "8.2", "k"))
	},
	"resetHostingPassword": func(ctx context.Context, c *client.Client) error {
		return discard(c.ResetHostingPassword(ctx, "hst_1", api.HostingPasswordDB))
	},
	"deleteHosting":   func(ctx context.Context, c *client.Client) error { return discard(c.DeleteHosting(ctx, "hst_1", "k")) },
	"getAccount":      func(ctx context.Context, c *client.Client) error { return discard(c.Account(ctx)) },
	"listProducts":    func(ctx context.Context, c *client.Client) error { return discard(c.Products(ctx)) },
	"listOSTemplates": func(ctx context.Context, c *client.Client) error { return discard(c.OSTemplates(ctx)) },
	"quoteServer": func(ctx context.Context, c *client.Client) error {
		return discard(c.QuoteServer(ctx, api.ServerOrderRequest{PlanSlug: "vps-2", Hostname: "web-1", OSTemplate: "debian-12"}))
	},
	"orderServer": func(ctx context.Context, c *client.Client) error {
		return discard(c.OrderServer(ctx, api.ServerOrderRequest{PlanSlug: "vps-2", Hostname: "web-1", OSTemplate: "debian-12"}, "k"))
	},
	"quoteHosting": func(ctx context.Context, c *client.Client) error {
		return discard(c.QuoteHosting(ctx, api.HostingOrderRequest{PlanSlug: "web-1", Domain: "shop.example.com", Username: "shop"}))
	},
	"orderHosting": func(ctx context.Context, c *client.Client) error {
		return discard(c.OrderHosting(ctx, api.HostingOrderRequest{PlanSlug: "web-1", Domain: "shop.example.com", Username: "shop"}, "k"))
	},
	"getWallet":              func(ctx context.Context, c *client.Client) error { return discard(c.Wallet(ctx)) },
	"listWalletTransactions": func(ctx context.Context, c *client.Client) error { return discard(c.WalletTransactions(ctx, 1, 20)) },
	"listInvoices":           func(ctx context.Context, c *client.Client) error { return discard(c.Invoices(ctx, 1, 20)) },
	"getInvoice":             func(ctx context.Context, c *client.Client) error { return discard(c.Invoice(ctx, "inv_1")) },
	"listTickets":            func(ctx context.Context, c *client.Client) error { return discard(c.Tickets(ctx, 1, 20)) },
	"createTicket": func(ctx context.Context, c *client.Client) error {
		return discard(c.CreateTicket(ctx, api.TicketCreateRequest{Subject: "s", Message: "m"}, "k"))
	},
	"getTicket": func(ctx context.Context, c *client.Client) error { return discard(c.Ticket(ctx, "tkt_1")) },
	"replyTicket": func(ctx context.Context, c *client.Client) error {
		return discard(c.ReplyTicket(ctx, "tkt_1", api.TicketReplyRequest{Body: "m"}, "k"))
	},
	"closeTicket":  func(ctx context.Context, c *client.Client) error { return discard(c.CloseTicket(ctx, "tkt_1")) },
	"listWebhooks": func(ctx context.Context, c *client.Client) error { return discard(c.Webhooks(ctx, 1, 20)) },
	"createWebhook": func(ctx context.Context, c *client.Client) error {
		return discard(c.CreateWebhook(ctx, api.WebhookCreateRequest{URL: "https://h.example/x"}, "k"))
	},
	"getWebhook": func(ctx context.Context, c *client.Client) error { return discard(c.Webhook(ctx, "wh_1")) },
	"updateWebhook": func(ctx context.Context, c *client.Client) error {
		return discard(c.UpdateWebhook(ctx, "wh_1", api.WebhookUpdateRequest{}))
	},
	"deleteWebhook":       func(ctx context.Context, c *client.Client) error { return c.DeleteWebhook(ctx, "wh_1") },
	"listConnectedApps":   func(ctx context.Context, c *client.Client) error { return discard(c.ConnectedApps(ctx)) },
	"revokeConnectedApp":  func(ctx context.Context, c *client.Client) error { return discard(c.RevokeConnectedApp(ctx, "app_1")) },
	"rotateWebhookSecret": func(ctx context.Context, c *client.Client) error { return discard(c.RotateWebhookSecret(ctx, "wh_1")) },
	"listWebhookDeliveries": func(ctx context.Context, c *client.Client) error {
		return discard(c.WebhookDeliveries(ctx, "wh_1", 1, 20))
	},
	"redeliverWebhook": func(ctx context.Context, c *client.Client) error {
		return discard(c.RedeliverWebhook(ctx, "wh_1", "del_1"))
	},
	"listServers": func(ctx context.Context, c *client.Client) error { return discard(c.Servers(ctx, 1, 20)) },
	"getServer":   func(ctx context.Context, c *client.Client) error { return discard(c.Server(ctx, "srv_1")) },
	"terminateServer": func(ctx context.Context, c *client.Client) error {
		return discard(c.TerminateServer(ctx, "srv_1", "k"))
	},
	"getServerStats":      func(ctx context.Context, c *client.Client) error { return discard(c.ServerStats(ctx, "srv_1")) },
	"listServerSnapshots": func(ctx context.Context, c *client.Client) error { return discard(c.ServerSnapshots(ctx, "srv_1")) },
	"createServerSnapshot": func(ctx context.Context, c *client.Client) error {
		return discard(c.CreateServerSnapshot(ctx, "srv_1", api.SnapshotCreateRequest{Name: "s"}, "k"))
	},
	"deleteServerSnapshot": func(ctx context.Context, c *client.Client) error {
		return discard(c.DeleteServerSnapshot(ctx, "srv_1", "snap_1", "k"))
	},
	"revertServerSnapshot": func(ctx context.Context, c *client.Client) error {
		return discard(c.RevertServerSnapshot(ctx, "srv_1", "snap_1", "k"))
	},
	"powerServer": func(ctx context.Context, c *client.Client) error {
		return discard(c.PowerServer(ctx, "srv_1", "reboot", &api.PowerRequest{Force: true}, "k"))
	},
	"resetServerPassword": func(ctx context.Context, c *client.Client) error { return discard(c.ResetServerPassword(ctx, "srv_1")) },
	"labelServer": func(ctx context.Context, c *client.Client) error {
		return discard(c.LabelServer(ctx, "srv_1", api.LabelRequest{Label: "l"}))
	},
	"reinstallServer": func(ctx context.Context, c *client.Client) error {
		return discard(c.ReinstallServer(ctx, "srv_1", api.ReinstallRequest{OSTemplate: "t"}, "k"))
	},
	"listServerIPs":       func(ctx context.Context, c *client.Client) error { return discard(c.ServerIPs(ctx, "srv_1")) },
	"createServerConsole": func(ctx context.Context, c *client.Client) error { return discard(c.ServerConsole(ctx, "srv_1")) },
	"listAccountIPs":      func(ctx context.Context, c *client.Client) error { return discard(c.AccountIPsPage(ctx, 1, 20)) },
	"setServerPTR": func(ctx context.Context, c *client.Client) error {
		return discard(c.SetServerPTR(ctx, "srv_1", "192.0.2.1", api.PTRRequest{Hostname: "h.example"}))
	},
	"deleteServerPTR": func(ctx context.Context, c *client.Client) error {
		return discard(c.DeleteServerPTR(ctx, "srv_1", "192.0.2.1"))
	},
	"getAction": func(ctx context.Context, c *client.Client) error { return discard(c.Action(ctx, "act_1")) },
	"listActions": func(ctx context.Context, c *client.Client) error {
		return discard(c.Actions(ctx, client.ActionsQuery{Limit: 10, Cursor: "act_1", Status: "error"}))
	},
	"listScopes":      func(ctx context.Context, c *client.Client) error { return discard(c.Scopes(ctx)) },
	"listApiKeys":     func(ctx context.Context, c *client.Client) error { return discard(c.APIKeys(ctx)) },
	"listApiKeyUsage": func(ctx context.Context, c *client.Client) error { return discard(c.APIKeyUsage(ctx, "key_1", 1, 20)) },
	"createApiKey": func(ctx context.Context, c *client.Client) error {
		return discard(c.CreateAPIKey(ctx, api.APIKeyCreateRequest{Name: "ci", Scopes: []string{api.ScopeServersRead}}, "k"))
	},
	"revokeApiKey": func(ctx context.Context, c *client.Client) error { return discard(c.RevokeAPIKey(ctx, "key_1")) },
}

type operation struct {
	method, path string
	idempotent   bool // documents an Idempotency-Key header
}

// documented reads every operation of the coordinator's OpenAPI document.
func documented(t *testing.T) map[string]operation {
	t.Helper()
	raw, err := os.ReadFile("../../coordinator/internal/httpapi/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	ops := map[string]operation{}
	for path, item := range doc.Paths {
		for method, rawOp := range item {
			var op struct {
				OperationID string `json:"operationId"`
				Parameters  []struct {
					Ref string `json:"$ref"`
				} `json:"parameters"`
			}
			if method == "parameters" || json.Unmarshal(rawOp, &op) != nil {
				continue
			}
			if op.OperationID == "" {
				t.Errorf("%s %s has no operationId", method, path)
				continue
			}
			o := operation{method: strings.ToUpper(method), path: "/v1" + path}
			for _, p := range op.Parameters {
				o.idempotent = o.idempotent || strings.HasSuffix(p.Ref, "/IdempotencyKey")
			}
			ops[op.OperationID] = o
		}
	}
	if len(ops) < 30 {
		t.Fatalf("read only %d operations from openapi.json", len(ops))
	}
	return ops
}

// TestClientCoversOpenAPI: every operation of /openapi.json has a client
// method, and that method sends the documented method to a path matching the
// documented template (with an Idempotency-Key where one is documented).
func TestClientCoversOpenAPI(t *testing.T) {
	ops := documented(t)
	var missing []string
	for id := range ops {
		if v1Calls[id] == nil {
			missing = append(missing, id)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("operations of openapi.json without a pkg/client method (add one, and a row to v1Calls): %v", missing)
	}
	for id := range v1Calls {
		if _, ok := ops[id]; !ok {
			t.Errorf("v1Calls has %q, which openapi.json does not document", id)
		}
	}
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
	}))
	defer srv.Close()
	c := client.New(srv.URL, "key")
	for id, call := range v1Calls {
		op, ok := ops[id]
		if !ok {
			continue
		}
		got = nil
		if err := call(context.Background(), c); err != nil {
			t.Errorf("%s: %v", id, err)
			continue
		}
		if got == nil {
			t.Errorf("%s: no request sent", id)
			continue
		}
		re := regexp.MustCompile("^" + regexp.MustCompile(`\\\{[A-Za-z]+\\\}`).ReplaceAllString(regexp.QuoteMeta(op.path), `[^/]+`) + "$")
		if got.Method != op.method || !re.MatchString(got.URL.EscapedPath()) {
			t.Errorf("%s: sent %s %s, documented %s %s", id, got.Method, got.URL.EscapedPath(), op.method, op.path)
		}
		if got.Header.Get("Authorization") != "Bearer key" {
			t.Errorf("%s: no API key sent", id)
		}
		if op.idempotent && got.Header.Get("Idempotency-Key") != "k" && id != "redeliverWebhook" {
			t.Errorf("%s: the document takes an Idempotency-Key; the client method sends none", id)
		}
	}
}
