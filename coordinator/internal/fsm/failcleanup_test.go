package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/action"
	"github.com/hostplane/hostplane/pkg/api"
)

func failCleanupDump(f *FSM) []byte {
	return bucketDump(f, append(append(append([][]byte{}, store.IPPoolBuckets...), store.ServerBuckets...),
		store.BucketOutbox, store.BucketAccounts, store.BucketWalletTx, store.BucketInvoices, store.BucketOpenActions)...)
}

// provisionOrder is testOrder n of vps-2 with its provisioning's
// parameters (debian-12 on 2 vCPUs, 4096 MiB, 60 GiB).
func provisionOrder(n int) ServerOrder {
	o := testOrder(n, "vps-2")
	o.Create.Action.Params, _ = action.Encode(&action.Provision{Template: "debian-12", Plan: api.NodePlan{VCPUs: 2, MemoryMiB: 4096, DiskGiB: 60}})
	return o
}

// serverOf reads server id from the first replica.
func serverOf(t *testing.T, h *whHarness, id string) store.Server {
	t.Helper()
	return readOne(t, h.fsms[0], func(r store.ReadTx) (store.Server, error) { return r.Server(id) })
}

// actionOf reads action id from the first replica.
func actionOf(t *testing.T, h *whHarness, id string) store.Action {
	t.Helper()
	return readOne(t, h.fsms[0], func(r store.ReadTx) (store.Action, error) { return r.Action(id) })
}

// TestFailedProvisionCleanup: on two replicas, three bought servers with
// pool addresses fail to provision. The first failure is an entry written
// before CleanupDeadlineSeconds: it is applied as it was (the server stays
// in error holding its room, no action opened). The other two, in one
// entry with the field, each open their own server.terminate (the failed
// provisioning's id in its meta, the deadline from the field); a repeat of
// the entry changes nothing. One terminate is answered not_found (the node
// holds no such VM: done), the other succeeds: both servers end
// terminated, their addresses in quarantine and their node room free, each
// refunded once, with one server.terminated each and no server.created.
func TestFailedProvisionCleanup(t *testing.T) {
	h := ipHarness(t)
	h.putVPS2(1200)
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: 5000})
	for n := 1; n <= 3; n++ {
		o := provisionOrder(n)
		o.Create.Addresses = bothFamilies
		h.must(CmdServerOrder, o)
	}
	usedAll := dbNodeUsed(t, h.fsms[0], "hv-1")
	fail := func(id string, cleanup int64) ActionFinish {
		return ActionFinish{ID: id, ErrorCode: "not_found", ErrorMessage: "provision: unknown template debian-12", CleanupDeadlineSeconds: cleanup}
	}

	h.must(CmdActionFinish, fail("act_1", 0))
	if s := serverOf(t, h, "srv_1"); s.Status != api.ServerError || s.ActionID != "" || len(s.Addrs) != 2 {
		t.Fatalf("an old entry's failure: %+v", s)
	}
	if n := h.count(store.BucketOpenActions, ""); n != 2 {
		t.Fatalf("%d open actions after an old entry's failure, want the two provisionings left", n)
	}

	cleanups := h.cleanupsOpened(t, failCleanupDump, serverCleanup(t, h), map[string]ActionFinish{"srv_2": fail("act_2", 300), "srv_3": fail("act_3", 300)})

	h.must(CmdActionFinish, ActionFinish{ID: cleanups["srv_2"], ErrorCode: api.NodeErrNotFound, ErrorMessage: "vm hp-srv_2 not found"})
	h.must(CmdActionFinish, ActionFinish{ID: cleanups["srv_3"], Success: true})
	for _, id := range []string{"srv_2", "srv_3"} {
		s, a := serverOf(t, h, id), actionOf(t, h, cleanups[id])
		if s.Status != api.ServerTerminated || s.TerminatedAt == nil || s.ActionID != "" || s.PaidUntil != nil || a.Status != api.ActionSuccess || a.Error != nil {
			t.Fatalf("%s after its cleanup: %+v, its action %+v", id, s, a)
		}
		if p := actionOf(t, h, "act_"+id[4:]); p.Status != api.ActionFailed || p.Error == nil || p.Error.Message != "provision: unknown template debian-12 (the order's 1200 cents were refunded to the wallet)" {
			t.Fatalf("%s's provisioning lost its reason: %+v", id, p.Error)
		}
	}
	// srv_1 (old entry) holds .2 and the first /64; srv_2 and srv_3's are quarantined.
	for _, unit := range []string{"pub4/198.51.100.3/32", "pub4/198.51.100.4/32", "pub6/2001:db8:0:1::/64", "pub6/2001:db8:0:2::/64"} {
		if h.count(store.BucketIPUnits, unit) != 1 {
			t.Errorf("no quarantine record of %s", unit)
		}
	}
	if n := h.count(store.BucketIPUnits, "pub4/198.51.100.2/32"); n != 0 {
		t.Errorf("srv_1's address was released by an old entry")
	}
	if used := dbNodeUsed(t, h.fsms[0], "hv-1"); used.VCPUs*3 != usedAll.VCPUs || used.MemoryBytes*3 != usedAll.MemoryBytes || used.DiskBytes*3 != usedAll.DiskBytes {
		t.Fatalf("node used %+v, want a third of %+v (srv_1 alone)", used, usedAll)
	}
	if b := balance(t, h.fsms[0], "acc_1"); b != 5000 {
		t.Fatalf("balance %d, want every order refunded once", b)
	}
	if countEvents(t, h, string(api.EventServerTerminated)) != 2 || countEvents(t, h, string(api.EventServerCreated)) != 0 {
		t.Fatalf("events %v", outboxTypes(t, h.fsms[0]))
	}
	h.replicasSame(failCleanupDump)
}

