package httpapi

import (
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestContactEmailDomain: a domain contact's e-mail domain is read by the
// host-name rule's folding (validate.LowerASCII: ASCII capitals only), so
// Example.COM is example.com, while a non-ASCII capital is refused rather
// than folded into another name: U+212A KELVIN SIGN is not "k", BÜCHER is
// not bücher. Before, Unicode lower-casing accepted both. The address
// itself is stored as given (no record changes).
func TestContactEmailDomain(t *testing.T) {
	for _, d := range []string{"example.com", "Example.COM", "xn--bcher-kva.example", "mail.EXAMPLE.net"} {
		if err := contactEmailDomain(d); err != nil {
			t.Errorf("contact e-mail domain %q refused: %v", d, err)
		}
	}
	for _, d := range []string{"\u212Aelvin.example", "BÜCHER.example", "example.com.", "exa mple.com", ""} {
		if err := contactEmailDomain(d); err == nil {
			t.Errorf("contact e-mail domain %q accepted", d)
		}
	}
	// Through the request's check: the field named, the accepted address kept as given.
	c := api.DomainContact{Name: "Ada", Street: []string{"1 Main"}, City: "Istanbul", CC: "TR", Email: "Ada@Example.COM"}
	if err := domainContact(c); err != nil {
		t.Errorf("contact e-mail %s refused: %v", c.Email, err)
	}
	for _, e := range []string{"ada@\u212Aelvin.example", "ada@example.com.", "ada@bücher.example"} {
		c.Email = e
		if err := domainContact(c); err == nil || !strings.Contains(err.Error(), "contact.email") {
			t.Errorf("contact e-mail %q: %v, want a refusal naming contact.email", e, err)
		}
	}
}
