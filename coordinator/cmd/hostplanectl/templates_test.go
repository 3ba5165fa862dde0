package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestTemplateCLI drives `hostplanectl template label|unlabel|list` against
// a real coordinator: a label with no flag is a usage error; a bad name or
// field is a 400 naming it and stores nothing; labels are listed; unlabel
// removes one (a second unlabel is a 404); a relabel changes only the flags
// given.
func TestTemplateCLI(t *testing.T) {
	run := runCmd
	wantUsageErrors(t, func(args ...string) error { return run(newTemplateCmd, &globals{}, args...) },
		[]string{"label", "u2404"},
	)
	_, g, adm := cliCluster(t)
	ctx := context.Background()
	wantFieldRefusals(t, func(args ...string) error { return run(newTemplateCmd, g, args...) }, []fieldRefusal{
		{[]string{"label", "Ubuntu", "--family", "ubuntu"}, `"name"`},
		{[]string{"label", "u2404", "--family", "ubu/ntu"}, `"family"`},
		{[]string{"label", "u2404", "--version", "24.04\n"}, `"version"`},
		{[]string{"label", "u2404", "--display-name", strings.Repeat("x", 65)}, `"display_name"`},
	})
	if ls, err := adm.OSTemplateLabels(ctx); err != nil || len(ls) != 0 {
		t.Fatalf("refusals left labels %+v (%v)", ls, err)
	}
	if err := run(newTemplateCmd, g, "label", "u2404", "--family", "ubuntu", "--version", "24.04", "--display-name", "Ubuntu 24.04 LTS"); err != nil {
		t.Fatal(err)
	}
	if err := run(newTemplateCmd, g, "label", "debian-12", "--display-name", "Debian 12"); err != nil {
		t.Fatal(err)
	}
	if err := run(newTemplateCmd, g, "list"); err != nil {
		t.Fatal(err)
	}
	ls, err := adm.OSTemplateLabels(ctx)
	if err != nil || len(ls) != 2 || ls[0].Name != "debian-12" || ls[0].DisplayName != "Debian 12" || ls[0].Family != "" ||
		ls[1].OSTemplateLabelRequest != (api.OSTemplateLabelRequest{Family: "ubuntu", Version: "24.04", DisplayName: "Ubuntu 24.04 LTS"}) {
		t.Fatalf("labels %+v (%v)", ls, err)
	}
	if err := run(newTemplateCmd, g, "unlabel", "debian-12"); err != nil {
		t.Fatal(err)
	}
	if err := run(newTemplateCmd, g, "unlabel", "debian-12"); api.StatusOf(err) != 404 {
		t.Fatalf("second unlabel: %v", err)
	}
	if ls, err := adm.OSTemplateLabels(ctx); err != nil || len(ls) != 1 || ls[0].Name != "u2404" {
		t.Fatalf("after unlabel %+v (%v)", ls, err)
	}
	// A relabel changes only the flags given ("" clears one): the display
	// name alone cleared the family and version before.
	if err := run(newTemplateCmd, g, "label", "u2404", "--display-name", "Ubuntu 24.04.1 LTS"); err != nil {
		t.Fatal(err)
	}
	if err := run(newTemplateCmd, g, "label", "u2404", "--version", ""); err != nil {
		t.Fatal(err)
	}
	if ls, err := adm.OSTemplateLabels(ctx); err != nil || len(ls) != 1 ||
		ls[0].OSTemplateLabelRequest != (api.OSTemplateLabelRequest{Family: "ubuntu", DisplayName: "Ubuntu 24.04.1 LTS"}) {
		t.Fatalf("after relabelling: %+v (%v)", ls, err)
	}
}

