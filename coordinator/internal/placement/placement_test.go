package placement

import (
	"errors"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

func node(id string, vcpus uint32, memMiB, diskGiB uint64) api.AgentNode {
	return api.AgentNode{ID: id, State: api.AgentNodeReady, Roles: []string{"kvm"},
		Capacity: api.AgentNodeCapacity{VCPUs: vcpus, MemoryBytes: memMiB << 20, DiskBytes: diskGiB << 30}}
}

func TestChoose(t *testing.T) {
	small := api.ServerPlan{Slug: "small", VCPUs: 1, MemoryMiB: 1024, DiskGiB: 25}
	cordoned := node("c", 64, 1<<20, 1<<14)
	cordoned.Cordoned = true
	away := node("u", 64, 1<<20, 1<<14)
	away.State = api.AgentNodeUnreachable
	full := node("f", 64, 2048, 1000)
	cands := []Candidate{
		{Node: cordoned, Connected: true},
		{Node: away, Connected: false},
		{Node: full, Connected: true, Used: api.AgentNodeCapacity{MemoryBytes: 1536 << 20}},
		{Node: node("a", 2, 4096, 100), Connected: true, Used: api.AgentNodeCapacity{MemoryBytes: 1024 << 20}},
		{Node: node("b", 2, 8192, 100), Connected: true, Templates: []string{"other"}},
		{Node: node("d", 2, 6144, 100), Connected: false},
	}
	got, err := Choose(cands, small, "debian-12", Policy{})
	if err != nil || got != "a" {
		t.Fatalf("Choose = %q, %v; want a (b lacks the template, c cordoned, u unreachable, f full, d not connected)", got, err)
	}
	cands[4].Templates = append(cands[4].Templates, "debian-12")
	if got, _ := Choose(cands, small, "debian-12", Policy{}); got != "b" {
		t.Fatalf("Choose = %q, want b (most free memory)", got)
	}
	// vCPU overcommit: 2 cores × 4 = 8 vCPUs.
	cands = []Candidate{{Node: node("a", 2, 1<<20, 1<<14), Connected: true, Used: api.AgentNodeCapacity{VCPUs: 8}}}
	_, err = Choose(cands, small, "t", Policy{})
	if err == nil || !strings.Contains(err.Error(), "vcpus") {
		t.Fatalf("want a vcpu refusal, got %v", err)
	}
	if got, err := Choose(cands, small, "t", Policy{CPUOvercommit: 5}); err != nil || got != "a" {
		t.Fatalf("with ×5 overcommit: %q, %v", got, err)
	}
	if _, err := Choose(nil, small, "t", Policy{}); err == nil {
		t.Fatal("no nodes: want an error")
	}
}

// TestChooseReconnecting: when nothing fits, the refusal is ErrReconnecting
// only if a ready node that would fit is merely not connected (an agent
// reconnecting after a leader change); a node that is full, lacks the
// template or is marked unreachable gives the plain "no room".
func TestChooseReconnecting(t *testing.T) {
	small := api.ServerPlan{Slug: "small", VCPUs: 1, MemoryMiB: 1024, DiskGiB: 25}
	away := node("u", 64, 1<<20, 1<<14)
	away.State = api.AgentNodeUnreachable
	for _, tc := range []struct {
		name  string
		cands []Candidate
		want  bool
	}{
		{"a fitting node reconnecting", []Candidate{{Node: node("d", 2, 6144, 100)}, {Node: node("f", 2, 1024, 100), Connected: true, Used: api.AgentNodeCapacity{MemoryBytes: 512 << 20}}}, true},
		{"the disconnected node is full", []Candidate{{Node: node("d", 2, 1024, 100), Used: api.AgentNodeCapacity{MemoryBytes: 512 << 20}}}, false},
		{"the disconnected node lacks the template", []Candidate{{Node: node("d", 2, 6144, 100), Templates: []string{"other"}}}, false},
		{"the node is unreachable", []Candidate{{Node: away}}, false},
		{"the disconnected node is unfit", []Candidate{{Node: node("d", 2, 6144, 100), Unfit: "no IP pool on its bridges"}}, false},
	} {
		_, err := Choose(tc.cands, small, "debian-12", Policy{})
		if err == nil || errors.Is(err, ErrReconnecting) != tc.want {
			t.Errorf("%s: %v, want ErrReconnecting %v", tc.name, err, tc.want)
		}
	}
}

// TestChooseLocations: with Policy.Locations a node elsewhere, or in no
// location, is skipped (the refusal says where it is), even when it has the
// most room; a node in one of the locations that is only reconnecting makes
// it ErrReconnecting, one elsewhere does not.
func TestChooseLocations(t *testing.T) {
	small := api.ServerPlan{Slug: "small", VCPUs: 1, MemoryMiB: 1024, DiskGiB: 25}
	in := func(n api.AgentNode, loc string) api.AgentNode { n.Location = loc; return n }
	cands := []Candidate{
		{Node: in(node("ist-big", 8, 65536, 1000), "ist"), Connected: true},
		{Node: in(node("fra-a", 2, 4096, 100), "fra"), Connected: true},
		{Node: in(node("fra-b", 2, 8192, 100), "fra"), Connected: true},
		{Node: node("none", 64, 1<<20, 1<<14), Connected: true},
	}
	if got, err := Choose(cands, small, "t", Policy{}); err != nil || got != "none" {
		t.Fatalf("no locations asked: %q, %v; want none (most free memory)", got, err)
	}
	if got, err := Choose(cands, small, "t", Policy{Locations: []string{"fra"}}); err != nil || got != "fra-b" {
		t.Fatalf("fra: %q, %v; want fra-b (the roomier fra node)", got, err)
	}
	if got, err := Choose(cands, small, "t", Policy{Locations: []string{"ist", "ams"}}); err != nil || got != "ist-big" {
		t.Fatalf("ist or ams: %q, %v; want ist-big", got, err)
	}
	_, err := Choose(cands, small, "t", Policy{Locations: []string{"ams"}})
	for _, want := range []string{"ist-big: in location ist (not ams)", "fra-a: in location fra (not ams)", "none: in no location (not ams)"} {
		if err == nil || !strings.Contains(err.Error(), want) || errors.Is(err, ErrReconnecting) {
			t.Errorf("ams: %v; want a no-room refusal saying %q", err, want)
		}
	}
	// fra's only node reconnecting: retry; ist's node reconnecting: no room in fra.
	cands = []Candidate{
		{Node: in(node("fra-a", 2, 4096, 100), "fra"), Connected: false},
		{Node: in(node("ist-a", 2, 4096, 100), "ist"), Connected: true},
	}
	if _, err := Choose(cands, small, "t", Policy{Locations: []string{"fra"}}); !errors.Is(err, ErrReconnecting) {
		t.Errorf("fra's node reconnecting: %v, want ErrReconnecting", err)
	}
	cands[0].Node.Location, cands[1].Connected = "ist", false
	cands[1].Node.Location = "fra"
	cands[0].Connected = false
	if _, err := Choose(cands, small, "t", Policy{Locations: []string{"ams"}}); err == nil || errors.Is(err, ErrReconnecting) {
		t.Errorf("no node in ams, others reconnecting: %v, want plain no room", err)
	}
}
