package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/spf13/cobra"
)

// newTemplateCmd is `hostplanectl template …`: the operators' labels of the
// OS templates their nodes hold (what GET /v1/os-templates shows).
func newTemplateCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "template", Short: "Label the OS templates the nodes hold (family, version, display name) for customers"}
	var req api.OSTemplateLabelRequest
	label := &cobra.Command{
		Use:   "label NAME [--family F] [--version V] [--display-name TEXT]",
		Short: "Set what customers see of a template: only the flags given change (\"\" clears one; an unset family or version falls back to the name split at its first hyphen)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			set := c.Flags().Changed
			if !set("family") && !set("version") && !set("display-name") {
				return usageError{"give at least one of --family, --version and --display-name"}
			}
			// The admin API sets a label whole: start from the label as it
			// is, so a flag not given keeps its value (relabelling the
			// display name alone cleared the family and version before).
			labels, err := g.admin().OSTemplateLabels(c.Context())
			if err != nil {
				return err
			}
			out := api.OSTemplateLabelRequest{}
			var read time.Time // the label's updated_at as read (zero: none)
			found := false
			for _, l := range labels {
				if l.Name == args[0] {
					out = api.OSTemplateLabelRequest{Family: l.Family, Version: l.Version, DisplayName: l.DisplayName}
					read, found = l.UpdatedAt, true
				}
			}
			if afterTemplateLabelRead != nil {
				afterTemplateLabelRead()
			}
			if set("family") {
				out.Family = req.Family
			}
			if set("version") {
				out.Version = req.Version
			}
			if set("display-name") {
				out.DisplayName = req.DisplayName
			}
			// Sent only onto the label as read (If-Match its updated_at,
			// If-None-Match: * when there was none): another operator's
			// change made after the read is a 412, not undone by the
			// fields copied from the read.
			if out == (api.OSTemplateLabelRequest{}) {
				l, err := g.admin().UnlabelOSTemplateIf(c.Context(), args[0], read) // every field cleared
				if !found && api.StatusOf(err) == http.StatusNotFound {
					// Only "" flags on a template without a label (its
					// name checked by the coordinator): nothing to clear.
					l = api.OSTemplateLabel{Name: args[0]}
					return g.print(l, func() { printf("template %s has no label: nothing to clear\n", l.Name) })
				}
				if err != nil {
					return labelChanged(args[0], err)
				}
				return g.print(l, func() { printf("template %s unlabelled\n", l.Name) })
			}
			l, err := g.admin().LabelOSTemplateIf(c.Context(), args[0], out, read)
			if err != nil {
				return labelChanged(args[0], err)
			}
			return g.print(l, func() { printf("template %s labelled: %s\n", l.Name, templateLine(l)) })
		},
	}
	label.Flags().StringVar(&req.Family, "family", "", "OS family (ubuntu)")
	label.Flags().StringVar(&req.Version, "version", "", "OS version (24.04)")
	label.Flags().StringVar(&req.DisplayName, "display-name", "", "name shown to customers (Ubuntu 24.04 LTS)")
	unlabel := adminCmd(g, "unlabel NAME", "Remove a template's label (it falls back to its name)", cobra.ExactArgs(1), func(c *cobra.Command, args []string) (api.OSTemplateLabel, error) {
		return g.admin().UnlabelOSTemplate(c.Context(), args[0])
	}, func(l api.OSTemplateLabel) { printf("template %s unlabelled\n", l.Name) })
	list := adminCmd(g, "list", "List the template labels (whether or not a node holds the template now)", cobra.NoArgs, func(c *cobra.Command, _ []string) ([]api.OSTemplateLabel, error) {
		return g.admin().OSTemplateLabels(c.Context())
	}, func(ls []api.OSTemplateLabel) {
		table(os.Stdout, "NAME\tFAMILY\tVERSION\tDISPLAY_NAME", ls, func(tw io.Writer, l api.OSTemplateLabel) {
			fprintf(tw, "%s\t%s\t%s\t%s\n", l.Name, dash(l.Family), dash(l.Version), dash(l.DisplayName))
		})
	})
	cmd.AddCommand(label, unlabel, list)
	return cmd
}

// afterTemplateLabelRead, when set (tests), runs between template label's
// read of the label and its write.
var afterTemplateLabelRead func()

// labelChanged says what a 412 to template label's write means for the
// operator (err otherwise).
func labelChanged(name string, err error) error {
	if api.StatusOf(err) == http.StatusPreconditionFailed {
		return fmt.Errorf("template %s: its label was changed by someone else after this command read it; nothing changed here, run the command again: %w", name, err)
	}
	return err
}

func templateLine(l api.OSTemplateLabel) string {
	return fmt.Sprintf("family %s, version %s, display name %s", dash(l.Family), dash(l.Version), dash(l.DisplayName))
}
