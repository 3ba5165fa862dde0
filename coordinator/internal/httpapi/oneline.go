package httpapi

import "github.com/hostplane/hostplane/pkg/validate"

// oneLine checks a free-text field that names or labels something, or that
// a listing shows as one line (an API key's name, a ticket's subject, a
// webhook's description…): text's rule, and no line break, tab or other
// control character (C0, DEL, C1), nor U+2028/U+2029, which a terminal or a
// page shows as a line break. Before, these took text's rule only, which
// lets multi-line fields (a ticket's message) hold "\n", "\r" and "\t", and
// "hostplanectl key list" showed a name sent as "a\nb" over two lines. Text
// already stored with such characters is shown as it is: the rule is the
// decoder's, not the FSM's.
//
// Nor a Unicode bidi control (unicode.Bidi_Control: U+061C, U+200E, U+200F,
// U+202A–U+202E, U+2066–U+2069): a name holding U+202E renders reversed
// after it ("Trojan Source"), so a key named "evil\u202egnp.exe" shows as
// "evilexe.png" in "hostplanectl key list" and on a dashboard, and an
// override left open reorders the columns printed after it. The
// multi-line fields (a ticket's message, a reply) keep them: there they are
// what right-to-left prose uses (an RLM or an Arabic letter mark beside
// digits and Latin words), a message is shown as a block of its own rather
// than as a cell of a listing, and a renderer ends every embedding at the
// paragraph's end.
func oneLine(field, s string, min, max int) error {
	if err := text(field, s, min, max); err != nil {
		return err
	}
	for _, r := range s {
		if why := validate.OneLineRune(r); why != "" {
			return invalidField(field, "%s", why)
		}
	}
	return nil
}
