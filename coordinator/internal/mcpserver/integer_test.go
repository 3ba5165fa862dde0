package mcpserver

import "testing"

// TestBuildIntegerArgument: an integer parameter's argument written as a
// number with a zero fractional part (JSON Schema's integer, draft 6 on) is
// put in the query as the integer; any other number, a string and a
// parameter of another type go as written (the operation's own refusal).
func TestBuildIntegerArgument(t *testing.T) {
	get := standIn(t).ByName("get_widget")
	for arg, query := range map[string]string{
		`5`:                  "limit=5",
		`5.0`:                "limit=5",
		`50e-1`:              "limit=5",
		`0.5E1`:              "limit=5",
		`-0.0`:               "limit=0",
		`5.5`:                "limit=5.5",
		`1e400`:              "limit=1e400",
		`1e20`:               "limit=1e20", // beyond the integers a float64 holds exactly
		`"5.0"`:              "limit=5.0",
		`true`:               "limit=true",
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
}
