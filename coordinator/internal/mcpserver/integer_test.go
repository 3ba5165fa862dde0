package mcpserver

import (
	"errors"
	"testing"
)

// TestBuildIntegerArgument: an integer parameter's argument written as a
// number with a zero fractional part (JSON Schema's integer, draft 6 on) is
// put in the query as the integer; a number beyond the integers a float64
// holds exactly goes as written (the operation's own refusal of its range).
// A number with a fraction, a string ("5.0") or a boolean is not an integer:
// refused, naming the argument (before, each went to the query as written,
// and "5" listed five).
func TestBuildIntegerArgument(t *testing.T) {
	get := standIn(t).ByName("get_widget")
	for arg, query := range map[string]string{
		`5`:                  "limit=5",
		`5.0`:                "limit=5",
		`50e-1`:              "limit=5",
		`0.5E1`:              "limit=5",
		`-0.0`:               "limit=0",
		`1e400`:              "limit=1e400",
		`1e20`:               "limit=1e20", // beyond the integers a float64 holds exactly
		`9007199254740992.0`: "limit=9007199254740992",
	} {
		c, err := get.Build([]byte(`{"id":"w","limit":` + arg + `}`))
		if err != nil {
			t.Errorf("limit %s: %v", arg, err)
			continue
		}
		if want := "/v1/widgets/w?" + query; c.Path != want {
			t.Errorf("limit %s: %s; want %s", arg, c.Path, want)
		}
	}
	for arg, msg := range map[string]string{
		`5.5`:   `argument "limit": must be an integer, not number 5.5`,
		`"5"`:   `argument "limit": must be an integer, not string`,
		`"5.0"`: `argument "limit": must be an integer, not string`,
		`true`:  `argument "limit": must be an integer, not boolean`,
	} {
		_, err := get.Build([]byte(`{"id":"w","limit":` + arg + `}`))
		var ae *ArgError
		if !errors.As(err, &ae) || ae.Field != "limit" || err.Error() != msg {
			t.Errorf("limit %s: %v; want %s", arg, err, msg)
		}
	}
	// A string parameter takes a string, as a /v1 body's string field does.
	for _, arg := range []string{`1`, `true`, `-1.5e3`} {
		_, err := get.Build([]byte(`{"id":` + arg + `}`))
		var ae *ArgError
		if !errors.As(err, &ae) || ae.Field != "id" {
			t.Errorf("id %s: %v; want a refusal naming id", arg, err)
		}
	}
}
