package domains

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/eppd"
)

// waitChange polls domain id until its change opID has ended.
func (r *rig) waitChange(id, opID string) api.Domain {
	r.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		d := r.domain(id)
		if d.Change != nil && d.Change.ID == opID && d.Change.Status != api.ChangePending {
			return d
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("change %s of %s did not end: %+v", opID, id, d.Change)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestChildNameServers: a customer's vanity name servers through three
// coordinators and the real EPP test registry (host objects on). Bad input
// is a 400 naming the field and another account's domain a 404, nothing
// sent to the registry; ns1.glue.test for glue.test itself is refused until
// it is a child name server; PUT .../hosts/ns1.glue.test creates the host
// object with its glue at the registry (202, then applied, listed in
// hosts); then glue.test itself (in-bailiwick) and other.test (a name
// server inside another domain at the same registry) are delegated to it at
// the registry; a delete while they do is a 409 naming them, nothing
// recorded or sent; after the delegations go, the delete removes it. Before, the in-bailiwick PATCH was always a 400
// and no call made a host with addresses.
func TestChildNameServers(t *testing.T) {
	r := newRigFlags(t, []string{"--registrar-epp-host-objects"})
	r.credit(2 * yearly)
	glue, other := r.registered("glue.test"), r.registered("other.test")
	_, key2, err := r.c.NewAccount(r.ctx, "other@example.com", api.ScopeDomainsRead, api.ScopeDomainsWrite)
	if err != nil {
		t.Fatal(err)
	}
	hosts := "/v1/domains/" + glue.ID + "/hosts/"
	before := r.reg.Stats().Applied
	for _, c := range []struct{ path, body, field string }{
		{hosts + "ns1.other.test", `{"addresses":["8.8.8.8"]}`, "name"},
		{hosts + "glue.test", `{"addresses":["8.8.8.8"]}`, "name"},
		{hosts + "ns1.glue.test", `{"addresses":["10.0.0.1"]}`, "addresses[0]"},
		{hosts + "ns1.glue.test", `{"addresses":["8.8.8.8","2001:db8::1"]}`, "addresses[1]"},
		{hosts + "ns1.glue.test", `{"addresses":["8.8.8.8","8.8.8.8"]}`, "addresses[1]"},
		{hosts + "ns1.glue.test", `{"addresses":[]}`, "addresses"},
		{hosts + "ns1.glue.test", `{"addresses":["8.8.8.8"],"ttl":5}`, "ttl"},
	} {
		if rep := r.call(-1, "PUT", c.path, c.body, nil); rep.Status != 400 || !strings.Contains(rep.DecodeError(t).Message, `"`+c.field+`"`) {
			t.Errorf("PUT %s %s: %s, want 400 naming %s", c.path, c.body, rep, c.field)
		}
	}
	if rep := r.call(-1, "PATCH", "/v1/domains/"+glue.ID, `{"nameservers":["ns1.glue.test","ns2.example.net"]}`, nil); rep.Status != 400 ||
		!strings.Contains(rep.DecodeError(t).Message, `"nameservers[0]"`) {
		t.Fatalf("in-bailiwick name server without a child name server: %s", rep)
	}
	rep, err := r.apis[0].TryResending(r.ctx, client.Resend{Codes: electionCodes}, key2, "PUT", hosts+"ns1.glue.test", `{"addresses":["8.8.8.8"]}`, map[string]string{"Idempotency-Key": "k2-host"})
	if err != nil || rep.Status != 404 {
		t.Fatalf("another account's domain: %v %v", rep, err)
	}
	if rep := r.call(-1, "DELETE", hosts+"ns1.glue.test", "", nil); rep.Status != 404 {
		t.Fatalf("delete of a host the domain does not have: %s", rep)
	}
	if got := r.reg.Stats().Applied; got != before {
		t.Fatalf("refused requests reached the registry: %d commands applied", got-before)
	}

	rep = r.call(-1, "PUT", hosts+"NS1.Glue.Test.", `{"addresses":["2606:4700::53","8.8.8.8"]}`, nil)
	var d api.Domain
	if rep.Status != 202 {
		t.Fatalf("PUT host: %s", rep)
	}
	rep.Decode(t, &d)
	if d.Change == nil || d.Change.Host == nil || d.Change.Host.Name != "ns1.glue.test" || !slices.Equal(d.Change.Host.Addresses, []string{"8.8.8.8", "2606:4700::53"}) {
		t.Fatalf("PUT host answered %+v", d.Change)
	}
	d = r.waitChange(glue.ID, d.Change.ID)
	if d.Change.Status != api.ChangeApplied || len(d.Hosts) != 1 || d.Hosts[0].Name != "ns1.glue.test" || !slices.Equal(d.Hosts[0].Addresses, []string{"8.8.8.8", "2606:4700::53"}) {
		t.Fatalf("after the host's creation: %+v, hosts %+v", d.Change, d.Hosts)
	}
	created := 0
	for _, tx := range r.reg.Transactions("host:create", "ns1.glue.test") {
		if tx.Code == 1000 {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("the registry created ns1.glue.test %d times", created)
	}
	// The same addresses again: 200, nothing asked of the registry.
	before = r.reg.Stats().Applied
	if rep := r.call(-1, "PUT", hosts+"ns1.glue.test", `{"addresses":["8.8.8.8","2606:4700::53"]}`, nil); rep.Status != 200 || r.reg.Stats().Applied != before {
		t.Fatalf("the same addresses again: %s", rep)
	}

	for _, dom := range []api.Domain{glue, other} {
		rep := r.call(-1, "PATCH", "/v1/domains/"+dom.ID, `{"nameservers":["ns1.glue.test","ns2.example.net"]}`, nil)
		if rep.Status != 200 && rep.Status != 202 {
			t.Fatalf("PATCH %s to ns1.glue.test: %s", dom.Name, rep)
		}
		rep.Decode(t, &d)
		d = r.waitChange(dom.ID, d.Change.ID)
		if d.Change.Status != api.ChangeApplied || !slices.Equal(slices.Sorted(slices.Values(r.registry(dom.Name).NS)), []string{"ns1.glue.test", "ns2.example.net"}) {
			t.Fatalf("%s delegated to its child name server: %+v, registry %v", dom.Name, d.Change, r.registry(dom.Name).NS)
		}
	}

	// A delete while the account's domains delegate to the host: 409
	// naming them, nothing recorded or sent (the registry would refuse it,
	// 2305, in the job).
	before = r.reg.Stats().Applied
	rep = r.call(-1, "DELETE", hosts+"ns1.glue.test", "", nil)
	if e := rep.DecodeError(t); rep.Status != 409 || e.Code != "host_in_use" || !strings.Contains(e.Message, "glue.test, other.test") {
		t.Fatalf("DELETE of a delegated host: %s", rep)
	}
	r.call(-1, "GET", "/v1/domains/"+glue.ID, "", nil).Decode(t, &d)
	if d.Change.Host != nil || len(d.Hosts) != 1 || r.reg.Stats().Applied != before {
		t.Fatalf("a refused delete changed the domain or reached the registry: %+v, hosts %+v", d.Change, d.Hosts)
	}
	for _, dom := range []api.Domain{glue, other} {
		rep := r.call(-1, "PATCH", "/v1/domains/"+dom.ID, `{"nameservers":["ns1.example.net","ns2.example.net"]}`, nil)
		rep.Decode(t, &d)
		if d = r.waitChange(dom.ID, d.Change.ID); d.Change.Status != api.ChangeApplied {
			t.Fatalf("%s back to outside name servers: %+v", dom.Name, d.Change)
		}
	}
	rep = r.call(-1, "DELETE", hosts+"ns1.glue.test", "", nil)
	rep.Decode(t, &d)
	if d = r.waitChange(glue.ID, d.Change.ID); d.Change.Status != api.ChangeApplied || d.Hosts != nil {
		t.Fatalf("delete of an unused host: %+v, hosts %+v", d.Change, d.Hosts)
	}
	if txs := r.reg.Transactions("host:delete", "ns1.glue.test"); !slices.ContainsFunc(txs, func(tx eppd.AdminTransaction) bool { return tx.Code == 1000 }) {
		t.Fatalf("the registry did not delete the host: %+v", txs)
	}
}

// TestChildNameServersNeedHostObjects: with the default delegation (host
// attributes, no --registrar-epp-host-objects) a host change cannot be
// made at the registry: PUT and DELETE are a 409 host_objects_not_offered
// saying so, nothing recorded or sent. Before, the change was recorded
// (202) and failed in the leader's job.
func TestChildNameServersNeedHostObjects(t *testing.T) {
	r := newRig(t)
	r.credit(yearly)
	glue := r.registered("glue.test")
	before := r.reg.Stats().Applied
	for _, c := range []struct{ method, body string }{{"PUT", `{"addresses":["8.8.8.8"]}`}, {"DELETE", ""}} {
		rep := r.call(-1, c.method, "/v1/domains/"+glue.ID+"/hosts/ns1.glue.test", c.body, nil)
		if e := rep.DecodeError(t); rep.Status != 409 || e.Code != "host_objects_not_offered" || !strings.Contains(e.Message, "--registrar-epp-host-objects") {
			t.Fatalf("%s without host objects: %s", c.method, rep)
		}
	}
	var d api.Domain
	r.call(-1, "GET", "/v1/domains/"+glue.ID, "", nil).Decode(t, &d)
	if d.Change != nil || d.Hosts != nil || r.reg.Stats().Applied != before {
		t.Fatalf("a refused host change was recorded or sent: %+v, hosts %+v", d.Change, d.Hosts)
	}
}
