package validate

import (
	"fmt"
	"unicode"
)

// OneLineRune says why r may not stand in a one-line field (a name or a
// label a listing prints as one line: an API key's name, a ticket's
// subject, an OAuth client's name), or "" when it may: no line break, tab
// or other control character (C0, DEL, C1), nor U+2028/U+2029, which a
// terminal or a page shows as a line break; nor a Unicode bidi control
// (unicode.Bidi_Control: U+061C, U+200E, U+200F, U+202A–U+202E,
// U+2066–U+2069), after which a name holding U+202E renders reversed
// ("Trojan Source": "evil\u202egnp.exe" shows as "evilexe.png"), and an
// override left open reorders the columns printed after it. The coordinator's
// API (httpapi oneLine) and its OAuth client registration share this one
// rule.
func OneLineRune(r rune) string {
	switch {
	case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
		return "must be one line: no line break, tab or other control character"
	case unicode.Is(unicode.Bidi_Control, r):
		return fmt.Sprintf("must not hold a bidirectional control character (U+%04X), which reorders how the text is shown", r)
	}
	return ""
}