// TestFailedHostingCleanup: on two replicas, four bought hosting accounts
// fail to create. One fails while the cluster is at semantics level 1 (a
// coordinator of a release without the cleanup still in it), one in an
// entry written before the hosting cleanup (no CleanupDeadlineSeconds):
// both applied as before (the account stays in error holding its username,
// domain and node slot, no action opened). The other two, at level 2 in
// one entry with the field, each open their own
// hosting.delete (the failed create's id in its meta, the deadline from the
// field); a repeat changes nothing. One delete succeeds, the other is
// answered not_found (the node holds no such account: done): both accounts
// end deleted, their usernames and domains free for a new order and their
// node slots given back; every order refunded once.
func TestFailedHostingCleanup(t *testing.T) {
	h := webHarness(t, 2000)
	for n := 1; n <= 4; n++ {
		h.must(CmdHostingOrder, testHostingOrder(n, "web-1"))
	}
	slots := func() (n int) {
		_ = h.fsms[0].Read(func(r store.ReadTx) error { n = r.NodeHostingCount("hv-1"); return nil })
		return n
	}
	taken := func(user string) (u, d string) {
		_ = h.fsms[0].Read(func(r store.ReadTx) error {
			u, d = r.HostingUsernameTaken(user), r.HostingDomainTaken(user+".example")
			return nil
		})
		return u, d
	}
	fail := func(id string, cleanup int64) ActionFinish {
		return ActionFinish{ID: id, ErrorCode: "php_missing", ErrorMessage: "PHP 8.2 is not installed", CleanupDeadlineSeconds: cleanup}
	}

	// At level 1 (a coordinator of a release without the cleanup in the
	// cluster) and, at level 2, in an entry written before the field, the
	// failure is recorded as before.
	h.must(CmdActionFinish, fail("act_h1", 300))
	h.must(CmdClusterLevel, ClusterLevel{Level: 2})
	h.must(CmdActionFinish, fail("act_h4", 0))
	for _, id := range []string{"hst_1", "hst_4"} {
		if a := hostingAt(t, h, id); a.Status != api.HostingError || a.ActionID != "" {
			t.Fatalf("%s's failure at level 1 or from an old entry: %+v", id, a)
		}
		if u, d := taken("user" + id[4:]); u != id || d != id {
			t.Fatalf("%s's failure at level 1 or from an old entry freed its claims: username %q domain %q", id, u, d)
		}
	}
	if n := slots(); n != 4 {
		t.Fatalf("%d node slots taken, want 4", n)
	}

	cleanups := h.cleanupsOpened(t, hostingOrderDump, hostingCleanup(t, h), map[string]ActionFinish{"hst_2": fail("act_h2", 300), "hst_3": fail("act_h3", 300)})
	if b := balance(t, h.fsms[0], "acc_1"); b != 2000 {
		t.Fatalf("balance %d, want every order refunded once", b)
	}

	h.must(CmdActionFinish, ActionFinish{ID: cleanups["hst_2"], Success: true})
	h.must(CmdActionFinish, ActionFinish{ID: cleanups["hst_3"], ErrorCode: api.NodeErrNotFound, ErrorMessage: "hosting account user3 not found"})
	for _, id := range []string{"hst_2", "hst_3"} {
		ac, a := hostingAt(t, h, id), actionOf(t, h, cleanups[id])
		if ac.Status != api.HostingDeleted || ac.ActionID != "" || ac.PaidUntil != nil || a.Status != api.ActionSuccess || a.Error != nil {
			t.Fatalf("%s after its cleanup: %+v, its action %+v", id, ac, a)
		}
		if u, d := taken("user" + id[4:]); u != "" || d != "" {
			t.Fatalf("%s's username or domain still taken: %q %q", id, u, d)
		}
		if p := actionOf(t, h, "act_h"+id[4:]); p.Status != api.ActionFailed || p.Error == nil || !strings.Contains(p.Error.Message, "500 cents were refunded") {
			t.Fatalf("%s's create lost its reason: %+v", id, p.Error)
		}
	}
	if n := slots(); n != 2 {
		t.Fatalf("%d node slots taken, want hst_1's and hst_4's alone", n)
	}
	if b := balance(t, h.fsms[0], "acc_1"); b != 2000 {
		t.Fatalf("balance %d after the cleanups, want 2000", b)
	}
	// The same username and domain can be bought again.
	re := testHostingOrder(5, "web-1")
	re.Create.Hosting.Username, re.Create.Hosting.Domain, re.Create.Action.Target = "user2", "user2.example", "user2"
	h.must(CmdHostingOrder, re)
	h.replicasSame(hostingOrderDump)
}

