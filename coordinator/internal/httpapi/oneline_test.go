package httpapi

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/webhook"
)

// oneLineBreakers are what a one-line field refuses: line breaks, a tab, the
// other C0 controls, DEL, C1 controls (NEL, CSI) and the Unicode line and
// paragraph separators, each between two letters.
var oneLineBreakers = []string{"\n", "\r", "\r\n", "\t", "\x00", "\x1b", "\x7f", "\u0085", "\u009b", "\u2028", "\u2029"}

// TestOneLineFields: every free-text field that names or labels something,
// or is shown as one line of a listing (an API key's or an account's name, a
// ticket's subject, a join token's or a wallet credit's description, a
// gateway, an invoice line, a staff name, an IP note, a product's names, a
// suspension's reason), is refused with 400 invalid_field naming the member
// when it holds a line break, a tab or another control character; the
// multi-line fields (a ticket's message and replies, a staff reply, a
// webhook's description: tests/audit TestHostileInputOutsideIn reads one
// back with its line break and tab) keep them. Before, all but the reason
// took "a\nb" ("key list" then showed the name over two lines), and the
// reason took a tab or a C1 control.
func TestOneLineFields(t *testing.T) {
	now := time.Now()
	g := &webhook.Guard{}
	body := func(tmpl, v string) []byte {
		q, _ := json.Marshal(v)
		return []byte(strings.ReplaceAll(tmpl, "%s", string(q)))
	}
	for _, tc := range []struct {
		what, field, tmpl string
		decode            func([]byte) error
	}{
		{"POST /v1/account/api-keys", "name", `{"name":%s,"scopes":["account:read"]}`, func(b []byte) error { _, err := DecodeAPIKeyCreate(nil, b, now); return err }},
		{"POST /v1/tickets", "subject", `{"subject":%s,"message":"m"}`, func(b []byte) error { _, err := DecodeTicketCreate(b); return err }},
		{"admin account create", "name", `{"email":"one@example.com","name":%s}`, func(b []byte) error { _, err := DecodeAccountCreate(b); return err }},
		{"admin key create", "name", `{"name":%s}`, func(b []byte) error { _, err := DecodeKeyCreate(b, now); return err }},
		{"admin wallet credit", "gateway", `{"amount_usd_cents":100,"gateway":%s}`, func(b []byte) error { _, err := DecodeWalletCredit(b); return err }},
		{"admin wallet credit", "description", `{"amount_usd_cents":100,"description":%s}`, func(b []byte) error { _, err := DecodeWalletCredit(b); return err }},
		{"admin invoice issue", "lines[0].description", `{"lines":[{"description":%s,"unit_price_usd_cents":100}]}`, func(b []byte) error { _, _, err := DecodeInvoiceIssue(b); return err }},
		{"admin staff reply", "staff_name", `{"body":"b","staff_name":%s}`, func(b []byte) error { _, err := DecodeStaffReply(b); return err }},
		{"admin IP reserve", "note", `{"ip":"198.51.100.7","note":%s}`, func(b []byte) error { _, err := DecodeIPReserve(b); return err }},
		{"admin join token", "description", `{"ttl_seconds":60,"description":%s}`, func(b []byte) error { _, err := DecodeJoinTokenCreate(b); return err }},
		{"admin product", "name_en", `{"category":"vps","name_en":%s,"retail_monthly_usd_cents":100,"specs":{"vcpu":1,"ram_mb":256,"disk_gb":1}}`, func(b []byte) error { _, err := DecodeProduct("p1", b); return err }},
		{"admin suspend", "reason", `{"reason":%s}`, func(b []byte) error { _, err := DecodeAdminSuspend(b); return err }},
		{"admin product", "names", `{"category":"vps","name_en":"P","names":{"tr":%s},"retail_monthly_usd_cents":100,"specs":{"vcpu":1,"ram_mb":256,"disk_gb":1}}`, func(b []byte) error { _, err := DecodeProduct("p1", b); return err }},
	} {
		if err := tc.decode(body(tc.tmpl, "a b")); err != nil {
			t.Fatalf("%s: a one-line %s refused: %v", tc.what, tc.field, err)
		}
		for _, c := range oneLineBreakers {
			err := tc.decode(body(tc.tmpl, "a"+c+"b"))
			var he *httpError
			if !errors.As(err, &he) || he.status != 400 || he.code != "invalid_field" || !strings.HasPrefix(he.msg, `field "`+tc.field+`"`) || !strings.Contains(he.msg, "one line") && !strings.Contains(he.msg, "control character") {
				t.Errorf("%s: %s %q: %v; want 400 invalid_field naming %q and saying it must be one line (or that it holds a control character)", tc.what, tc.field, "a"+c+"b", err, tc.field)
			}
		}
	}
	// The multi-line fields keep line breaks and tabs (and still refuse the
	// other controls).
	for _, tc := range []struct {
		what, field, tmpl string
		decode            func([]byte) error
	}{
		{"POST /v1/tickets", "message", `{"subject":"s","message":%s}`, func(b []byte) error { _, err := DecodeTicketCreate(b); return err }},
		{"POST /v1/tickets/:id/reply", "body", `{"body":%s}`, func(b []byte) error { _, err := DecodeTicketReply(b); return err }},
		{"admin staff reply", "body", `{"body":%s}`, func(b []byte) error { _, err := DecodeStaffReply(b); return err }},
		{"POST /v1/webhooks", "description", `{"url":"https://hooks.example.com/x","events":["*"],"description":%s}`, func(b []byte) error {
			_, err := DecodeBrandWebhookCreate(nil, b, g)
			return err
		}},
		{"PATCH /v1/webhooks/:id", "description", `{"description":%s}`, func(b []byte) error { _, err := DecodeBrandWebhookUpdate(nil, b, g); return err }},
	} {
		if err := tc.decode(body(tc.tmpl, "line one\r\nline two\n\tindented")); err != nil {
			t.Errorf("%s: a multi-line %s refused: %v", tc.what, tc.field, err)
		}
		if err := tc.decode(body(tc.tmpl, "a\x1bb")); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %s with ESC: %v; want refused naming it", tc.what, tc.field, err)
		}
	}
}
