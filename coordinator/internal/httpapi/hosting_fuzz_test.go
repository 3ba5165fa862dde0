package httpapi

import (
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

const goodHostingCreate = `{"account_id":"acc_01m899pxzg5b7waw9d0whks7sg","plan":"hosting-starter","domain":"example.com","username":"examplecom"}`

func FuzzDecodeAdminHostingCreate(f *testing.F) {
	seeds := []string{goodHostingCreate,
		`{"account_id":"acc_01m899pxzg5b7waw9d0whks7sg","plan":"hosting-pro","domain":"bücher.example","username":"ada","php_version":"8.2","node_id":"web-1"}`,
		`{"account_id":"acc_01m899pxzg5b7waw9d0whks7sg","plan":"hosting-starter","domain":"../etc","username":"a;b"}`,
		`{"domain":"a.com\n"}`, `{"username":"$x"}`,
		`{"account_id":"acc_01m899pxzg5b7waw9d0whks7sg","plan":"hosting-starter","domain":"Shop.Example.COM.","username":"ada"}`,
		`{"account_id":"acc_01m899pxzg5b7waw9d0whks7sg","plan":"hosting-starter","domain":"shop.example.com..","username":"ada"}`,
		`{"account_id":"acc_01m899pxzg5b7waw9d0whks7sg","plan":"hosting-starter","domain":"example.com","username":"examplecom","location":"fra-1"}`,
		`{"account_id":"acc_01m899pxzg5b7waw9d0whks7sg","plan":"hosting-starter","domain":"example.com","username":"examplecom","location":"fra/1\n"}`,
		`{"account_id":"acc_01m899pxzg5b7waw9d0whks7sg","plan":"hosting-starter","domain":"example.com","username":"ubuntu"}`, `{`, ``, `null`, `[]`,
	}
	fuzzDecoder(f, seeds, withPlan(DecodeAdminHostingCreate), func(t *testing.T, d reqPlan[api.AdminHostingCreateRequest, api.HostingPlanInfo]) {
		req := d.req
		// What passes may reach a shell argument, an nginx lookup, SQL and a path.
		if validate.NewHostingUsername(req.Username) != nil {
			t.Fatalf("accepted username %q", req.Username)
		}
		if a, err := validate.Domain(req.Domain); err != nil || a != req.Domain || strings.ContainsAny(req.Domain, "/;$ \n'\"\\") {
			t.Fatalf("accepted domain %q", req.Domain)
		}
		if d, err := hostingFields(otherSpelling(req.Domain), req.Username, req.PHPVersion); err != nil || d != req.Domain {
			t.Fatalf("domain %q spelled %q: %q %v", req.Domain, otherSpelling(req.Domain), d, err)
		}
		if _, ok := api.HostingPlanBySlug(d.plan.Slug); !ok {
			t.Fatalf("accepted plan %q", d.plan.Slug)
		}
		if req.PHPVersion != "" && validate.PHPVersion(req.PHPVersion) != nil {
			t.Fatalf("accepted php_version %q", req.PHPVersion)
		}
		if fsm.CheckLocation(req.Location) != nil {
			t.Fatalf("accepted location %q", req.Location)
		}
	})
}

func FuzzDecodeHostingPHP(f *testing.F) {
	fuzzDecoder(f, []string{`{"php_version":"8.2"}`, `{"php_version":"8.2; rm"}`, `{"php_version":""}`, `{}`, `{"x":1}`},
		DecodeHostingPHP, func(t *testing.T, req api.HostingPHPRequest) {
			if validate.PHPVersion(req.PHPVersion) != nil {
				t.Fatalf("accepted %q", req.PHPVersion)
			}
		})
}

// The bad-input corpus of usernames and domains: each refused, naming the
// field (the handler test checks nothing is written).
func TestDecodeAdminHostingCreateCorpus(t *testing.T) {
	body := func(field, v string) []byte {
		q := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\x00", `\u0000`, "\t", `\t`).Replace(v)
		return []byte(strings.Replace(goodHostingCreate, `"`+field+`":"`+map[string]string{"domain": "example.com", "username": "examplecom"}[field]+`"`,
			`"`+field+`":"`+q+`"`, 1))
	}
	if _, _, err := DecodeAdminHostingCreate([]byte(goodHostingCreate)); err != nil {
		t.Fatal(err)
	}
	for field, bad := range map[string][]string{
		"username": BadHostingUsernames(),
		"domain": {"", "example", "EXAMPLE.com..", "example.com..", ".", "*.example.com", "a..b.com", "../etc", "a/b.com", "a;b.com",
			"a$b.com", "a b.com", "a\nb.com", "ex\u0430mple.com", "example.com\u200b", "127.0.0.1", "[::1]", "a_b.com",
			strings.Repeat("a", 64) + ".com", strings.Repeat("a.", 127) + "com"},
	} {
		for _, v := range bad {
			_, _, err := DecodeAdminHostingCreate(body(field, v))
			if err == nil || !strings.Contains(err.Error(), `"`+field+`"`) {
				t.Errorf("%s %q: %v", field, v, err)
			}
		}
	}
}

// BadHostingUsernames is the username corpus (unicode tricks, traversal,
// shell and SQL characters, newlines, overlong, uppercase, reserved).
func BadHostingUsernames() []string {
	return []string{"", "ab", "Abc", "ABC", "1abc", "a-bc", "a_bc", "a.bc", "a bc", "abc;", "ab$c", "abc\n", "..", "../abc",
		"ab/c", "root", "mysql", "www", "abcdefghijklmnopq", "ab\u0441d", "abçd", "\u200babc", "abc'", `ab"c`, "abc\x00"}
}

// What passes DecodeHostingPasswordReset is one of the three targets (the
// agent chooses which passwords to set by it), never empty.
func FuzzDecodeHostingPasswordReset(f *testing.F) {
	fuzzDecoder(f, []string{``, `{}`, `{"target":"sftp"}`, `{"target":"db"}`, `{"target":"both"}`, `{"target":"root"}`,
		`{"target":"db","password":"x"}`, `{"target":null}`, `{"target":"sftp"}{}`, `{"target":"Db"}`, ` `, `null`, `[]`, `{`},
		DecodeHostingPasswordReset, func(t *testing.T, req api.HostingPasswordResetRequest) {
			if req.Target != api.HostingPasswordSFTP && req.Target != api.HostingPasswordDB && req.Target != api.HostingPasswordBoth {
				t.Fatalf("accepted target %q", req.Target)
			}
		})
}
