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
	if testing.Short() {
		return
	}
	_, g, adm := cliCluster(t)
	ctx := context.Background()
	var ae *api.Error
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
	if err := run(newTemplateCmd, g, "unlabel", "debian-12"); !errors.As(err, &ae) || ae.StatusCode != 404 {
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
