package fsm

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestOSTemplateLabels: an operator's label is stored on every replica
// byte-identically, relabelling replaces it, unlabelling removes it (a
// second unlabel is not found); a bad label is refused naming the field and
// changes nothing; TemplateView falls back to the name field by field.
func TestOSTemplateLabels(t *testing.T) {
	h := newWHHarness(t, 2)
	dump := func() []byte { return bucketDump(h.fsms[0], store.BucketOSTemplates) }
	for _, tc := range []struct {
		name  string
		label api.OSTemplateLabelRequest
		field string
	}{
		{"Ubuntu", api.OSTemplateLabelRequest{Family: "ubuntu"}, "name"},
		{"../x", api.OSTemplateLabelRequest{Family: "ubuntu"}, "name"},
		{"u2404", api.OSTemplateLabelRequest{}, "family"},
		{"u2404", api.OSTemplateLabelRequest{Family: "ubu/ntu"}, "family"},
		{"u2404", api.OSTemplateLabelRequest{Family: strings.Repeat("a", 33)}, "family"},
		{"u2404", api.OSTemplateLabelRequest{Family: "ubuntu", Version: " 24.04"}, "version"},
		{"u2404", api.OSTemplateLabelRequest{Family: "ubuntu", DisplayName: "Ubuntu\n24.04"}, "display_name"},
		{"u2404", api.OSTemplateLabelRequest{Family: "ubuntu", DisplayName: strings.Repeat("é", 65)}, "display_name"},
	} {
		_, err := h.apply(CmdOSTemplateLabel, OSTemplateLabelSet{Name: tc.name, Label: tc.label})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.field+" ") {
			t.Fatalf("%q %+v: %v, want ErrInvalid naming %s", tc.name, tc.label, err, tc.field)
		}
	}
	if len(dump()) != 0 {
		t.Fatal("a refused label was stored")
	}

	want := api.OSTemplateLabelRequest{Family: "ubuntu", Version: "24.04", DisplayName: "Ubuntu 24.04 LTS"}
	l := h.must(CmdOSTemplateLabel, OSTemplateLabelSet{Name: "u2404", Label: want}).(api.OSTemplateLabel)
	if l.Name != "u2404" || l.OSTemplateLabelRequest != want || !l.UpdatedAt.Equal(h.at) {
		t.Fatalf("label %+v", l)
	}
	h.must(CmdOSTemplateLabel, OSTemplateLabelSet{Name: "debian-12", Label: api.OSTemplateLabelRequest{DisplayName: "Debian 12 (bookworm)"}})
	h.must(CmdOSTemplateLabel, OSTemplateLabelSet{Name: "u2404", Label: api.OSTemplateLabelRequest{Family: "ubuntu", Version: "24.04.1"}})
	var labels []api.OSTemplateLabel
	if err := h.fsms[1].Read(func(r store.ReadTx) (err error) { labels, err = r.OSTemplateLabels(); return }); err != nil {
		t.Fatal(err)
	}
	if len(labels) != 2 || labels[0].Name != "debian-12" || labels[1].Name != "u2404" || labels[1].Version != "24.04.1" || labels[1].DisplayName != "" {
		t.Fatalf("labels on the second replica %+v", labels)
	}
	if got := TemplateView("debian-12", labels[0]); got != (api.OSTemplate{Name: "debian-12", Family: "debian", Version: "12", DisplayName: "Debian 12 (bookworm)"}) {
		t.Fatalf("debian-12 shown as %+v", got)
	}
	if got := TemplateView("u2404", labels[1]); got != (api.OSTemplate{Name: "u2404", Family: "ubuntu", Version: "24.04.1"}) {
		t.Fatalf("u2404 shown as %+v", got)
	}
	if got := TemplateView("alma-9", api.OSTemplateLabel{}); got != (api.OSTemplate{Name: "alma-9", Family: "alma", Version: "9"}) {
		t.Fatalf("an unlabelled template shown as %+v", got)
	}
	if !bytes.Equal(dump(), bucketDump(h.fsms[1], store.BucketOSTemplates)) {
		t.Fatal("replicas differ")
	}

	old := h.must(CmdOSTemplateUnlabel, OSTemplateUnlabel{Name: "u2404"}).(api.OSTemplateLabel)
	if old.Version != "24.04.1" {
		t.Fatalf("unlabel answered %+v", old)
	}
	before := dump()
	if _, err := h.apply(CmdOSTemplateUnlabel, OSTemplateUnlabel{Name: "u2404"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second unlabel: %v", err)
	}
	if !bytes.Equal(before, dump()) || !bytes.Equal(dump(), bucketDump(h.fsms[1], store.BucketOSTemplates)) {
		t.Fatal("unlabel: replicas differ or a refusal changed the state")
	}
	if err := h.fsms[0].Read(func(r store.ReadTx) (err error) { _, err = r.OSTemplateLabel("u2404"); return }); err != store.ErrNotFound {
		t.Fatalf("u2404 still labelled: %v", err)
	}
}
