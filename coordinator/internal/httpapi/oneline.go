package httpapi

import "unicode"

// oneLine checks a free-text field that names or labels something, or that
// a listing shows as one line (an API key's name, a ticket's subject, a
// webhook's description…): text's rule, and no line break, tab or other
// control character (C0, DEL, C1), nor U+2028/U+2029, which a terminal or a
// page shows as a line break. Before, these took text's rule only, which
// lets multi-line fields (a ticket's message) hold "\n", "\r" and "\t", and
// "hostplanectl key list" showed a name sent as "a\nb" over two lines. Text
// already stored with such characters is shown as it is: the rule is the
// decoder's, not the FSM's.
func oneLine(field, s string, min, max int) error {
	if err := text(field, s, min, max); err != nil {
		return err
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return invalidField(field, "must be one line: no line break, tab or other control character")
		}
	}
	return nil
}
