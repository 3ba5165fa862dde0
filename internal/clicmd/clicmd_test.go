package clicmd

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func tree() (root *cobra.Command, ran *[]string) {
	var calls []string
	root = &cobra.Command{Use: "ctl", SilenceUsage: true, SilenceErrors: true}
	account := &cobra.Command{Use: "account", Short: "accounts"}
	account.AddCommand(&cobra.Command{Use: "list", RunE: func(*cobra.Command, []string) error { calls = append(calls, "list"); return nil }})
	key := &cobra.Command{Use: "key", Short: "keys"}
	rotate := &cobra.Command{Use: "rotate", Short: "rotations"} // a group beneath a group
	rotate.AddCommand(&cobra.Command{Use: "now", RunE: func(*cobra.Command, []string) error { calls = append(calls, "now"); return nil }})
	key.AddCommand(rotate)
	root.AddCommand(account, key)
	root.PersistentPreRun = func(*cobra.Command, []string) { calls = append(calls, "hook") }
	RejectUnknownSubcommands(root)
	return root, &calls
}

func run(args ...string) (string, []string, error) {
	root, ran := tree()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), *ran, err
}

func TestRejectUnknownSubcommands(t *testing.T) {
	for _, args := range [][]string{{"account", "lst"}, {"key", "rotate", "nwo"}, {"account", "lst", "--help=false"}} {
		_, ran, err := run(args...)
		if err == nil || !strings.Contains(err.Error(), "unknown command") {
			t.Errorf("%v: %v, want unknown command", args, err)
		}
		if len(ran) != 0 {
			t.Errorf("%v: ran %v before refusing (bad usage fails before hooks)", args, ran)
		}
	}
	if _, _, err := run("account", "lst"); !strings.Contains(err.Error(), "Did you mean this?\n\tlist") {
		t.Errorf("no suggestion: %v", err)
	}
	// A group alone prints its help; its subcommands still run.
	if out, _, err := run("account"); err != nil || !strings.Contains(out, "list") {
		t.Errorf("account alone: %v %q", err, out)
	}
	if _, ran, err := run("key", "rotate", "now"); err != nil || strings.Join(ran, ",") != "hook,now" {
		t.Errorf("key rotate now: %v %v", err, ran)
	}
}

type notFoundErr struct{}

func (notFoundErr) Error() string { return "thing not found" }

// TestNameNotFound: a show or get whose error is a not-found answer names
// the kind (its parent) and the id, and still wraps the answer; other
// errors and other commands are left as they are.
func TestNameNotFound(t *testing.T) {
	root := &cobra.Command{Use: "ctl", SilenceUsage: true, SilenceErrors: true}
	widget := &cobra.Command{Use: "widget"}
	fail := func(err error) func(*cobra.Command, []string) error {
		return func(*cobra.Command, []string) error { return err }
	}
	other := errors.New("boom")
	widget.AddCommand(&cobra.Command{Use: "show", Args: cobra.ExactArgs(1), RunE: fail(notFoundErr{})},
		&cobra.Command{Use: "get", Args: cobra.ExactArgs(1), RunE: fail(other)},
		&cobra.Command{Use: "delete", Args: cobra.ExactArgs(1), RunE: fail(notFoundErr{})})
	root.AddCommand(widget)
	NameNotFound(root, func(err error) bool { return errors.As(err, new(notFoundErr)) })
	exec := func(args ...string) error { root.SetArgs(args); return root.Execute() }
	var nf *NotFoundError
	if err := exec("widget", "show", "w\n1"); !errors.As(err, &nf) || err.Error() != `widget "w\n1": thing not found` || !errors.As(err, new(notFoundErr)) {
		t.Errorf("widget show: %v", err)
	}
	if err := exec("widget", "get", "w1"); err != other {
		t.Errorf("widget get with another error: %v", err)
	}
	if err := exec("widget", "delete", "w1"); errors.As(err, &nf) {
		t.Errorf("widget delete: %v; only show and get are named", err)
	}
}