// cleanupKind is what a bought resource's failed create leaves, for
// cleanupsOpened: the resource in status errStatus with its cleanup, an
// action of command and resourceType on the resource's target; read gives
// a resource's status, action and target, and the record itself (for a
// failure's message).
type cleanupKind struct {
	errStatus, command, resourceType string
	read                             func(id string) (status, actionID, target string, rec any)
}

func serverCleanup(t *testing.T, h *whHarness) cleanupKind {
	return cleanupKind{api.ServerError, api.ActionServerTerminate, "server", func(id string) (string, string, string, any) {
		s := serverOf(t, h, id)
		return s.Status, s.ActionID, s.VMName, s
	}}
}

func hostingCleanup(t *testing.T, h *whHarness) cleanupKind {
	return cleanupKind{api.HostingError, api.ActionHostingDelete, ResourceHosting, func(id string) (string, string, string, any) {
		a := hostingAt(t, h, id)
		return a.Status, a.ActionID, a.Username, a
	}}
}

// cleanupsOpened applies the failures of bought resources' creates (fails:
// resource id → the failure of its create, with its CleanupDeadlineSeconds)
// in one entry, in the order of the resources' ids, and checks that each
// resource opened its own cleanup (kind): pending, mutating, on hv-1, the
// failed create's id in its meta, its deadline the failure's after the
// entry; and that a repeat of the entry changes nothing (dump). It returns
// each resource's cleanup action id.
func (h *whHarness) cleanupsOpened(t *testing.T, dump func(*FSM) []byte, kind cleanupKind, fails map[string]ActionFinish) map[string]string {
	t.Helper()
	entry := ActionsFinished{}
	for _, id := range slices.Sorted(maps.Keys(fails)) {
		entry.Results = append(entry.Results, fails[id])
	}
	h.must(CmdActionsFinished, entry)
	failedAt := h.at
	cleanups, ids := map[string]string{}, map[string]bool{}
	for id, failure := range fails {
		status, actionID, target, rec := kind.read(id)
		a := actionOf(t, h, actionID)
		if status != kind.errStatus || a.Command != kind.command || a.ResourceType != kind.resourceType || a.Status != api.ActionPending || !a.Mutating ||
			a.Meta[metaCleanupOf] != failure.ID || a.Target != target || a.NodeID != "hv-1" || !a.Deadline.Equal(failedAt.Add(time.Duration(failure.CleanupDeadlineSeconds)*time.Second)) {
			t.Fatalf("%s after its failure: %+v, its action %+v", id, rec, a)
		}
		cleanups[id], ids[a.ID] = a.ID, true
	}
	if len(ids) != len(fails) {
		t.Fatalf("one action id for several cleanups: %v", cleanups)
	}
	h.repeatChangesNothing(dump, "a repeated failure changed the state", CmdActionsFinished, entry)
	return cleanups
}

