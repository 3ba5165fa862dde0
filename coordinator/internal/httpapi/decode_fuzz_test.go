package httpapi

import (
	"errors"
	"net/http"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hostplane/hostplane/pkg/api"
	"golang.org/x/text/unicode/norm"
)

var decoderSeeds = []string{
	`{"subject":"Need help","message":"hi","department":"technical","priority":"medium"}`,
	`{"subject":1}`, `{"subject":"a","message":"b","extra":true}`, `{`, ``, `[]`, `null`, `"x"`,
	`{"subject":"a","message":"b"} {"x":1}`, `{"subject":"\u0000","message":"b"}`, `{"body":"thanks"}`,
	`{"email":"a@example.com","name":"A","country":"TR"}`, `{"email":"jose\u0301@example.com"}`, `{"email":"jos\u00e9@example.com"}`, `{"scopes":["tickets:read"],"allowed_cidrs":["10.0.0.0/8"]}`,
	`{"scopes":["nope"]}`, `{"expires_at":"2001-01-01T00:00:00Z"}`, `{"allowed_cidrs":["300.1.1.1/99"]}`,
}

// mustBeClientError asserts a decoder error is a 4xx httpError (never a panic or
// a 500).
func mustBeClientError(t *testing.T, err error) {
	t.Helper()
	var he *httpError
	if !errors.As(err, &he) || he.status < 400 || he.status >= 500 || he.msg == "" {
		t.Fatalf("decoder error is not a clear 4xx: %#v", err)
	}
}

// fuzzDecoder seeds f with seeds and fuzzes decode: an error must be a clear
// 4xx (mustBeClientError), and whatever decodes must pass check.
func fuzzDecoder[T any](f *testing.F, seeds []string, decode func([]byte) (T, error), check func(t *testing.T, req T)) {
	f.Helper()
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decode(body)
		if err != nil {
			mustBeClientError(t, err)
			return
		}
		check(t, req)
	})
}

func FuzzDecodeTicketCreate(f *testing.F) {
	fuzzDecoder(f, decoderSeeds, DecodeTicketCreate, func(t *testing.T, req api.TicketCreateRequest) {
		if !utf8.ValidString(req.Subject) || req.Subject == "" || utf8.RuneCountInString(req.Subject) > maxSubject || req.Message == "" {
			t.Fatalf("accepted invalid ticket: %+v", req)
		}
		if oneOf("priority", req.Priority, api.TicketPriorities) != nil || oneOf("department", req.Department, api.TicketDepartments) != nil {
			t.Fatalf("accepted bad enum: %+v", req)
		}
	})
}

func FuzzDecodeTicketReply(f *testing.F) {
	fuzzDecoder(f, decoderSeeds, DecodeTicketReply, func(t *testing.T, req api.TicketReplyRequest) {
		if req.Body == "" || !utf8.ValidString(req.Body) {
			t.Fatalf("accepted invalid reply: %+v", req)
		}
	})
}

func FuzzDecodeAccountCreate(f *testing.F) {
	fuzzDecoder(f, decoderSeeds, DecodeAccountCreate, func(t *testing.T, req api.AccountCreateRequest) {
		if req.Email == "" || !isCountry(req.Country) || !norm.NFC.IsNormalString(req.Email) {
			t.Fatalf("accepted invalid account: %+v", req)
		}
	})
}

func FuzzDecodeKeyCreate(f *testing.F) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	decode := func(body []byte) (api.KeyCreateRequest, error) { return DecodeKeyCreate(body, now) }
	fuzzDecoder(f, decoderSeeds, decode, func(t *testing.T, req api.KeyCreateRequest) {
		for _, s := range req.Scopes {
			if !api.IsScope(s) {
				t.Fatalf("accepted unknown scope %q", s)
			}
		}
		if req.ExpiresAt != nil && !req.ExpiresAt.After(now) {
			t.Fatal("accepted a past expiry")
		}
	})
}

func TestDecodeErrorsNameTheField(t *testing.T) {
	cases := map[string]string{
		`{"subject":1,"message":"m"}`:                  `field "subject" must be a string, not number`,
		`{"subject":"s","message":"m","x":1}`:          `unknown field "x"`,
		`{"subject":"","message":"m"}`:                 `field "subject" is required`,
		`{"subject":"s","message":"m","priority":"p"}`: `field "priority" must be one of low, medium, high, urgent`,
		`{"subject":"s"`:                               `malformed JSON: unexpected end of body`,
		``:                                             `request body is required (a JSON object)`,
	}
	for body, want := range cases {
		_, err := DecodeTicketCreate([]byte(body))
		var he *httpError
		if !errors.As(err, &he) || he.status != http.StatusBadRequest || he.msg != want {
			t.Errorf("body %q: got %v, want 400 %q", body, err, want)
		}
	}
}

func FuzzDecodeAdminBodies(f *testing.F) {
	for _, s := range append(decoderSeeds, `{"amount_usd_cents":2500,"gateway":"card"}`, `{"amount_usd_cents":-1}`,
		`{"lines":[{"description":"VPS","quantity":2,"unit_price_usd_cents":600}],"pay_from_wallet":true}`,
		`{"lines":[{"description":"x","quantity":99999999999,"unit_price_usd_cents":99999999999}]}`,
		`{"body":"fixed","staff_name":"Ayşe"}`, `{"status":"closed"}`, `{"id":"n2","raft_addr":"127.0.0.1:1"}`) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if w, err := DecodeWalletCredit(body); err != nil {
			mustBeClientError(t, err)
		} else if w.AmountUsdCents <= 0 || w.Gateway == "" {
			t.Fatalf("accepted credit %+v", w)
		}
		if _, lines, err := DecodeInvoiceIssue(body); err != nil {
			mustBeClientError(t, err)
		} else {
			for _, l := range lines {
				if l.Quantity < 1 || l.Quantity*l.UnitPriceUsdCents < 0 {
					t.Fatalf("accepted line %+v", l)
				}
			}
		}
		if r, err := DecodeStaffReply(body); err != nil {
			mustBeClientError(t, err)
		} else if r.Body == "" || r.StaffName == "" {
			t.Fatalf("accepted reply %+v", r)
		}
	})
}
