package httpapi

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
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

// TestBadTimesNameTheField: a time that is not RFC 3339 is a 400 naming the
// field and the form wanted. Before, POST /v1/account/api-keys with
// "expires_at":"2099-12-03" (found with curl on make run) was 'malformed JSON:
// parsing time "2099-12-03" as "2006-01-02T15:04:05Z07:00": cannot parse ""
// as "T"', code invalid_request, on JSON that was well formed, and a number
// there said 'malformed JSON: Time.UnmarshalJSON: input is not a JSON string'.
func TestBadTimesNameTheField(t *testing.T) {
	const form = "must be a date and time as in RFC 3339"
	for body, want := range map[string]string{
		`{"name":"a","scopes":["tickets:read"],"expires_at":"2099-12-03"}`:           `field "expires_at" ` + form + `, such as 2030-01-02T15:04:05Z, not "2099-12-03"`,
		`{"name":"2099-12-03","scopes":["tickets:read"],"expires_at":"2099-12-03"}`:  `field "expires_at" ` + form,
		`{"name":"a","scopes":["tickets:read"],"expires_at":"2099-13-01T00:00:00Z"}`: `field "expires_at" ` + form,
		`{"name":"a","scopes":["tickets:read"],"expires_at":5}`:                      `field "expires_at" ` + form,
		`{"name":"a","scopes":["tickets:read"],"expires_at":true}`:                   `field "expires_at" ` + form,
	} {
		_, err := DecodeKeyCreate([]byte(body), time.Now())
		var he *httpError
		if !errors.As(err, &he) || he.status != 400 || he.code != "invalid_field" || !strings.Contains(he.msg, want) {
			t.Errorf("%s: %v, want a 400 invalid_field saying %s", body, err, want)
		}
	}
	if req, err := DecodeKeyCreate([]byte(`{"name":"a","scopes":["tickets:read"],"expires_at":"2099-12-03T00:00:00+03:00"}`), time.Now()); err != nil || req.ExpiresAt == nil {
		t.Errorf("an RFC 3339 time: %+v %v", req, err)
	}
}

// TestKeyAllowListEntriesChecked: both ways of minting a key (a customer's
// POST /v1/account/api-keys, the operator's POST /admin/accounts/{id}/keys)
// refuse an allow-list entry auth.CheckCIDR refuses, naming allowed_cidrs.
// Before, "10.0.0.1/8" was stored as given and "::ffff:10.0.0.1" made a key
// no IPv4 client could use (found with curl on make run).
func TestKeyAllowListEntriesChecked(t *testing.T) {
	decoders := map[string]func([]byte) error{
		"customer": func(b []byte) error { _, err := DecodeAPIKeyCreate(nil, b, time.Now()); return err },
		"operator": func(b []byte) error { _, err := DecodeKeyCreate(b, time.Now()); return err },
	}
	for who, decode := range decoders {
		for _, cidr := range []string{"10.0.0.1/8", "::ffff:10.0.0.1", "fe80::1%eth0", " 10.0.0.1"} {
			body := `{"name":"a","scopes":["tickets:read"],"allowed_cidrs":["10.0.0.0/8",` + strconv.Quote(cidr) + `]}`
			err := decode([]byte(body))
			var he *httpError
			if !errors.As(err, &he) || he.status != 400 || !strings.Contains(he.msg, `field "allowed_cidrs": "`) {
				t.Errorf("%s, %q: %v, want a 400 naming allowed_cidrs", who, cidr, err)
			}
		}
		if err := decode([]byte(`{"name":"a","scopes":["tickets:read"],"allowed_cidrs":["10.0.0.0/8","203.0.113.7","2001:db8::/32"]}`)); err != nil {
			t.Errorf("%s, a good allow-list: %v", who, err)
		}
	}
}

// TestMemberNameRefusedBeforeItsValue: a member named in another case, or
// given twice, is refused for its name (unknown_field, duplicate_field, as
// README says) whatever its value; before, a value of the wrong type was
// refused first, as invalid_field naming "department" for {"Department": 1},
// a member the client did not send (probe58). A malformed body is still the
// decoder's malformed JSON, and a wrong type alone still invalid_field.
func TestMemberNameRefusedBeforeItsValue(t *testing.T) {
	for _, c := range []struct{ body, code, names string }{
		{`{"subject":"s","message":"m","Department":1}`, "unknown_field", `"Department"`},
		{`{"subject":"s","message":"m","department":"x","department":2}`, "duplicate_field", `"department"`},
		{`{"SUBJECT":["s"],"message":"m"}`, "unknown_field", `"SUBJECT"`},
		{`{"subject":"s","message":"m","department":1}`, "invalid_field", `"department"`},
		{`{"subject":"s","subject":1,`, "", "malformed JSON"},
	} {
		_, err := DecodeTicketCreate([]byte(c.body))
		var he *httpError
		if !errors.As(err, &he) || he.status != 400 || he.code != c.code && c.code != "" || !strings.Contains(he.msg, c.names) {
			t.Errorf("%s: %v (%+v), want a 400 %s naming %s", c.body, err, he, c.code, c.names)
		}
	}
}