// TestTemplateLabelKeepsConcurrentChange: template label reads the label,
// overlays the flags given and sends the whole label back (the admin API
// sets it whole), so another operator's change landing between that read
// and the write was undone silently. The write is now sent onto the label
// as read (If-Match its updated_at; If-None-Match: * when there was none):
// such a write is a 412 the CLI explains, the other change kept, for a
// relabel, a first label and a label whose flags clear every field (an
// unlabel); run again, it applies.
func TestTemplateLabelKeepsConcurrentChange(t *testing.T) {
	_, adm, run := cmdCluster(t, newTemplateCmd)
	ctx := context.Background()
	labelOf := func(name string) api.OSTemplateLabelRequest {
		t.Helper()
		l, _ := find(t, adm.OSTemplateLabels, func(l api.OSTemplateLabel) bool { return l.Name == name })
		return l.OSTemplateLabelRequest
	}
	// racing runs args with another operator's label of name landing
	// between the CLI's read and its write: a 412 naming the template, the
	// other label kept.
	racing := func(other api.OSTemplateLabelRequest, args ...string) {
		t.Helper()
		afterTemplateLabelRead = func() {
			if _, err := adm.LabelOSTemplate(ctx, args[1], other); err != nil {
				t.Error(err)
			}
		}
		err := run(args...)
		afterTemplateLabelRead = nil
		if api.StatusOf(err) != 412 || !strings.Contains(err.Error(), args[1]) || !strings.Contains(err.Error(), "run the command again") {
			t.Fatalf("%q racing another change: %v, want a 412 naming %s that says to run it again", args, err, args[1])
		}
		if got := labelOf(args[1]); got != other {
			t.Fatalf("%q racing another change left %+v, want the other change %+v", args, got, other)
		}
	}
	if err := run("label", "u2404", "--family", "ubuntu"); err != nil {
		t.Fatal(err)
	}
	other := api.OSTemplateLabelRequest{Family: "ubuntu", DisplayName: "Ubuntu 24.04 LTS"}
	racing(other, "label", "u2404", "--version", "24.04")
	if err := run("label", "u2404", "--version", "24.04"); err != nil {
		t.Fatal(err)
	}
	if got, want := labelOf("u2404"), (api.OSTemplateLabelRequest{Family: "ubuntu", Version: "24.04", DisplayName: "Ubuntu 24.04 LTS"}); got != want {
		t.Fatalf("run again: %+v, want %+v", got, want)
	}
	// Every field cleared is an unlabel, sent onto the label as read too.
	racing(api.OSTemplateLabelRequest{DisplayName: "Ubuntu"}, "label", "u2404", "--family", "", "--version", "", "--display-name", "")
	// A first label, read as none, racing another operator's first label.
	racing(api.OSTemplateLabelRequest{Family: "debian"}, "label", "debian-12", "--display-name", "Debian 12")
	if err := run("label", "debian-12", "--display-name", "Debian 12"); err != nil {
		t.Fatal(err)
	}
	if got, want := labelOf("debian-12"), (api.OSTemplateLabelRequest{Family: "debian", DisplayName: "Debian 12"}); got != want {
		t.Fatalf("run again: %+v, want %+v", got, want)
	}
}

// TestTemplateLabelNothingToClear: template label with only "" flags on a
// template without a label cleared nothing and answered the unlabel's 404
// ("template label not found"). It says there is nothing to clear and
// succeeds, storing nothing; a bad name is still the coordinator's 400
// naming it.
func TestTemplateLabelNothingToClear(t *testing.T) {
	g, adm, run := cmdCluster(t, newTemplateCmd)
	text := &globals{socket: g.socket}
	out, err := stdoutOf(t, func() error { return runCmd(newTemplateCmd, text, "label", "u2404", "--version", "") })
	if err != nil || !strings.Contains(out, "template u2404 has no label: nothing to clear") {
		t.Fatalf("label --version \"\" on an unlabelled template: %v, printed %q; want it to say there is nothing to clear", err, out)
	}
	if err := run("label", "u2404", "--family", "", "--version", "", "--display-name", ""); err != nil {
		t.Fatalf("every flag \"\" on an unlabelled template (--json): %v", err)
	}
	var ae *api.Error
	if err := run("label", "Ubuntu", "--version", ""); !errors.As(err, &ae) || ae.StatusCode != 400 || !strings.Contains(ae.Message, `"name"`) {
		t.Fatalf("a bad name with only \"\" flags: %v, want a 400 naming the name", err)
	}
	if ls, err := adm.OSTemplateLabels(context.Background()); err != nil || len(ls) != 0 {
		t.Fatalf("labels %+v (%v), want none", ls, err)
	}
}
