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

// TestOSTemplateLabelIfUpdatedAt: a label write sent onto the label as read
// (IfUpdatedAt: its updated_at then, the zero time when there was none)
// applies while the label is still that; after another change (or a label
// set, or removed, since) it is a *ChangedError (a conflict) with nothing
// changed, from semantics level 2, for a relabel and an unlabel alike. At
// level 1 (a release before it replicates too, which does not know the
// field) it is ignored on every replica alike. Replicas byte-identical.
func TestOSTemplateLabelIfUpdatedAt(t *testing.T) {
	h := newWHHarness(t, 2)
	read := func() api.OSTemplateLabel {
		t.Helper()
		var l api.OSTemplateLabel
		if err := h.fsms[0].Read(func(r store.ReadTx) (err error) {
			if l, err = r.OSTemplateLabel("u2404"); err == store.ErrNotFound {
				err = nil
			}
			return
		}); err != nil {
			t.Fatal(err)
		}
		return l
	}
	label := func(at api.OSTemplateLabel, display string) error {
		_, err := h.apply(CmdOSTemplateLabel, OSTemplateLabelSet{Name: "u2404", Label: api.OSTemplateLabelRequest{DisplayName: display}, IfUpdatedAt: &at.UpdatedAt})
		return err
	}
	unlabel := func(at api.OSTemplateLabel) error {
		_, err := h.apply(CmdOSTemplateUnlabel, OSTemplateUnlabel{Name: "u2404", IfUpdatedAt: &at.UpdatedAt})
		return err
	}
	other := func(display string) { // another operator's change, unconditional
		h.t.Helper()
		h.must(CmdOSTemplateLabel, OSTemplateLabelSet{Name: "u2404", Label: api.OSTemplateLabelRequest{DisplayName: display}})
	}
	none := read() // no label yet
	other("A")
	// Level 1: ignored, as a release without the field applies it.
	if err := label(none, "B"); err != nil {
		t.Fatalf("level 1: %v", err)
	}
	if err := unlabel(none); err != nil {
		t.Fatalf("level 1 unlabel: %v", err)
	}
	h.must(CmdClusterLevel, ClusterLevel{Level: levelLabelPrecondition})
	var ce *ChangedError
	refused := func(what string, err error, display string) {
		t.Helper()
		if !errors.As(err, &ce) || !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "u2404") {
			t.Fatalf("level 2, %s: %v, want a ChangedError naming u2404", what, err)
		}
		if l := read(); l.DisplayName != display {
			t.Fatalf("level 2, %s: the refused write left %q, want %q", what, l.DisplayName, display)
		}
	}
	none = read()
	other("C") // a label set after a read that found none
	refused("labelled after a read of none", label(none, "D"), "C")
	stale := read()
	other("E")
	refused("relabelled after the read", label(stale, "F"), "E")
	refused("unlabel, relabelled after the read", unlabel(stale), "E")
	if err := label(read(), "G"); err != nil {
		t.Fatalf("level 2, unchanged since the read: %v", err)
	}
	if l := read(); l.DisplayName != "G" {
		t.Fatalf("label %q, want G", l.DisplayName)
	}
	stale = read()
	if err := unlabel(stale); err != nil {
		t.Fatalf("level 2, unlabel unchanged since the read: %v", err)
	}
	refused("relabel of a label removed since the read", label(stale, "H"), "")
	if err := label(read(), "I"); err != nil { // none read, none now
		t.Fatalf("level 2, a first label onto none read: %v", err)
	}
	h.replicasSame(func(f *FSM) []byte { return bucketDump(f, store.BucketOSTemplates) })
}
