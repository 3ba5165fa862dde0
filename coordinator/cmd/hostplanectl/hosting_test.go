package main

import (
	"errors"
	"strings"
	"testing"
)

// hostplanectl hosting create names the missing flag before calling anything.
func TestHostingCreateUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"create"}, "--account"},
		{[]string{"create", "--account", "acc_1"}, "--plan"},
		{[]string{"create", "--account", "acc_1", "--plan", "hosting-starter"}, "--domain"},
		{[]string{"create", "--account", "acc_1", "--plan", "hosting-starter", "--domain", "example.com"}, "--username"},
		{[]string{"password-reset", "hst_1", "--target", "root"}, "--target must be one of sftp, db, both"},
	} {
		cmd := newHostingCmd(&globals{})
		cmd.SetArgs(c.args)
		cmd.SetOut(&strings.Builder{})
		cmd.SetErr(&strings.Builder{})
		err := cmd.Execute()
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want a usage error naming %s", c.args, err, c.want)
		}
	}
}
