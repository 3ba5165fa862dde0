package httpapi

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestBadTimeWithAnEscapeNamesTheField: a time member whose string is
// written with a JSON escape (a control character, a quote, a non-ASCII
// letter as \uXXXX) is refused naming the member, as one without is
// (TestBadTimesNameTheField). Before, time.Time's UnmarshalJSON reported the
// text as written, still escaped, which the search for the member compared
// with the decoded string: POST /v1/account/api-keys with
// "expires_at":"p59\u0000nul" was a 400 invalid_request "a time in the
// request body must be …", naming no member (probe59, outside-in).
func TestBadTimeWithAnEscapeNamesTheField(t *testing.T) {
	for _, v := range []string{`p59\u0000nul`, `p59\u0007bel`, `2030-01-02T15:04:05Z\n`, `\"2030\"`, `caf\u00e9`, `a\/b`} {
		body := `{"name":"a","scopes":["tickets:read"],"expires_at":"` + v + `"}`
		_, err := DecodeKeyCreate([]byte(body), time.Now())
		var he *httpError
		if !errors.As(err, &he) || he.status != 400 || he.code != "invalid_field" || !strings.Contains(he.msg, `field "expires_at" must be a date and time as in RFC 3339`) {
			t.Errorf("%s: %v, want a 400 invalid_field naming expires_at", body, err)
		}
	}
	// The same escaped text in another member first is not taken for it.
	body := `{"name":"p59\u0000nul","scopes":["tickets:read"],"allowed_cidrs":[],"expires_at":"p59\u0000nul"}`
	_, err := DecodeKeyCreate([]byte(body), time.Now())
	var he *httpError
	if !errors.As(err, &he) || !strings.Contains(he.msg, `field "expires_at"`) {
		t.Errorf("%s: %v, want a 400 naming expires_at", body, err)
	}
}