// cleanupHarness: node hv-1 (kvm, hosting), vps-2 at 1200 and web-1 at 500
// cents a month, acc_1's wallet credited 5000 and three orders: servers srv_1
// and srv_2 (provisionOrder, act_1 and act_2) and hosting account hst_1
// (act_h1), their actions open.
func cleanupHarness(t *testing.T) *whHarness {
	h := newServerHarness(t)
	h.helloHosting()
	h.putVPS2(1200)
	h.putWeb1()
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: 5000})
	for n := 1; n <= 2; n++ {
		h.must(CmdServerOrder, provisionOrder(n))
	}
	h.must(CmdHostingOrder, testHostingOrder(1, "web-1"))
	return h
}

// TestFailedCleanupRetried: a failed provisioning's cleanup that fails
// itself (the node answered an error, not not_found) opens its next attempt
// in the command recording the failure when the result carries
// CleanupRetrySeconds, from semantics level 2: same command and target,
// the attempt number and not_before (the failure's time plus the wait) in
// its meta, its deadline counted from not_before. At level 1, or from an
// entry without the field, nothing is opened. The attempts are bounded:
// the last one's failure opens none (the server stays in error holding its
// room). A success of a later attempt terminates the server as the first
// would have. A hosting account's cleanup delete is retried alike.
func TestFailedCleanupRetried(t *testing.T) {
	h := cleanupHarness(t)
	failed := func(id string, retry int64) ActionFinish {
		return ActionFinish{ID: id, ErrorCode: "node_error", ErrorMessage: "libvirt: broken", CleanupDeadlineSeconds: 300, CleanupRetrySeconds: retry}
	}
	h.must(CmdClusterLevel, ClusterLevel{Level: 2})
	h.must(CmdActionFinish, ActionFinish{ID: "act_1", ErrorCode: "failed", ErrorMessage: "boom", CleanupDeadlineSeconds: 300})
	h.must(CmdActionFinish, ActionFinish{ID: "act_2", ErrorCode: "failed", ErrorMessage: "boom", CleanupDeadlineSeconds: 300})
	h.must(CmdActionFinish, ActionFinish{ID: "act_h1", ErrorCode: "php_missing", ErrorMessage: "boom", CleanupDeadlineSeconds: 300})

	// An entry without the field opens nothing.
	first := serverOf(t, h, "srv_2").ActionID
	h.must(CmdActionFinish, failed(first, 0))
	if s := serverOf(t, h, "srv_2"); s.Status != api.ServerError || s.ActionID != "" {
		t.Fatalf("a failed cleanup without the retry field: %+v", s)
	}

	// srv_1: every attempt fails, up to the bound.
	cur := serverOf(t, h, "srv_1").ActionID
	if CleanupAttempt(actionOf(t, h, cur)) != 1 {
		t.Fatalf("the first cleanup is attempt %d", CleanupAttempt(actionOf(t, h, cur)))
	}
	for n := 2; n <= MaxCleanupAttempts; n++ {
		h.must(CmdActionFinish, failed(cur, int64(n*10)))
		at := h.at
		s := serverOf(t, h, "srv_1")
		a := actionOf(t, h, s.ActionID)
		nb := at.Add(time.Duration(n*10) * time.Second)
		if s.Status != api.ServerError || s.ActionID == cur || a.Command != api.ActionServerTerminate || a.Status != api.ActionPending ||
			a.Meta[metaCleanupOf] != "act_1" || a.Meta[MetaCleanupAttempt] != fmt.Sprint(n) || a.Meta[MetaNotBefore] != nb.UTC().Format(time.RFC3339Nano) ||
			!a.Deadline.Equal(nb.Add(300*time.Second)) || a.Target != "hp-srv_1" || a.NodeID != "hv-1" || !a.Mutating {
			t.Fatalf("attempt %d: server %+v, action %+v", n, s, a)
		}
		if p := actionOf(t, h, cur); p.Status != api.ActionFailed || p.Error == nil || p.Error.Code != "node_error" {
			t.Fatalf("attempt %d's predecessor %+v", n, p)
		}
		cur = s.ActionID
	}
	h.must(CmdActionFinish, failed(cur, 60))
	if s := serverOf(t, h, "srv_1"); s.Status != api.ServerError || s.ActionID != "" {
		t.Fatalf("after the last attempt failed: %+v, want error with no action", s)
	}

	// The hosting account's delete: retried, then done.
	cur = hostingAt(t, h, "hst_1").ActionID
	h.must(CmdActionFinish, failed(cur, 30))
	next := hostingAt(t, h, "hst_1").ActionID
	if a := actionOf(t, h, next); next == "" || next == cur || a.Command != api.ActionHostingDelete || a.Meta[MetaCleanupAttempt] != "2" || a.Status != api.ActionPending {
		t.Fatalf("hosting cleanup retry: %+v", a)
	}
	h.must(CmdActionFinish, ActionFinish{ID: next, Success: true})
	if a := hostingAt(t, h, "hst_1"); a.Status != api.HostingDeleted || a.ActionID != "" {
		t.Fatalf("hosting account after its second cleanup: %+v", a)
	}
	h.replicasSame(failCleanupDump)
}

