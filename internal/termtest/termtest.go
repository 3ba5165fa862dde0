// Package termtest is the tests' check of text printed for an operator's
// terminal, shared by hostplanectl's printer tests and tests/audit's runs
// of the built hostplanectl.
package termtest

import (
	"fmt"
	"unicode"
)

// Unsafe lists (as U+XXXX) the runes of out that a terminal takes as other
// than text: control characters but the newline (and the tab when
// multiline), bidi controls, line and paragraph separators.
func Unsafe(out string, multiline bool) []string {
	var bad []string
	for _, r := range out {
		switch {
		case r == '\n', multiline && r == '\t':
		case unicode.IsControl(r), unicode.Is(unicode.Bidi_Control, r), r == '\u2028', r == '\u2029':
			bad = append(bad, fmt.Sprintf("%U", r))
		}
	}
	return bad
}
