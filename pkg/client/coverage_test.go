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

// v1Calls maps every operationId of the public API to a call of the client
// method that serves it. TestClientCoversOpenAPI fails when the document has an
// operation this table lacks, and when a call sends another method or path
// than the document says.
var v1Calls = map[string]func(ctx context.Context, c *client.Client) error{
	"listDomains": func(ctx context.Context, c *client.Client) error { _, err := c.Domains(ctx, 1, 20); return err },
	"getDomain": func(ctx context.Context, c *client.Client) error {
		_, err := c.Domain(ctx, "dom_1")
		return err
	},
	"checkDomain": func(ctx context.Context, c *client.Client) error {
		_, err := c.CheckDomain(ctx, "example.com")
		return err
	},
	"registerDomain": func(ctx context.Context, c *client.Client) error {
		_, err := c.RegisterDomain(ctx, api.DomainOrderRequest{Name: "example.com"}, "k")
		return err
	},
	"transferDomain": func(ctx context.Context, c *client.Client) error {
		_, err := c.TransferDomain(ctx, api.DomainTransferRequest{Name: "example.com", AuthCode: "x"}, "k")
		return err
	},
	"quoteDomain": func(ctx context.Context, c *client.Client) error {
		_, err := c.QuoteDomain(ctx, api.DomainOrderRequest{Name: "example.com"})
		return err
	},
	"updateDomain": func(ctx context.Context, c *client.Client) error {
		_, err := c.UpdateDomain(ctx, "dom_1", api.DomainUpdateRequest{Nameservers: []string{"ns1.example.net", "ns2.example.net"}}, "k")
		return err
	},
	"listHosting": func(ctx context.Context, c *client.Client) error { _, err := c.Hosting(ctx, 1, 20); return err },
	"getCustomDomain": func(ctx context.Context, c *client.Client) error {
		_, err := c.CustomDomain(ctx, "hst_1")
		return err
	},
	"setCustomDomain": func(ctx context.Context, c *client.Client) error {
		_, err := c.SetCustomDomain(ctx, "hst_1", "shop.example.com", "k")
		return err
	},
	"verifyCustomDomain": func(ctx context.Context, c *client.Client) error {
		_, err := c.VerifyCustomDomain(ctx, "hst_1")
		return err
	},
	"retryCertificate": func(ctx context.Context, c *client.Client) error {
		_, err := c.RetryCertificate(ctx, "hst_1")
		return err
	},
	"deleteCustomDomain": func(ctx context.Context, c *client.Client) error {
		return c.DeleteCustomDomain(ctx, "hst_1", "k")
	},
	"getHosting": func(ctx context.Context, c *client.Client) error {
		_, err := c.HostingAccount(ctx, "hst_1")
		return err
	},
	"suspendHosting": func(ctx context.Context, c *client.Client) error {
		_, err := c.SuspendHosting(ctx, "hst_1", "k")
		return err
	},
	"unsuspendHosting": func(ctx context.Context, c *client.Client) error {
		_, err := c.UnsuspendHosting(ctx, "hst_1", "k")
		return err
	},
	"setHostingPHP": func(ctx context.Context, c *client.Client) error {
		_, err := c.SetHostingPHP(ctx, "hst_1", "8.2", "k")
		return err
	},
	"deleteHosting": func(ctx context.Context, c *client.Client) error {
		_, err := c.DeleteHosting(ctx, "hst_1", "k")
		return err
	},
	"getAccount":      func(ctx context.Context, c *client.Client) error { _, err := c.Account(ctx); return err },
	"listProducts":    func(ctx context.Context, c *client.Client) error { _, err := c.Products(ctx); return err },
	"listOSTemplates": func(ctx context.Context, c *client.Client) error { _, err := c.OSTemplates(ctx); return err },
	"quoteServer": func(ctx context.Context, c *client.Client) error {
		_, err := c.QuoteServer(ctx, api.ServerOrderRequest{PlanSlug: "vps-2", Hostname: "web-1", OSTemplate: "debian-12"})
		return err
	},
	"orderServer": func(ctx context.Context, c *client.Client) error {
		_, err := c.OrderServer(ctx, api.ServerOrderRequest{PlanSlug: "vps-2", Hostname: "web-1", OSTemplate: "debian-12"}, "k")
		return err
	},
	"quoteHosting": func(ctx context.Context, c *client.Client) error {
		_, err := c.QuoteHosting(ctx, api.HostingOrderRequest{PlanSlug: "web-1", Domain: "shop.example.com", Username: "shop"})
		return err
	},
	"orderHosting": func(ctx context.Context, c *client.Client) error {
		_, err := c.OrderHosting(ctx, api.HostingOrderRequest{PlanSlug: "web-1", Domain: "shop.example.com", Username: "shop"}, "k")
		return err
	},
	"getWallet": func(ctx context.Context, c *client.Client) error { _, err := c.Wallet(ctx); return err },
	"listWalletTransactions": func(ctx context.Context, c *client.Client) error {
		_, err := c.WalletTransactions(ctx, 1, 20)
		return err
	},
	"listInvoices": func(ctx context.Context, c *client.Client) error { _, err := c.Invoices(ctx, 1, 20); return err },
	"getInvoice":   func(ctx context.Context, c *client.Client) error { _, err := c.Invoice(ctx, "inv_1"); return err },
	"listTickets":  func(ctx context.Context, c *client.Client) error { _, err := c.Tickets(ctx, 1, 20); return err },
	"createTicket": func(ctx context.Context, c *client.Client) error {
		_, err := c.CreateTicket(ctx, api.TicketCreateRequest{Subject: "s", Message: "m"}, "k")
		return err
	},
	"getTicket": func(ctx context.Context, c *client.Client) error { _, err := c.Ticket(ctx, "tkt_1"); return err },
	"replyTicket": func(ctx context.Context, c *client.Client) error {
		_, err := c.ReplyTicket(ctx, "tkt_1", api.TicketReplyRequest{Body: "m"}, "k")
		return err
	},
	"closeTicket":  func(ctx context.Context, c *client.Client) error { _, err := c.CloseTicket(ctx, "tkt_1"); return err },
	"listWebhooks": func(ctx context.Context, c *client.Client) error { _, err := c.Webhooks(ctx, 1, 20); return err },
	"createWebhook": func(ctx context.Context, c *client.Client) error {
		_, err := c.CreateWebhook(ctx, api.WebhookCreateRequest{URL: "https://h.example/x"}, "k")
		return err
	},
	"getWebhook": func(ctx context.Context, c *client.Client) error { _, err := c.Webhook(ctx, "wh_1"); return err },
	"updateWebhook": func(ctx context.Context, c *client.Client) error {
		_, err := c.UpdateWebhook(ctx, "wh_1", api.WebhookUpdateRequest{})
		return err
	},
	"deleteWebhook":     func(ctx context.Context, c *client.Client) error { return c.DeleteWebhook(ctx, "wh_1") },
	"listConnectedApps": func(ctx context.Context, c *client.Client) error { _, err := c.ConnectedApps(ctx); return err },
	"revokeConnectedApp": func(ctx context.Context, c *client.Client) error {
		_, err := c.RevokeConnectedApp(ctx, "app_1")
		return err
	},
	"rotateWebhookSecret": func(ctx context.Context, c *client.Client) error {
		_, err := c.RotateWebhookSecret(ctx, "wh_1")
		return err
	},
	"listWebhookDeliveries": func(ctx context.Context, c *client.Client) error {
		_, err := c.WebhookDeliveries(ctx, "wh_1", 1, 20)
		return err
	},
	"redeliverWebhook": func(ctx context.Context, c *client.Client) error {
		_, err := c.RedeliverWebhook(ctx, "wh_1", "del_1")
		return err
	},
	"listServers": func(ctx context.Context, c *client.Client) error { _, err := c.Servers(ctx, 1, 20); return err },
	"getServer":   func(ctx context.Context, c *client.Client) error { _, err := c.Server(ctx, "srv_1"); return err },
	"terminateServer": func(ctx context.Context, c *client.Client) error {
		_, err := c.TerminateServer(ctx, "srv_1", "k")
		return err
	},
	"getServerStats": func(ctx context.Context, c *client.Client) error { _, err := c.ServerStats(ctx, "srv_1"); return err },
	"listServerSnapshots": func(ctx context.Context, c *client.Client) error {
		_, err := c.ServerSnapshots(ctx, "srv_1")
		return err
	},
	"createServerSnapshot": func(ctx context.Context, c *client.Client) error {
		_, err := c.CreateServerSnapshot(ctx, "srv_1", api.SnapshotCreateRequest{Name: "s"}, "k")
		return err
	},
	"deleteServerSnapshot": func(ctx context.Context, c *client.Client) error {
		_, err := c.DeleteServerSnapshot(ctx, "srv_1", "snap_1")
		return err
	},
	"revertServerSnapshot": func(ctx context.Context, c *client.Client) error {
		_, err := c.RevertServerSnapshot(ctx, "srv_1", "snap_1", "k")
		return err
	},
	"powerServer": func(ctx context.Context, c *client.Client) error {
		_, err := c.PowerServer(ctx, "srv_1", "reboot", &api.PowerRequest{Force: true})
		return err
	},
	"resetServerPassword": func(ctx context.Context, c *client.Client) error {
		_, err := c.ResetServerPassword(ctx, "srv_1")
		return err
	},
	"labelServer": func(ctx context.Context, c *client.Client) error {
		_, err := c.LabelServer(ctx, "srv_1", api.LabelRequest{Label: "l"})
		return err
	},
	"reinstallServer": func(ctx context.Context, c *client.Client) error {
		_, err := c.ReinstallServer(ctx, "srv_1", api.ReinstallRequest{OSTemplate: "t"}, "k")
		return err
	},
	"listServerIPs": func(ctx context.Context, c *client.Client) error { _, err := c.ServerIPs(ctx, "srv_1"); return err },
	"createServerConsole": func(ctx context.Context, c *client.Client) error {
		_, err := c.ServerConsole(ctx, "srv_1")
		return err
	},
	"listAccountIPs": func(ctx context.Context, c *client.Client) error {
		_, err := c.AccountIPsPage(ctx, 1, 20)
		return err
	},
	"setServerPTR": func(ctx context.Context, c *client.Client) error {
		_, err := c.SetServerPTR(ctx, "srv_1", "192.0.2.1", api.PTRRequest{Hostname: "h.example"})
		return err
	},
	"deleteServerPTR": func(ctx context.Context, c *client.Client) error {
		_, err := c.DeleteServerPTR(ctx, "srv_1", "192.0.2.1")
		return err
	},
	"getAction":   func(ctx context.Context, c *client.Client) error { _, err := c.Action(ctx, "act_1"); return err },
	"listScopes":  func(ctx context.Context, c *client.Client) error { _, err := c.Scopes(ctx); return err },
	"listApiKeys": func(ctx context.Context, c *client.Client) error { _, err := c.APIKeys(ctx); return err },
	"listApiKeyUsage": func(ctx context.Context, c *client.Client) error {
		_, err := c.APIKeyUsage(ctx, "key_1", 1, 20)
		return err
	},
	"createApiKey": func(ctx context.Context, c *client.Client) error {
		_, err := c.CreateAPIKey(ctx, api.APIKeyCreateRequest{Name: "ci", Scopes: []string{api.ScopeServersRead}}, "k")
		return err
	},
	"revokeApiKey": func(ctx context.Context, c *client.Client) error { _, err := c.RevokeAPIKey(ctx, "key_1"); return err },
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
