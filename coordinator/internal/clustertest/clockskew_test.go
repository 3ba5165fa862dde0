package clustertest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/fsmtest"
	"github.com/hostplane/hostplane/coordinator/internal/server"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
)

// TestLeaderWithClockBehindListsNewestFirst: a coordinator whose clock is
// three hours behind the others takes over the leadership; the actions,
// tickets and wallet transactions it makes are still listed newest first
// (lists sort by id, and an id starts with the time it was made at) and
// carry times no earlier than the ones made before the change: a leader
// makes ids and command times at no earlier a time than any entry it has
// applied.
func TestLeaderWithClockBehindListsNewestFirst(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	const skewed = 1 // n2
	c := testcluster.New(t, 3, func(i int, cfg *server.Config) {
		if i == skewed {
			cfg.Clock = func() time.Time { return time.Now().Add(-3 * time.Hour) }
		}
	})
	ctx := context.Background()
	transfer := func(to int) {
		t.Helper()
		c.Retry503(func() error {
			_, err := c.Admin(c.WaitLeader(leaderWait)).ClusterTransferLeadership(ctx, c.Nodes[to].ID)
			return err
		})
		waitAllSeeLeader(t, c, c.Nodes[to].ID)
	}
	if c.WaitLeader(leaderWait) == skewed {
		transfer(0)
	}
	acc, key := c.NewAccount("skew@example.com", api.ScopeTicketsRead, api.ScopeTicketsWrite, api.ScopeBillingRead,
		api.ScopeServersRead, api.ScopeServersWrite)
	// Six running servers (of a node never connected), each to take one
	// power action: the fixture's provisioning actions an hour old.
	soon := time.Now().Add(time.Hour)
	propose(t, c, fsm.CmdNodeCAInit, fsm.NodeCAInit{CertDER: []byte{1}, SealedKey: "v1.x", Fingerprint: "fp"}, fsm.ErrConflict)
	propose(t, c, fsm.CmdNodeTokenCreate, fsm.NodeTokenCreate{ID: "jt_skew", Hash: "h1", ExpiresAt: soon})
	propose(t, c, fsm.CmdNodeEnrol, fsm.NodeEnrol{TokenID: "jt_skew", TokenHash: "h1", NodeID: "hv-skew", CertSerial: "s1", CertNotAfter: soon.Add(24 * time.Hour)})
	var servers []string
	for i := 0; i < 6; i++ {
		sc := fsmtest.ServerCreate(acc.ID, "hv-skew", time.Now().Add(-time.Hour))
		propose(t, c, fsm.CmdServerCreate, sc)
		propose(t, c, fsm.CmdActionFinish, fsm.ActionFinish{ID: sc.Action.ID, Success: true})
		servers = append(servers, sc.Server.ID)
	}
	var made []api.Ticket
	var txs, acts []string
	write := func(n int, tag string) {
		t.Helper()
		for i := 0; i < n; i++ {
			ld := c.WaitLeader(leaderWait)
			var act api.ActionAccepted
			c.Retry503(func() (err error) {
				act, err = c.Client(ld, key).PowerServer(ctx, servers[len(acts)], "stop", nil, "")
				return err
			})
			acts = append(acts, act.Action.ID)
			var tk api.Ticket
			c.Retry503(func() (err error) {
				tk, err = c.Client(ld, key).CreateTicket(ctx, api.TicketCreateRequest{Subject: fmt.Sprintf("%s %d", tag, i), Message: "m"}, "")
				return err
			})
			made = append(made, tk)
			var tx api.WalletTransaction
			c.Retry503(func() (err error) {
				tx, err = c.Admin(ld).CreditWallet(ctx, acc.ID, api.WalletCreditRequest{AmountUsdCents: 100, Description: tag})
				return err
			})
			txs = append(txs, tx.ID)
		}
	}
	write(3, "before")
	transfer(skewed)
	if got := c.WaitLeader(leaderWait); got != skewed {
		t.Fatalf("leader is node %d, want the skewed node %d", got, skewed)
	}
	write(3, "after")

	list, err := c.Client(skewed, key).Actions(ctx, client.ActionsQuery{Command: api.ActionServerStop})
	if err != nil {
		t.Fatal(err)
	}
	newestFirst(t, "stop action", list.Data, acts, func(a api.Action) (string, string) { return a.ID, a.ID })
	page, err := c.Client(skewed, key).Tickets(ctx, 1, 50)
	if err != nil {
		t.Fatal(err)
	}
	var tickets []string
	for _, tk := range made {
		tickets = append(tickets, tk.ID)
	}
	newestFirst(t, "ticket", page.Data, tickets, func(tk api.Ticket) (string, string) { return tk.ID, fmt.Sprintf("%q (%s)", tk.Subject, tk.ID) })
	for i := 1; i < len(made); i++ {
		if made[i].CreatedAt.Before(made[i-1].CreatedAt) {
			t.Errorf("ticket %q was created at %s, before the earlier ticket %q (%s)", made[i].Subject, made[i].CreatedAt, made[i-1].Subject, made[i-1].CreatedAt)
		}
	}
	wallet, err := c.Client(skewed, key).WalletTransactions(ctx, 1, 50)
	if err != nil {
		t.Fatal(err)
	}
	newestFirst(t, "wallet transaction", wallet.Data, txs, func(tx api.WalletTransaction) (string, string) {
		return tx.ID, fmt.Sprintf("%s (%q)", tx.ID, tx.Description)
	})
}

// newestFirst fails t unless list (a list's page, newest first) holds the
// items of the ids made, in reverse; what names an item, and item gives an
// item's id and how a message shows it.
func newestFirst[T any](t *testing.T, what string, list []T, made []string, item func(T) (id, shown string)) {
	t.Helper()
	if len(list) != len(made) {
		t.Fatalf("listed %d %ss, made %d", len(list), what, len(made))
	}
	for i, it := range list {
		if id, shown := item(it); id != made[len(made)-1-i] {
			t.Errorf("%s %d of the list (newest first) is %s, want %s", what, i, shown, made[len(made)-1-i])
		}
	}
}

// propose commits a fixture command through the leader at its clock; an
// error the command answers that is one of ok is let be.
func propose(t *testing.T, c *testcluster.Cluster, typ fsm.CommandType, p any, ok ...error) {
	t.Helper()
	c.Retry503(func() error {
		a := c.Nodes[c.WaitLeader(leaderWait)].Server.API
		env, err := fsm.NewEnvelope(typ, a.Now(), p)
		if err != nil {
			t.Fatal(err)
		}
		res, err := a.Apply(context.Background(), env)
		if err == nil && res.Err != nil {
			for _, e := range ok {
				if errors.Is(res.Err, e) {
					return nil
				}
			}
			t.Fatalf("command %d: %v", typ, res.Err)
		}
		return err
	})
}
