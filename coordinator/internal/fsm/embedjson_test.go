package fsm

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
)

// TestEmbeddedLayoutsEncodeAsBefore: stored records and Raft payloads whose
// shared fields moved into an embedded struct (encoding/json flattens it
// where it stands) encode as they did. The golden bytes are what the types as
// declared at c8ddeb3, before the move, encoded with every field zero and with
// every field set by fillLayout (each to its own value, in declaration
// order); the new types must encode to the same bytes, set the same number of
// fields, and read the old bytes back to values that encode unchanged.
func TestEmbeddedLayoutsEncodeAsBefore(t *testing.T) {
	for _, c := range []struct {
		name       string
		now        any // a pointer to a zero value
		fields     int
		zero, full string
	}{
		{"store.OAuthDevice", &store.OAuthDevice{}, 16,
			`{"id":"","device_hash":"","user_code_hash":"","client_id":"","client_name":"","scopes":null,"resource":"","interval":0,"created_at":"0001-01-01T00:00:00Z","expires_at":"0001-01-01T00:00:00Z","status":""}`,
			`{"id":"ID-b","device_hash":"DeviceHash-c","user_code_hash":"UserCodeHash-d","client_id":"ClientID-e","client_name":"ClientName-f","scopes":["Scopes","x"],"resource":"Resource-h","interval":8,"created_at":"2026-01-01T00:00:09Z","expires_at":"2026-01-01T00:00:10Z","status":"Status-l","account_id":"AccountID-m","granted":["Granted","x"],"decided_at":"2026-01-01T00:00:14Z","grant_id":"GrantID-p","key_id":"KeyID-q"}`},
		{"store.OAuthCode", &store.OAuthCode{}, 11,
			`{"client_id":"","client_name":"","redirect_uri":"","challenge":"","account_id":"","scopes":null,"resource":"","expires_at":"0001-01-01T00:00:00Z"}`,
			`{"client_id":"ClientID-b","client_name":"ClientName-c","redirect_uri":"RedirectURI-d","challenge":"Challenge-e","account_id":"AccountID-f","scopes":["Scopes","x"],"resource":"Resource-h","expires_at":"2026-01-01T00:00:08Z","used_at":"2026-01-01T00:00:09Z","grant_id":"GrantID-k","key_id":"KeyID-l"}`},
		{"OAuthDeviceStart", &OAuthDeviceStart{}, 9,
			`{"id":"","device_hash":"","user_code_hash":"","client_id":"","client_name":"","scopes":null,"resource":"","interval":0,"ttl":0}`,
			`{"id":"ID-b","device_hash":"DeviceHash-c","user_code_hash":"UserCodeHash-d","client_id":"ClientID-e","client_name":"ClientName-f","scopes":["Scopes","x"],"resource":"Resource-h","interval":8,"ttl":9}`},
		{"OAuthCodeCreate", &OAuthCodeCreate{}, 10,
			`{"code_hash":"","client_id":"","client_name":"","redirect_uri":"","challenge":"","account_id":"","scopes":null,"resource":"","ttl":0}`,
			`{"code_hash":"CodeHash-b","client_id":"ClientID-c","client_name":"ClientName-d","redirect_uri":"RedirectURI-e","challenge":"Challenge-f","account_id":"AccountID-g","scopes":["Scopes","x"],"resource":"Resource-i","ttl":9,"key_id":"KeyID-k"}`},
		{"DomainChange", &DomainChange{}, 8,
			`{"domain_id":"","account_id":"","change_id":"","cl_trid":""}`,
			`{"domain_id":"DomainID-b","account_id":"AccountID-c","change_id":"ChangeID-d","cl_trid":"ClTRID-e","auto_renew":false,"transfer_lock":true,"whois_privacy":false,"nameservers":["Nameservers","x"]}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := encodeLayout(t, c.now); string(got) != c.zero {
				t.Fatalf("zero value encodes differently:\nbefore %s\nnow    %s", c.zero, got)
			}
			if n := fillLayout(reflect.ValueOf(c.now).Elem(), new(int)); n != c.fields {
				t.Fatalf("%d fields before, %d now", c.fields, n)
			}
			if got := encodeLayout(t, c.now); string(got) != c.full {
				t.Fatalf("every field set encodes differently:\nbefore %s\nnow    %s", c.full, got)
			}
			for _, old := range []string{c.zero, c.full} {
				back := reflect.New(reflect.TypeOf(c.now).Elem()).Interface()
				if err := json.Unmarshal([]byte(old), back); err != nil {
					t.Fatal(err)
				}
				if again := encodeLayout(t, back); !bytes.Equal([]byte(old), again) {
					t.Fatalf("old bytes read by the new type encode differently:\nold   %s\nagain %s", old, again)
				}
			}
		})
	}
}

func encodeLayout(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fillLayout sets every field of the struct v, in declaration order and
// through embedded structs, to a non-zero value derived from *n, and returns
// how many fields it set.
func fillLayout(v reflect.Value, n *int) int {
	set := 0
	for i := 0; i < v.NumField(); i++ {
		f, sf := v.Field(i), v.Type().Field(i)
		if sf.Anonymous && f.Kind() == reflect.Struct {
			set += fillLayout(f, n)
			continue
		}
		*n++
		set++
		at := time.Date(2026, 1, 1, 0, 0, *n, 0, time.UTC)
		switch {
		case f.Type() == reflect.TypeOf(time.Time{}):
			f.Set(reflect.ValueOf(at))
		case f.Type() == reflect.TypeOf(&time.Time{}):
			f.Set(reflect.ValueOf(&at))
		case f.Kind() == reflect.String:
			f.SetString(sf.Name + "-" + string(rune('a'+*n%26)))
		case f.Kind() == reflect.Int, f.Kind() == reflect.Int64:
			f.SetInt(int64(*n))
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
		case f.Type() == reflect.TypeOf(new(bool)):
			b := *n%2 == 0
			f.Set(reflect.ValueOf(&b))
		case f.Type() == reflect.TypeOf([]string{}):
			f.Set(reflect.ValueOf([]string{sf.Name, "x"}))
		default:
			panic("fillLayout: no value for " + sf.Name + " " + f.Type().String())
		}
	}
	return set
}
