package httpapi

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// reqPlan is what a create decoder answers: the request and its plan.
type reqPlan[R, P any] struct {
	req  R
	plan P
}

// withPlan adapts a create decoder to fuzzDecoder's one-value form.
func withPlan[R, P any](decode func([]byte) (R, P, error)) func([]byte) (reqPlan[R, P], error) {
	return func(body []byte) (reqPlan[R, P], error) {
		req, plan, err := decode(body)
		return reqPlan[R, P]{req, plan}, err
	}
}

func FuzzDecodeAdminServerCreate(f *testing.F) {
	seeds := []string{
		`{"account_id":"acc_01m899pxzg5b7waw9d0whks7sg","plan":"nano","template":"debian-12"}`,
		`{"account_id":"acc_01m899pxzg5b7waw9d0whks7sg","plan":"small","template":"debian-12","hostname":"web1.example.com","ssh_keys":["ssh-ed25519 AAAA x"],"ipv4":"192.0.2.10/24","gateway4":"192.0.2.1","network":"bridge:br0"}`,
		`{"account_id":"x","plan":"nano","template":"t"}`, `{"plan":"huge"}`, `{"template":"../etc"}`,
		`{"account_id":"acc_01m899pxzg5b7waw9d0whks7sg","plan":"nano","template":"t","network":"bridge:br0;rm"}`,
		`{"account_id":"acc_01m899pxzg5b7waw9d0whks7sg","plan":"nano","template":"t","ssh_keys":["ssh-rsa a\nb"]}`,
		`{`, ``, `null`, `[]`,
	}
	fuzzDecoder(f, seeds, withPlan(DecodeAdminServerCreate), func(t *testing.T, d reqPlan[api.AdminServerCreateRequest, api.ServerPlan]) {
		req, plan := d.req, d.plan
		// What passes is safe to hand to the agent: names and specs without
		// separators or control characters.
		if _, ok := api.PlanBySlug(plan.Slug); !ok || templateName("template", req.Template) != nil {
			t.Fatalf("accepted plan %q template %q", plan.Slug, req.Template)
		}
		for _, k := range req.SSHKeys {
			if strings.ContainsAny(k, "\r\n") {
				t.Fatalf("accepted a multi-line ssh key %q", k)
			}
		}
		if req.IPv4 != "" {
			if _, err := netip.ParsePrefix(req.IPv4); err != nil {
				t.Fatalf("accepted ipv4 %q", req.IPv4)
			}
		}
		if req.Network != "" && !networkRE.MatchString(req.Network) {
			t.Fatalf("accepted network %q", req.Network)
		}
	})
}
