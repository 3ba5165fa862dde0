package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/internal/termtest"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestErrorLinesKeepOutsideTextOnOneLine runs the real binary against a
// socket whose error answers carry a newline, a tab, a carriage return and
// other controls in their text (a coordinator's message quoting a
// registry's or a node's words; an agent's operation error): hostplanectl
// prints each error on one line, those characters written as escapes
// (\n, \t, \r, \x1b, \u202e), so no answer forges a line of its own on
// stderr; a backslash the text carries is doubled, so the two characters
// \n it typed read apart from a newline. A leader_unreachable error is that line and hostplanectl's own
// hint under it.
func TestErrorLinesKeepOutsideTextOnOneLine(t *testing.T) {
	bin := buildCtl(t)
	const hostile = "no such thing\nerror: forged line\tafter a tab\r\x1b[31mred\u202eevil\u0085 typed \\n"
	const escaped = `no such thing\nerror: forged line\tafter a tab\r\x1b[31mred\u202eevil\u0085 typed \\n`
	sock := serveSocket(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/admin/accounts/acc_1":
			w.WriteHeader(404)
			_ = json.NewEncoder(w).Encode(api.NewError(404, "not_found", hostile))
		case "/admin/accounts/acc_2":
			w.WriteHeader(503)
			_ = json.NewEncoder(w).Encode(api.NewError(503, "leader_unreachable", hostile))
		case "/admin/accounts/acc_1/wallet/credit":
			w.WriteHeader(400)
			_ = json.NewEncoder(w).Encode(api.NewError(400, "invalid_field", `field "amount_usd_cents" must be `+hostile))
		case "/v1/vms/vm2":
			w.WriteHeader(404)
			_ = json.NewEncoder(w).Encode(api.NodeErrorResponse{Error: api.NodeError{Code: api.NodeErrNotFound, Message: hostile}})
		case "/v1/vms/vm1":
			w.WriteHeader(409)
			_ = json.NewEncoder(w).Encode(api.NodeErrorResponse{Error: api.NodeError{Code: "conflict", Message: hostile}})
		default:
			w.WriteHeader(500)
		}
	})

	for _, c := range []struct {
		args  []string
		code  int
		lines []string // what stderr's lines must start with, in order
	}{
		// A not-found answer to a show names the kind and the id first (mcp60).
		{[]string{"--socket", sock, "account", "show", "acc_1"}, 1, []string{`error: account "acc_1": 404 Not Found: ` + escaped + " (not_found)"}},
		{[]string{"--socket", sock, "account", "show", "acc_2"}, 1, []string{"error: 503 Service Unavailable: " + escaped + " (leader_unreachable)", "(this coordinator forwarded"}},
		// A 400 said as the flag's usage error (flagOfField copies the text).
		{[]string{"--socket", sock, "wallet", "credit", "acc_1", "--amount", "5"}, 2, []string{`error: --amount: 400 Bad Request: field "amount_usd_cents" must be ` + escaped + " (invalid_field)"}},
		{[]string{"node", "vm", "show", "vm1", "--socket", sock}, 1, []string{"error: "}},
		// The agent's not-found answer names the kind and the id too (mcp61).
		{[]string{"node", "vm", "show", "vm2", "--socket", sock}, 1, []string{`error: vm "vm2": ` + escaped}},
	} {
		out, errOut, code := runCtl(t, bin, c.args...)
		lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
		ok := code == c.code && out == "" && len(lines) == len(c.lines) && strings.Contains(lines[0], escaped)
		for i := range c.lines {
			ok = ok && i < len(lines) && strings.HasPrefix(lines[i], c.lines[i])
		}
		if bad := termtest.Unsafe(errOut, false); !ok || len(bad) > 0 {
			t.Errorf("hostplanectl %s: exit %d, stdout %q, stderr:\n%s\n(%q, %v raw)\nwant exit %d and %d line(s) starting %q, the answer's text escaped on one line",
				strings.Join(c.args, " "), code, out, errOut, errOut, bad, c.code, len(c.lines), c.lines)
		}
	}
}

// TestEscapeLine: escapeLine's text reads as a Go string literal's (quotes
// aside), and a quote is left as it is.
func TestEscapeLine(t *testing.T) {
	for in, want := range map[string]string{
		"plain Ayşe":                 "plain Ayşe",
		`field "name" must be set`:   `field "name" must be set`,
		"a\\nb":                      `a\\nb`,
		"a\\\"b":                     `a\\"b`,
		"a\nb":                       `a\nb`,
		"line\nnext\tcol\r\a\x1b[2J": `line\nnext\tcol\r\a\x1b[2J`,
		"bad \xff utf8":              `bad \xff utf8`,
		"rtl \u202e \u2028 \u0085":   `rtl \u202e \u2028 \u0085`,
	} {
		if got := escapeLine(in); got != want {
			t.Errorf("escapeLine(%q) = %s, want %s", in, got, want)
		}
		if bad := termtest.Unsafe(escapeLine(in), false); len(bad) > 0 {
			t.Errorf("escapeLine(%q) leaves %v", in, bad)
		}
	}
}
