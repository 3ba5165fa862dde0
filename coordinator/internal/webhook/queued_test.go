package webhook

import (
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/brand"
)

// TestMatches is the rule the dispatcher's fan-out and the delivery list's
// queued rows share: the subscription's account, its event types ("*" for
// all, in the brand's names), and the Raft indexes it takes events at.
func TestMatches(t *testing.T) {
	ev := func(acct, typ string, index uint64) *store.Event {
		return &store.Event{Seq: store.OutboxKey(index, 0), ID: "evt_1", Type: typ, AccountID: acct}
	}
	sub := func(events ...string) store.Webhook {
		return store.Webhook{ID: "wh_1", AccountID: "acc_a", Events: events, Active: true, ActiveSince: 10}
	}
	with := func(w store.Webhook, change func(*store.Webhook)) store.Webhook { change(&w); return w }
	disabled := with(sub("*"), func(w *store.Webhook) { w.Active = false })
	held := with(sub("*"), func(w *store.Webhook) { w.Active, w.PausedSince = false, 20 })
	gap := with(sub("*"), func(w *store.Webhook) { w.Gaps = []store.IndexRange{{From: 30, To: 40}} })
	h444 := brand.MustGet(brand.H444)
	cases := []struct {
		name    string
		dialect *brand.Brand
		w       store.Webhook
		ev      *store.Event
		want    bool
	}{
		{"subscribed type", nil, sub("ticket.created"), ev("acc_a", "ticket.created", 11), true},
		{"type not subscribed", nil, sub("ticket.created"), ev("acc_a", "invoice.paid", 11), false},
		{"wildcard", nil, sub("*"), ev("acc_a", "invoice.paid", 11), true},
		{"other account", nil, sub("*"), ev("acc_b", "invoice.paid", 11), false},
		{"committed before the create", nil, sub("*"), ev("acc_a", "invoice.paid", 10), false},
		{"brand's name subscribed", h444, sub("vps.created"), ev("acc_a", "server.created", 11), true},
		{"canonical name under a brand that renames it", h444, sub("server.created"), ev("acc_a", "server.created", 11), false},
		{"no sequence", nil, sub("*"), &store.Event{Type: "invoice.paid", AccountID: "acc_a"}, false},
		{"disabled (or paused before level 2)", nil, disabled, ev("acc_a", "invoice.paid", 11), false},
		{"paused, event before the pause (held)", nil, held, ev("acc_a", "invoice.paid", 19), true},
		{"paused, event after the pause", nil, held, ev("acc_a", "invoice.paid", 21), false},
		{"inside a pause's gap", nil, gap, ev("acc_a", "invoice.paid", 35), false},
		{"after a pause's gap", nil, gap, ev("acc_a", "invoice.paid", 41), true},
	}
	for _, c := range cases {
		if got := Matches(c.dialect, &c.w, c.ev); got != c.want {
			t.Errorf("%s: Matches = %v, want %v", c.name, got, c.want)
		}
	}
}
