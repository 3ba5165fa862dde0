package certissue

import (
	"errors"
	"fmt"
	"testing"

	"github.com/go-acme/lego/v5/acme"
)

// TestRefused: only a client error other than a rate limit means the ACME
// server will not serve a recorded order (so it is ordered anew); a network
// error, a 5xx or a 429 keeps the order to resume.
func TestRefused(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&acme.ProblemDetails{HTTPStatus: 404, Type: "urn:ietf:params:acme:error:malformed"}, true},
		{fmt.Errorf("order: %w", &acme.ProblemDetails{HTTPStatus: 403}), true},
		{&acme.ProblemDetails{HTTPStatus: 429, Type: "urn:ietf:params:acme:error:rateLimited"}, false},
		{&acme.ProblemDetails{HTTPStatus: 503}, false},
		{errors.New("404 ::POST :: https://ca.test/my-order/x :: unexpected end of JSON input :: "), true},
		{errors.New("502 ::POST :: https://ca.test/my-order/x :: unexpected end of JSON input :: "), false},
		{errors.New(`Post "https://ca.test/my-order/x": connection reset by peer`), false},
	} {
		if got := refused(c.err); got != c.want {
			t.Errorf("refused(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
