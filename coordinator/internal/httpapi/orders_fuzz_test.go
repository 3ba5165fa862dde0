package httpapi

import (
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

func FuzzDecodeServerOrder(f *testing.F) {
	seeds := []string{
		`{"plan_slug":"vps-2","label":"web-1","hostname":"web-1","os_family":"ubuntu","os_template":"ubuntu-22.04"}`,
		`{"plan_slug":"vps-2","hostname":"web-1.example.com","os_template":"debian-12","location":"ist-1","ssh_keys":["ssh-ed25519 AAAA x"]}`,
		`{"plan_slug":"VPS","hostname":"x","os_template":"t"}`, `{"plan_slug":"vps-2","hostname":"a b","os_template":"t"}`,
		`{"plan_slug":"vps-2","hostname":"h","os_template":"../etc"}`, `{"plan_slug":"vps-2","hostname":"h","os_template":"t","extra":1}`,
		`{`, ``, `null`, `[]`,
	}
	fuzzDecoder(f, seeds, DecodeServerOrder, func(t *testing.T, req api.ServerOrderRequest) {
		if !fsm.ProductSlugRE.MatchString(req.PlanSlug) || validate.Hostname(req.Hostname) != nil || templateName("os_template", req.OSTemplate) != nil {
			t.Fatalf("accepted %+v", req)
		}
		for _, k := range req.SSHKeys {
			if strings.ContainsAny(k, "\r\n") {
				t.Fatalf("accepted a multi-line ssh key %q", k)
			}
		}
	})
}

func FuzzDecodeProduct(f *testing.F) {
	seeds := []string{
		`{"category":"vps","name_en":"VPS 2","retail_monthly_usd_cents":1200,"specs":{"vcpu":2,"ram_mb":4096,"disk_gb":60}}`,
		`{"category":"hosting","name_en":"Starter","names":{"tr":"Başlangıç"},"retail_monthly_usd_cents":300,"specs":{"vcpu":0,"ram_mb":0,"disk_gb":5},"locations":["ist-1"]}`,
		`{"category":"vps","name_en":"x","retail_monthly_usd_cents":-1,"specs":{"vcpu":1,"ram_mb":1,"disk_gb":1}}`,
		`{"category":"other"}`, `{`, ``, `null`,
		`{"category":"vps","name_en":"x","retail_monthly_usd_cents":1,"specs":{"vcpu":1,"ram_mb":17592186044416,"disk_gb":1}}`,
		`{"category":"vps","name_en":"x","retail_monthly_usd_cents":1,"specs":{"vcpu":4294967295,"ram_mb":64,"disk_gb":17179869184}}`,
	}
	fuzzDecoder(f, seeds, func(b []byte) (api.ProductRequest, error) { return DecodeProduct("vps-2", b) }, func(t *testing.T, req api.ProductRequest) {
		if fsm.CheckProduct("vps-2", req) != nil {
			t.Fatalf("accepted %+v", req)
		}
		// A vps size an agent refuses, or one whose bytes overflow, is never accepted.
		if req.Category == api.ProductVPS && validate.Plan(validate.DefaultLimits, req.Specs.VCPU, req.Specs.RAMMB, req.Specs.DiskGB) != nil {
			t.Fatalf("accepted the size %+v", req.Specs)
		}
	})
}

func FuzzDecodeAccountPricing(f *testing.F) {
	seeds := []string{`{"discount_percent":20}`, `{"discount_percent":0,"prices_usd_cents":{"vps-2":900}}`,
		`{"discount_percent":101}`, `{"prices_usd_cents":{"A":1}}`, `{`, ``, `null`}
	fuzzDecoder(f, seeds, DecodeAccountPricing, func(t *testing.T, req api.AccountPricing) {
		if req.DiscountPercent < 0 || req.DiscountPercent > 100 {
			t.Fatalf("accepted %+v", req)
		}
		for slug, p := range req.Prices {
			if p < 0 || !fsm.ProductSlugRE.MatchString(slug) {
				t.Fatalf("accepted %+v", req)
			}
		}
	})
}

func FuzzDecodeHostingOrder(f *testing.F) {
	seeds := []string{
		`{"plan_slug":"web-1","domain":"shop.example.com","username":"shop"}`,
		`{"plan_slug":"web-1","domain":"Shop.Example.COM.","username":"shop","php_version":"8.3","location":"ist-1"}`,
		`{"plan_slug":"web-1","domain":"a b","username":"shop"}`, `{"plan_slug":"web-1","domain":"x.example","username":"root"}`, `{"plan_slug":"web-1","domain":"x.example","username":"postgres"}`,
		`{"plan_slug":"web-1","domain":"x.example","username":"ab","php_version":"8"}`, `{"plan_slug":"web-1","extra":1}`,
		`{`, ``, `null`, `[]`,
	}
	fuzzDecoder(f, seeds, DecodeHostingOrder, func(t *testing.T, req api.HostingOrderRequest) {
		d, err := validate.Domain(req.Domain)
		if !fsm.ProductSlugRE.MatchString(req.PlanSlug) || err != nil || d != req.Domain || validate.NewHostingUsername(req.Username) != nil ||
			(req.PHPVersion != "" && validate.PHPVersion(req.PHPVersion) != nil) || orderLocation(req.Location) != nil {
			t.Fatalf("accepted %+v", req)
		}
	})
}

func FuzzDecodeAdminSuspend(f *testing.F) {
	seeds := []string{`{"reason":"abuse report 42"}`, `{"reason":""}`, `{"reason":"a\nb"}`, `{"reason":"   "}`, `{"reason":1}`, `{`, ``, `null`}
	fuzzDecoder(f, seeds, DecodeAdminSuspend, func(t *testing.T, req api.AdminSuspendRequest) {
		if req.Reason == "" || len(req.Reason) > 500 || strings.ContainsAny(req.Reason, "\r\n") {
			t.Fatalf("accepted %+v", req)
		}
	})
}
