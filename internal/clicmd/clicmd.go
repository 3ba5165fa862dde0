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

// NameNotFound makes every "show" and "get" command of root's tree (a
// command given one id, as `account show ID`) name what it looked for when
// notFound says its error is a not-found answer: `account "acc_x": account
// not found` rather than the coordinator's "account not found" alone, which
// did not say which id (in a script's log, of which of its commands). The
// kind is the parent command's name. The answer stays wrapped (errors.As
// and errors.Is see it: the exit code and hints do not change); the id is
// quoted as a Go string, so what the operator typed prints on one line.
func NameNotFound(root *cobra.Command, notFound func(error) bool) {
	for _, c := range root.Commands() {
		NameNotFound(c, notFound)
	}
	if (root.Name() != "show" && root.Name() != "get") || root.RunE == nil || !root.HasParent() {
		return
	}
	kind, run := root.Parent().Name(), root.RunE
	root.RunE = func(cmd *cobra.Command, args []string) error {
		err := run(cmd, args)
		if err != nil && len(args) == 1 && notFound(err) {
			return &NotFoundError{Kind: kind, ID: args[0], Err: err}
		}
		return err
	}
}

// NotFoundError is a not-found answer to a command that looked for one
// Kind by ID.
type NotFoundError struct {
	Kind, ID string
	Err      error
}

func (e *NotFoundError) Error() string { return fmt.Sprintf("%s %q: %v", e.Kind, e.ID, e.Err) }

// Unwrap is the answer itself.
func (e *NotFoundError) Unwrap() error { return e.Err }
