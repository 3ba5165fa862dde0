package httpapi

import (
	"errors"
	"strings"
	"testing"
)

// TestBodyMustBeAnObject: a request body that is JSON but not an object is a
// 400 saying so, null as much as [] or "x". encoding/json decodes a top-level
// null into a struct as nothing, so before, PATCH /v1/webhooks/:id with null
// answered "nothing to change", POST /v1/tickets with null named its first
// missing field, and an optional body of null (power actions) took the
// defaults.
func TestBodyMustBeAnObject(t *testing.T) {
	decoders := map[string]func([]byte) error{
		"ticket create": func(b []byte) error { _, err := DecodeTicketCreate(b); return err },
		"webhook update": func(b []byte) error {
			_, err := DecodeWebhookUpdate(b, nil)
			return err
		},
		"power reboot": func(b []byte) error { _, err := DecodePower("reboot", b); return err },
		"label":        func(b []byte) error { _, err := DecodeLabel(b); return err },
	}
	for name, decode := range decoders {
		for _, body := range []string{`null`, ` null `, "null\n", `[]`, `"x"`, `1`, `true`} {
			err := decode([]byte(body))
			var he *httpError
			if !errors.As(err, &he) || he.status != 400 || !strings.Contains(he.msg, "request body must be a JSON object, not ") {
				t.Errorf("%s, body %q: %v, want a 400 saying the body must be a JSON object", name, body, err)
			}
		}
	}
	// An object still decodes, and an optional body may still be left out.
	if _, err := DecodePower("reboot", nil); err != nil {
		t.Errorf("reboot without a body: %v", err)
	}
	if req, err := DecodePower("reboot", []byte(`{"force":true}`)); err != nil || !req.Force {
		t.Errorf("reboot {force:true}: %+v %v", req, err)
	}
}
