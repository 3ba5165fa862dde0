package httpapi

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestIntegerFieldsSayInteger: a number that is not an integer, or one out of
// the field's range, in an integer field is a 400 naming the field and saying
// it must be an integer. Before, rate_limit_per_min 1.5 (and a domain order's
// years 1.5, 1e2 or 99999999999999999999, found with curl) was refused with
// 'field "years" must be a number, not number 1.5': the client had sent a
// number.
func TestIntegerFieldsSayInteger(t *testing.T) {
	for _, v := range []string{"1.5", "1e2", "99999999999999999999", "-1e309"} {
		body := `{"name":"a","scopes":["tickets:read"],"rate_limit_per_min":` + v + `}`
		_, err := DecodeKeyCreate([]byte(body), time.Now())
		var he *httpError
		if !errors.As(err, &he) || he.status != 400 || he.code != "invalid_field" ||
			!strings.Contains(he.msg, `field "rate_limit_per_min" must be an integer`) || strings.Contains(he.msg, "must be a number") {
			t.Errorf("rate_limit_per_min %s: %v, want a 400 saying the field must be an integer", v, err)
		}
	}
	// Other kinds keep their words.
	if _, err := DecodeKeyCreate([]byte(`{"name":7,"scopes":["tickets:read"]}`), time.Now()); err == nil || !strings.Contains(err.Error(), `field "name" must be a string, not number`) {
		t.Errorf("a number as name: %v", err)
	}
}