// TestFailedCleanupNotRetriedAtLevel1: at level 1 a failed cleanup opens no
// next attempt even with the field (a coordinator of a release without it
// is still in the cluster).
func TestFailedCleanupNotRetriedAtLevel1(t *testing.T) {
	h := ipHarness(t)
	h.putVPS2(1200)
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: 5000})
	h.must(CmdServerOrder, provisionOrder(1))
	h.must(CmdActionFinish, ActionFinish{ID: "act_1", ErrorCode: "failed", ErrorMessage: "boom", CleanupDeadlineSeconds: 300})
	var s store.Server
	read := func() {
		_ = h.fsms[0].Read(func(r store.ReadTx) (err error) { s, err = r.Server("srv_1"); return })
	}
	read()
	h.must(CmdActionFinish, ActionFinish{ID: s.ActionID, ErrorCode: "node_error", ErrorMessage: "x", CleanupDeadlineSeconds: 300, CleanupRetrySeconds: 60})
	read()
	if s.Status != api.ServerError || s.ActionID != "" {
		t.Fatalf("a failed cleanup at level 1: %+v", s)
	}
}

// TestRemoveJoinsWaitingCleanup: on two replicas, a bought server and a
// bought hosting account fail to provision, so each has its cleanup
// (server.terminate, hosting.delete) as its action. At semantics level 1 a
// terminate (delete) asked then is refused as before: 409, the resource
// busy with that cleanup, nothing changed. At level 2 the cleanup fails
// and its next attempt waits an hour (not_before); a terminate asked
// meanwhile is not refused: it answers 202 with that waiting attempt, now
// due (no not_before, its deadline an hour earlier: the entry's time plus
// the cleanup deadline), and the request's own action is not recorded. A
// second terminate joins the same attempt; its result terminates the server
// (one server.terminated), the order refunded once only. The hosting
// account's delete likewise. A resource that is not in error, or an action
// that is not its cleanup, is still refused as busy.
func TestRemoveJoinsWaitingCleanup(t *testing.T) {
	h := cleanupHarness(t)
	lookup := func(id string) (a store.Action, err error) {
		err = h.fsms[0].Read(func(r store.ReadTx) (err error) { a, err = r.Action(id); return })
		return a, err
	}
	n := 0
	terminate := func(srv string) (any, error) {
		n++
		return h.apply(CmdActionCreate, ActionCreate{Action: store.Action{
			Action:    api.Action{ID: fmt.Sprintf("act_op%d", n), Command: api.ActionServerTerminate, ResourceID: srv},
			AccountID: "acc_1", NodeID: "hv-1", Target: "hp-" + srv, Mutating: true, Deadline: h.at.Add(time.Hour)}})
	}
	deleteHosting := func(id, user string) (any, error) {
		n++
		return h.apply(CmdHostingAction, HostingAction{Action: store.Action{
			Action:    api.Action{ID: fmt.Sprintf("act_op%d", n), Command: api.ActionHostingDelete, ResourceID: id},
			AccountID: "acc_1", NodeID: "hv-1", Target: user, Mutating: true, Deadline: h.at.Add(time.Hour)}})
	}
	busy := func(what string, err error, actionID string) {
		t.Helper()
		var be *ActionBusyError
		if !errors.As(err, &be) || be.ActionID != actionID {
			t.Fatalf("%s: %v, want busy with %s", what, err, actionID)
		}
	}

	// Level 1: the provisionings fail, each opens its cleanup; a terminate
	// or delete meanwhile is a 409 as before, changing nothing.
	h.must(CmdActionFinish, ActionFinish{ID: "act_1", ErrorCode: "failed", ErrorMessage: "boom", CleanupDeadlineSeconds: 300})
	cleanup := serverOf(t, h, "srv_1").ActionID
	if a := actionOf(t, h, cleanup); CleanupAttempt(a) != 1 || a.Status != api.ActionPending {
		t.Fatalf("srv_1's cleanup %+v", a)
	}
	before := failCleanupDump(h.fsms[0])
	_, err := terminate("srv_1")
	busy("a terminate at level 1", err, cleanup)
	if !bytes.Equal(before, failCleanupDump(h.fsms[0])) {
		t.Fatal("a refused terminate changed the state")
	}

	h.must(CmdClusterLevel, ClusterLevel{Level: 2})
	h.must(CmdActionFinish, ActionFinish{ID: "act_h1", ErrorCode: "php_missing", ErrorMessage: "boom", CleanupDeadlineSeconds: 300})
	// srv_2's provisioning is still pending: its terminate is busy with it.
	_, err = terminate("srv_2")
	busy("a terminate of a server still provisioning", err, "act_2")

	// Level 2: the cleanup fails; its next attempt waits an hour.
	h.must(CmdActionFinish, ActionFinish{ID: cleanup, ErrorCode: "failed", ErrorMessage: "busy", CleanupDeadlineSeconds: 300, CleanupRetrySeconds: 3600})
	waiting := serverOf(t, h, "srv_1").ActionID
	if a := actionOf(t, h, waiting); waiting == cleanup || CleanupAttempt(a) != 2 || a.Meta[MetaNotBefore] == "" {
		t.Fatalf("the waiting attempt %+v", a)
	}
	v, err := terminate("srv_1")
	if err != nil {
		t.Fatalf("a terminate while the cleanup's next attempt waits: %v", err)
	}
	askedAt, asked := h.at, fmt.Sprintf("act_op%d", n)
	acc, ok := v.(api.ActionAccepted)
	if !ok || acc.Action.ID != waiting || acc.Action.Command != api.ActionServerTerminate || acc.Action.Status != api.ActionPending ||
		acc.Server == nil || acc.Server.ID != "srv_1" {
		t.Fatalf("the terminate's answer %#v, want the waiting attempt %s", v, waiting)
	}
	a := actionOf(t, h, waiting)
	if _, held := a.Meta[MetaNotBefore]; held || !a.Deadline.Equal(askedAt.Add(300*time.Second)) || a.Status != api.ActionPending ||
		a.Meta[metaCleanupOf] != "act_1" || a.Meta[MetaCleanupAttempt] != "2" {
		t.Fatalf("the joined attempt %+v, want it due now with its deadline 300 s from %s", a, askedAt)
	}
	if _, err := lookup(asked); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the request's own action was recorded: %v", err)
	}
	if s := serverOf(t, h, "srv_1"); s.ActionID != waiting || s.Status != api.ServerError {
		t.Fatalf("server after the terminate %+v", s)
	}
	if n := h.count(store.BucketOpenActions, ""); n != 3 { // the joined attempt, act_2, the hosting delete
		t.Fatalf("%d open actions, want 3", n)
	}
	// A second terminate (a retry of the request) joins it again.
	if v, err := terminate("srv_1"); err != nil || v.(api.ActionAccepted).Action.ID != waiting {
		t.Fatalf("a second terminate: %v %v", v, err)
	}
	h.must(CmdActionFinish, ActionFinish{ID: waiting, Success: true})
	if s := serverOf(t, h, "srv_1"); s.Status != api.ServerTerminated || s.ActionID != "" {
		t.Fatalf("server after its joined cleanup %+v", s)
	}
	_, err = terminate("srv_1")
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("a terminate of a terminated server: %v", err)
	}

	// The hosting account: its delete fails, the next waits; a delete joins it.
	hc := hostingAt(t, h, "hst_1").ActionID
	h.must(CmdActionFinish, ActionFinish{ID: hc, ErrorCode: "failed", ErrorMessage: "busy", CleanupDeadlineSeconds: 300, CleanupRetrySeconds: 3600})
	hw := hostingAt(t, h, "hst_1").ActionID
	v, err = deleteHosting("hst_1", "user1")
	if err != nil {
		t.Fatalf("a delete while the hosting cleanup's next attempt waits: %v", err)
	}
	if ha, ok := v.(api.HostingActionAccepted); !ok || ha.Action.ID != hw || hw == hc || ha.Hosting == nil {
		t.Fatalf("the delete's answer %#v, want the waiting attempt %s", v, hw)
	}
	if a := actionOf(t, h, hw); a.Meta[MetaNotBefore] != "" || !a.Deadline.Equal(h.at.Add(300*time.Second)) {
		t.Fatalf("the joined hosting attempt %+v", a)
	}
	h.must(CmdActionFinish, ActionFinish{ID: hw, Success: true})
	if ha := hostingAt(t, h, "hst_1"); ha.Status != api.HostingDeleted || ha.ActionID != "" {
		t.Fatalf("hosting account after its joined cleanup %+v", ha)
	}

	// Each order refunded once (srv_2's is still provisioning: paid).
	if b := balance(t, h.fsms[0], "acc_1"); b != 5000-1200 {
		t.Fatalf("balance %d, want %d: srv_1's and hst_1's orders refunded once each", b, 5000-1200)
	}
	if countEvents(t, h, string(api.EventServerTerminated)) != 1 {
		t.Fatalf("events %v, want one server.terminated", outboxTypes(t, h.fsms[0]))
	}
	h.replicasSame(failCleanupDump)
}

