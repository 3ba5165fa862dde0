package httpapi

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/ids"
	"github.com/hostplane/hostplane/pkg/validate"
)

// longDomain is a valid domain name of n bytes (labels of at most 63).
func longDomain(n int) string {
	var labels []string
	left := n - len(".com")
	for left > 0 {
		l := min(63, left)
		if len(labels) > 0 {
			l = min(63, left-1)
		}
		if l <= 0 {
			break
		}
		labels = append(labels, strings.Repeat("a", l))
		left -= l
		if len(labels) > 1 {
			left--
		}
	}
	return strings.Join(labels, ".") + ".com"
}

// TestHostingDomainFitsTheNode: a hosting account's domain and a custom
// domain are refused, naming domain, when longer than the node can keep as
// a file name (validate.MaxHostingDomain: hosts/<name>, certs/<name>.pem and
// their temporary files); a name of exactly that length is taken. Before,
// any valid name up to 253 bytes was taken, and the node failed the account
// (ENAMETOOLONG) after the order had been charged.
func TestHostingDomainFitsTheNode(t *testing.T) {
	ok, long := longDomain(validate.MaxHostingDomain), longDomain(validate.MaxHostingDomain+1)
	if len(ok) != validate.MaxHostingDomain || len(long) != validate.MaxHostingDomain+1 || len(longDomain(253)) != 253 {
		t.Fatalf("longDomain: %d %d", len(ok), len(long))
	}
	for _, d := range []string{long, longDomain(250), longDomain(253)} {
		order, _ := json.Marshal(map[string]any{"plan_slug": "web-a", "domain": d, "username": "shopa"})
		if _, err := DecodeHostingOrder(order); err == nil || !strings.Contains(err.Error(), `"domain"`) || !strings.Contains(err.Error(), "at most 235") {
			t.Errorf("hosting order on a %d-byte domain: %v, want a refusal naming domain", len(d), err)
		}
		admin, _ := json.Marshal(map[string]any{"account_id": ids.New("acc", time.Now()), "plan": "hosting-starter", "domain": d, "username": "shopa"})
		if _, _, err := DecodeAdminHostingCreate(admin); err == nil || !strings.Contains(err.Error(), `"domain"`) {
			t.Errorf("admin hosting create on a %d-byte domain: %v, want a refusal naming domain", len(d), err)
		}
		custom, _ := json.Marshal(map[string]any{"domain": d})
		if _, err := DecodeCustomDomain(custom); err == nil || !strings.Contains(err.Error(), `"domain"`) || !strings.Contains(err.Error(), "at most 235") {
			t.Errorf("custom domain of %d bytes: %v, want a refusal naming domain", len(d), err)
		}
	}
	order, _ := json.Marshal(map[string]any{"plan_slug": "web-a", "domain": ok, "username": "shopa"})
	if _, err := DecodeHostingOrder(order); err != nil {
		t.Errorf("hosting order on a %d-byte domain: %v", len(ok), err)
	}
	custom, _ := json.Marshal(map[string]any{"domain": ok})
	if d, err := DecodeCustomDomain(custom); err != nil || d != ok {
		t.Errorf("custom domain of %d bytes: %q %v", len(ok), d, err)
	}
}
