package audit

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// domRig is a rig whose account A has a loopback receiver subscribed to
// every event, for the domain audits (dom_*_test.go).
type domRig struct {
	*rig
	hooks *framework.WebhookReceiver
}

func newDomRig(t *testing.T, extra ...string) *domRig {
	d := &domRig{rig: newRig(t, extra...)}
	d.hooks = framework.NewWebhookReceiver(t)
	if rep := d.write(0, d.keyA, "POST", "/v1/webhooks", api.WebhookCreateRequest{URL: d.hooks.URL + "/hook", Events: []string{"*"}}); rep.Status != 201 {
		t.Fatalf("webhook: %s", rep)
	}
	return d
}

// domain is key's GET /v1/domains/{id} through a live coordinator.
func (d *domRig) domain(key, id string) api.Domain {
	d.t.Helper()
	rep := d.apis[d.c.WaitLeader(20*time.Second)].Call(key, "GET", "/v1/domains/"+id, nil, nil)
	if rep.Status != http.StatusOK {
		d.t.Fatalf("%s", rep)
	}
	var out api.Domain
	rep.Decode(d.t, &out)
	return out
}

// domains is key's list (the first 200).
func (d *domRig) domains(key string) []api.Domain {
	d.t.Helper()
	rep := d.apis[d.c.WaitLeader(20*time.Second)].Call(key, "GET", "/v1/domains?limit=200", nil, nil)
	if rep.Status != http.StatusOK {
		d.t.Fatalf("%s", rep)
	}
	var l struct {
		Data []api.Domain `json:"data"`
	}
	rep.Decode(d.t, &l)
	return l.Data
}

// named is key's domains called name.
func (d *domRig) named(key, name string) []api.Domain {
	d.t.Helper()
	var out []api.Domain
	for _, x := range d.domains(key) {
		if x.Name == name {
			out = append(out, x)
		}
	}
	return out
}

// balance is key's wallet balance.
func (d *domRig) balance(key string) int64 {
	d.t.Helper()
	var w api.Wallet
	rep := d.apis[d.c.WaitLeader(20*time.Second)].Call(key, "GET", "/v1/billing/wallet", nil, nil)
	if rep.Status != http.StatusOK {
		d.t.Fatalf("%s", rep)
	}
	rep.Decode(d.t, &w)
	return w.BalanceUsdCents
}

// settled waits until none of key's domains is registering or has a
// change pending, and returns them.
func (d *domRig) settled(key string) []api.Domain {
	d.t.Helper()
	var l []api.Domain
	framework.WaitFor(d.t, "no registration or change in flight", 45*time.Second, 100*time.Millisecond, func() bool {
		l = d.domains(key)
		return !slices.ContainsFunc(l, func(x api.Domain) bool {
			return x.Status == api.DomainRegistering || x.Status == api.DomainTransferring || (x.Change != nil && x.Change.Status == api.ChangePending)
		})
	})
	return l
}

// active orders name for A through coordinator i and waits until it is
// active.
func (d *domRig) active(i int, name string) api.Domain {
	d.t.Helper()
	rep := d.write(i, d.keyA, "POST", "/v1/domains", domainBody(name))
	if rep.Status != http.StatusCreated && rep.Status != http.StatusAccepted {
		d.t.Fatalf("order %s: %s", name, rep)
	}
	var x api.Domain
	rep.Decode(d.t, &x)
	framework.WaitFor(d.t, name+" active", 30*time.Second, 100*time.Millisecond, func() bool {
		x = d.domain(d.keyA, x.ID)
		if x.Status == api.DomainFailed {
			d.t.Fatalf("%s failed: %+v", name, x)
		}
		return x.Status == api.DomainActive
	})
	return x
}
