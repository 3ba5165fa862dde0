package api

import "testing"

// TestPlanBySlug: each default plan, server or hosting, is found by its
// slug; an unknown slug finds none.
func TestPlanBySlug(t *testing.T) {
	for _, p := range DefaultPlans {
		if got, ok := PlanBySlug(p.Slug); !ok || got != p {
			t.Errorf("PlanBySlug(%q) = %+v, %v; want %+v", p.Slug, got, ok, p)
		}
	}
	for _, p := range DefaultHostingPlans {
		if got, ok := HostingPlanBySlug(p.Slug); !ok || got != p {
			t.Errorf("HostingPlanBySlug(%q) = %+v, %v; want %+v", p.Slug, got, ok, p)
		}
	}
	if got, ok := PlanBySlug("hosting-starter"); ok || got != (ServerPlan{}) {
		t.Errorf("PlanBySlug of a hosting plan = %+v, %v", got, ok)
	}
	if got, ok := HostingPlanBySlug("nano"); ok || got != (HostingPlanInfo{}) {
		t.Errorf("HostingPlanBySlug of a server plan = %+v, %v", got, ok)
	}
}
