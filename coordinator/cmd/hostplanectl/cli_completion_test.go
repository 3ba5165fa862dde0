package main

import (
	"strings"
	"testing"
)

// TestShellCompletionOfBlankWords: the shell completion scripts hostplanectl
// ships (completion bash|zsh|fish, gen-docs --completions) ask the binary for
// candidates as `hostplanectl __complete WORDS… ""`, the word being
// completed last and empty after a space; each answer is the candidates, then
// ":<directive>", exit 0. The blank-argument refusal (2519d88) must not
// apply to that request: with it, every <TAB> after a space answered
// 'error: argument 2 is empty', exit 2, and no candidates.
func TestShellCompletionOfBlankWords(t *testing.T) {
	bin := buildCtl(t)
	for _, tc := range []struct {
		args []string
		want []string // candidates expected among the answer's lines
	}{
		{[]string{"__complete", ""}, []string{"server", "hosting", "cluster"}},
		{[]string{"__complete", "server", ""}, []string{"create", "list", "show"}},
		{[]string{"__completeNoDesc", "server", ""}, []string{"create", "list", "show"}},
		{[]string{"__complete", "hosting", "password-reset", " "}, nil},
		{[]string{"__complete", "server", "list", "--account", ""}, nil},
		{[]string{"__complete", "cluster", "backup", "."}, nil},
	} {
		stdout, stderr, code := runCtl(t, bin, tc.args...)
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		if code != 0 || !strings.HasPrefix(lines[len(lines)-1], ":") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 0 and candidates ending in :<directive>", tc.args, code, stdout, stderr)
			continue
		}
		for _, w := range tc.want {
			found := false
			for _, l := range lines {
				found = found || l == w || strings.HasPrefix(l, w+"\t")
			}
			if !found {
				t.Errorf("%q: no candidate %q in %q", tc.args, w, stdout)
			}
		}
	}
}
