// Package clicmd holds what the project's cobra command trees share.
package clicmd

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// RejectUnknownSubcommands makes every command of root's tree that only
// groups subcommands refuse an unknown one. cobra refuses an unknown command
// only at the root: `hostplanectl account lst` printed the account command's
// help and exited 0, so a script with a typo went on as if it had worked.
// Such a command now fails before its hooks run (bad usage), naming the
// command and cobra's suggestions; without arguments it prints its help, as
// before.
func RejectUnknownSubcommands(root *cobra.Command) {
	for _, c := range root.Commands() {
		RejectUnknownSubcommands(c)
	}
	if !root.HasSubCommands() || root.Runnable() || !root.HasParent() {
		return // the root refuses unknown commands itself
	}
	root.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if cmd.SuggestionsMinimumDistance <= 0 {
			cmd.SuggestionsMinimumDistance = 2 // as cobra sets it for the root
		}
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
		}
		return fmt.Errorf("%s\nRun '%s --help' for its commands", msg, cmd.CommandPath())
	}
	root.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
}
