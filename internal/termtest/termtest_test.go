package termtest

import (
	"slices"
	"testing"
)

// TestUnsafe: what a terminal acts on is listed in order (C0 and C1
// controls, a bidi override, line and paragraph separators); text, the
// newline and, in multiline output, the tab are not.
func TestUnsafe(t *testing.T) {
	if bad := Unsafe("plain Ayşe\nnext line ✓\n", false); bad != nil {
		t.Errorf("plain text: %v, want none", bad)
	}
	hostile := "a\x1b[2J\u009b31m\u202egnp\u0085x\u2028y\u2029\r\x00"
	want := []string{"U+001B", "U+009B", "U+202E", "U+0085", "U+2028", "U+2029", "U+000D", "U+0000"}
	if bad := Unsafe(hostile, true); !slices.Equal(bad, want) {
		t.Errorf("hostile text: %v, want %v", bad, want)
	}
	if bad := Unsafe("a\tb", false); !slices.Equal(bad, []string{"U+0009"}) {
		t.Errorf("a tab on one line: %v, want U+0009", bad)
	}
	if bad := Unsafe("a\tb", true); bad != nil {
		t.Errorf("a tab in multiline output: %v, want none", bad)
	}
}
