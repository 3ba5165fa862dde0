package orders

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestOrderOSFamilyOfTemplate: a server order's os_family that contradicts
// the family its template records (a family-version name such as debian-12,
// or an operator's label of the template) is a 400 naming os_family that
// charges nothing; the same family in any case, or none, is ordered as
// before (the server shows the os_family given, else the template's
// family); a template that records none (base, unlabelled) takes any. The
// MCP order_server tool's schema, built from openapi.json, says so. Before,
// {"os_template":"debian-12","os_family":"windows"} made a server showing
// os "windows".
func TestOrderOSFamilyOfTemplate(t *testing.T) {
	r := newRigFlags(t, func(int) []string { return nil }, "-templates", "base,debian-12")
	r.credit(100_000)
	adm := r.c.AnyAlive(nil).Admin()
	n := 0
	orderOS := func(template, family string) (api.ServerOrder, error) {
		n++
		req := order(500 + n)
		req.OSTemplate, req.OSFamily = template, family
		return r.api(n).OrderServer(r.ctx, req, "")
	}
	quote := func(template, family string) error {
		req := order(900)
		req.OSTemplate, req.OSFamily = template, family
		_, err := r.api(n).QuoteServer(r.ctx, req)
		return err
	}
	// quoteStatus is status for a quote (200, not 201, when it priced).
	quoteStatus := func(err error) (int, string) {
		if err == nil {
			return http.StatusOK, ""
		}
		return status(err)
	}
	refused := func(template, family string) {
		t.Helper()
		before, servers := r.balance(), len(r.servers())
		_, err := orderOS(template, family)
		if st, msg := status(err); st != http.StatusBadRequest || !strings.Contains(msg, `"os_family"`) {
			t.Errorf("%s with os_family %q: %d %s, want a 400 naming os_family", template, family, st, msg)
		}
		// Its quote too: not a price for what the order refuses.
		if st, msg := quoteStatus(quote(template, family)); st != http.StatusBadRequest || !strings.Contains(msg, `"os_family"`) {
			t.Errorf("quote of %s with os_family %q: %d %s, want a 400 naming os_family", template, family, st, msg)
		}
		if b, m := r.balance(), len(r.servers()); b != before || m != servers {
			t.Errorf("%s with os_family %q charged: balance %d → %d, servers %d → %d", template, family, before, b, servers, m)
		}
	}
	ordered := func(template, family, shows string) {
		t.Helper()
		if err := quote(template, family); err != nil {
			t.Errorf("quote of %s with os_family %q: %v", template, family, err)
		}
		o, err := orderOS(template, family)
		if err != nil || o.Server.OS != shows {
			t.Errorf("%s with os_family %q: %v, os %q, want ordered showing %q", template, family, err, o.Server.OS, shows)
		}
	}
	refused("debian-12", "windows")
	refused("debian-12", "ubuntu")
	ordered("debian-12", "debian", "debian")
	ordered("debian-12", "Debian", "Debian")
	ordered("debian-12", "", "debian")
	ordered("base", "windows", "windows") // base records no family
	// A template no node offers: the order's 400, quoted too.
	if st, msg := quoteStatus(quote("ubuntu-24.04", "")); st != http.StatusBadRequest || !strings.Contains(msg, `"os_template"`) {
		t.Errorf("quote of ubuntu-24.04 (on no node): %d %s, want a 400 naming os_template", st, msg)
	}

	// An operator's label records a family: base is then "alma".
	if _, err := adm.LabelOSTemplate(r.ctx, "base", api.OSTemplateLabelRequest{Family: "alma", Version: "9"}); err != nil {
		t.Fatal(err)
	}
	refused("base", "windows")
	ordered("base", "alma", "alma")
	ordered("base", "", "alma")
	if _, err := adm.LabelOSTemplate(r.ctx, "debian-12", api.OSTemplateLabelRequest{Family: "devuan"}); err != nil {
		t.Fatal(err)
	}
	refused("debian-12", "debian") // the label's family, not the name's
	ordered("debian-12", "devuan", "devuan")

	// The MCP tool's input schema is the document's.
	cs := r.mcpSession()
	for tl, err := range cs.Tools(r.ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		if tl.Name != "order_server" {
			continue
		}
		body, _ := tl.InputSchema.(map[string]any)["properties"].(map[string]any)["body"].(map[string]any)
		props, _ := body["properties"].(map[string]any)
		fam, _ := props["os_family"].(map[string]any)
		if d, _ := fam["description"].(string); !strings.Contains(d, "a different os_family is a 400 naming os_family") {
			t.Errorf("order_server's os_family: %v, want the description saying a different family is a 400", fam)
		}
		return
	}
	t.Fatal("tools/list has no order_server")
}
