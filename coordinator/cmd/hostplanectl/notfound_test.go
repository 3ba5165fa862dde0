package main

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/internal/clicmd"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestShowNamesTheMissingID: each `show` and `get` of the coordinator's
// commands, given an id that names nothing, fails with the 404 (exit code
// and errors.As unchanged) and an error line that names the kind and the
// id; before, `account show acc_missing` printed "account not found" and
// not which. (An id holding a control character is refused before it is
// sent: the client's own error names it.)
func TestShowNamesTheMissingID(t *testing.T) {
	_, g, _ := cliCluster(t)
	for _, c := range []struct{ kind, id string }{
		{"account", "acc_mcp60missing"},
		{"account", "nobody-mcp60@example.com"},
		{"ticket", "tkt_mcp60missing"},
		{"server", "srv_mcp60missing"},
		{"domain", "dom_mcp60missing"},
		{"ip-pool", "mcp60-missing"},
		{"action", "act_mcp60missing"},
	} {
		sub := "show"
		if c.kind == "action" {
			sub = "get"
		}
		started := false
		root := newRootCmd(&globals{}, &started)
		root.SetArgs([]string{"--socket", g.socket, c.kind, sub, c.id})
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		err := root.Execute()
		var nf *clicmd.NotFoundError
		line := errorLine(err, err)
		if api.StatusOf(err) != 404 || !errors.As(err, &nf) || exitCode(err, started) != 1 ||
			!strings.HasPrefix(line, c.kind+" ") || !strings.Contains(line, escapeLine(c.id)) || strings.ContainsAny(line, "\x1b\n") {
			t.Errorf("%s %s %q: %v (line %q); want the 404, exit 1, a line naming %s and the id", c.kind, sub, c.id, err, line, c.kind)
		}
	}
}