// TestJoinedCleanupFreesAddresses: a bought server with a pool IPv4 and an
// IPv6 prefix fails to provision at level 2, its cleanup fails and the next
// attempt waits an hour; a terminate joins it and the node answers
// not_found (it holds no such VM): the server is terminated, both
// addresses in quarantine, its node room free, the order refunded once;
// replicas byte-identical.
func TestJoinedCleanupFreesAddresses(t *testing.T) {
	h := ipHarness(t)
	h.putVPS2(1200)
	h.must(CmdWalletCredit, WalletCredit{TxID: "wtx_dep", AccountID: "acc_1", AmountUsdCents: 5000})
	h.must(CmdClusterLevel, ClusterLevel{Level: 2})
	o := provisionOrder(1)
	o.Create.Addresses = bothFamilies
	h.must(CmdServerOrder, o)
	var s store.Server
	read := func() {
		t.Helper()
		if err := h.fsms[0].Read(func(r store.ReadTx) (err error) { s, err = r.Server("srv_1"); return }); err != nil {
			t.Fatal(err)
		}
	}
	h.must(CmdActionFinish, ActionFinish{ID: "act_1", ErrorCode: "failed", ErrorMessage: "boom", CleanupDeadlineSeconds: 300})
	read()
	h.must(CmdActionFinish, ActionFinish{ID: s.ActionID, ErrorCode: "failed", ErrorMessage: "busy", CleanupDeadlineSeconds: 300, CleanupRetrySeconds: 3600})
	read()
	waiting := s.ActionID
	if len(s.Addrs) != 2 || waiting == "" {
		t.Fatalf("server waiting for its cleanup %+v", s)
	}
	v := h.must(CmdActionCreate, ActionCreate{Action: store.Action{Action: api.Action{ID: "act_op", Command: api.ActionServerTerminate, ResourceID: "srv_1"},
		AccountID: "acc_1", NodeID: "hv-1", Target: "hp-srv_1", Mutating: true, Deadline: h.at.Add(time.Hour)}})
	if acc := v.(api.ActionAccepted); acc.Action.ID != waiting {
		t.Fatalf("the terminate answered %+v, want %s", acc.Action, waiting)
	}
	h.must(CmdActionFinish, ActionFinish{ID: waiting, ErrorCode: api.NodeErrNotFound, ErrorMessage: "vm hp-srv_1 not found"})
	read()
	if s.Status != api.ServerTerminated || s.ActionID != "" {
		t.Fatalf("server after the joined cleanup %+v", s)
	}
	for _, unit := range []string{"pub4/198.51.100.2/32", "pub6/2001:db8::/64"} {
		if h.count(store.BucketIPUnits, unit) != 1 {
			t.Errorf("no quarantine record of %s", unit)
		}
	}
	if used := dbNodeUsed(t, h.fsms[0], "hv-1"); used.VCPUs != 0 || used.MemoryBytes != 0 || used.DiskBytes != 0 {
		t.Fatalf("node used %+v after the terminate, want none", used)
	}
	if b := balance(t, h.fsms[0], "acc_1"); b != 5000 {
		t.Fatalf("balance %d, want the order refunded once", b)
	}
	h.replicasSame(failCleanupDump)
}
