package fsm

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/placement"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/action"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// NodeSchedule cordons, uncordons or drains a node.
type NodeSchedule struct {
	NodeID   string `json:"node_id"`
	Cordoned bool   `json:"cordoned"`
	Draining bool   `json:"draining"`
}

// ServerCreate records a placed server and its provisioning action.
type ServerCreate struct {
	Server store.Server `json:"server"`
	Action store.Action `json:"action"`
	// Addresses, if set, allocates the server's addresses from IP pools in
	// this command (ippools.go) and fills them into the provision params.
	Addresses *AddrRequest `json:"addresses,omitempty"`
	// CPUOvercommit, when set, has the node's room checked again at apply
	// time with this vCPU overcommit (placement.Policy): two creates placed
	// on the same last slot by the proposer cannot both land. Entries
	// written before the check have 0 and are applied as they were.
	CPUOvercommit float64 `json:"cpu_overcommit,omitempty"`
	// Locations, when set, are the node locations the server may be in (an
	// order's location or its product's, an operator's --location): from
	// semantics level 2 a node that is in none of them at apply time (moved
	// since placement, PUT /admin/nodes/{id}/location) refuses the server
	// as a full node does (checkNodeLocation). Entries written before have
	// none.
	Locations []string `json:"locations,omitempty"`
}

// ActionCreate commits a new action on a server. The proposer fills every id,
// the deadline and the params; apply checks ownership and the one mutating
// action per server rule.
type ActionCreate struct {
	Action store.Action `json:"action"`
}

// ActionProgress records that the node took the action (pending → running) or
// reached a new step.
type ActionProgress struct {
	ID      string    `json:"id"`
	At      time.Time `json:"at"`
	Percent int       `json:"percent"`
	Step    string    `json:"step,omitempty"`
}

// ActionFinish records an action's result and applies it to the server, with
// the event, in one transaction. A second finish of the same action is a no-op.
type ActionFinish struct {
	ID           string          `json:"id"`
	Success      bool            `json:"success"`
	ErrorCode    string          `json:"error_code,omitempty"`
	ErrorMessage string          `json:"error_message,omitempty"`
	Result       json.RawMessage `json:"result,omitempty"` // the agent's api.NodeOpResult
	// CleanupDeadlineSeconds, set by the proposer on a failed result, has
	// a failed server.provision of a bought server open that server's
	// server.terminate, and a failed hosting.create of a bought hosting
	// account that account's hosting.delete, with this deadline, in the
	// same command (see openCleanup). Entries written before it have 0: the
	// failure is recorded as it was (the server or account stays in error
	// holding its room). Before the hosting cleanup the proposer set it on
	// server.provision results only, so every hosting.create failure logged
	// before has 0 too.
	CleanupDeadlineSeconds int64 `json:"cleanup_deadline_seconds,omitempty"`
	// CleanupRetrySeconds, set by the proposer on the failed result of a
	// cleanup action (meta cleanup_of) with attempts left, has the FSM open
	// the next attempt in the same command, held back this long (meta
	// not_before: the dispatcher sends it then), with CleanupDeadlineSeconds
	// after that; from semantics level 2 and for at most MaxCleanupAttempts
	// attempts in all (retryCleanup). Entries written before have 0.
	CleanupRetrySeconds int64 `json:"cleanup_retry_seconds,omitempty"`
}

// MaxCleanupAttempts bounds the attempts of a failed provisioning's
// cleanup (the first included): past it the server or hosting account
// stays in error holding what it holds, for the operator.
const MaxCleanupAttempts = 6

// Meta keys of a cleanup retry: its attempt number (the first cleanup has
// none: 1) and when the dispatcher may send it (RFC 3339).
const (
	MetaCleanupAttempt = "cleanup_attempt"
	MetaNotBefore      = "not_before"
)

// LevelCleanupRetry is the semantics level from which a failed cleanup
// opens its next attempt.
const LevelCleanupRetry = 2

// CleanupAttempt is the attempt number of a cleanup action (1 for the
// first), 0 for an action that is no cleanup.
func CleanupAttempt(a store.Action) int {
	if a.Meta[metaCleanupOf] == "" {
		return 0
	}
	n, err := strconv.Atoi(a.Meta[MetaCleanupAttempt])
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// retryCleanup opens the next attempt of a, a failed cleanup action (see
// ActionFinish.CleanupRetrySeconds), on the resource whose action id is
// *actionID (set to the new one); it returns whether it opened one.
func retryCleanup(c *applyCtx, a *store.Action, p ActionFinish, actionID *string) (bool, error) {
	n := CleanupAttempt(*a)
	if n == 0 || a.Status == api.ActionSuccess || p.CleanupRetrySeconds <= 0 || p.CleanupDeadlineSeconds <= 0 ||
		n >= MaxCleanupAttempts || *actionID != "" || c.level() < LevelCleanupRetry {
		return false, nil
	}
	notBefore := c.at.Add(time.Duration(p.CleanupRetrySeconds) * time.Second)
	next := store.Action{
		Action:    api.Action{Command: a.Command, ResourceType: a.ResourceType, ResourceID: a.ResourceID},
		AccountID: a.AccountID, NodeID: a.NodeID, Target: a.Target, Params: a.Params,
	}
	id, err := putCleanupWith(c, next, a.Meta[metaCleanupOf], notBefore.Sub(c.at)+time.Duration(p.CleanupDeadlineSeconds)*time.Second,
		map[string]string{MetaCleanupAttempt: strconv.Itoa(n + 1), MetaNotBefore: notBefore.UTC().Format(time.RFC3339Nano)})
	if err != nil {
		return false, err
	}
	*actionID = id
	return true, nil
}

// levelCleanupJoin is the semantics level from which a terminate (delete)
// of a server (hosting account) whose action is its failed provisioning's
// cleanup of that command is not refused as busy but joins it (joinCleanup).
const levelCleanupJoin = 2

// joinCleanup: from semantics level 2, a request for command on a resource
// whose unfinished action actionID is a failed provisioning's cleanup of
// that same command (openCleanup, openHostingCleanup, a retry of
// retryCleanup) is answered with that cleanup instead of the 409 of a busy
// resource: an operator or customer who removes a server stuck in error
// while its next attempt waits (up to an hour) has it sent now. A waiting
// attempt is made due at once: its not_before is dropped and its deadline
// moved as much earlier (decided from the entry's time, so every replica
// writes the same), and the dispatcher, which reads the meta on each scan,
// sends it on its next one. The request's own action is not recorded; the
// cleanup stays the one action (its not_found still counts as done, its
// failure still opens the next attempt), so nothing runs twice and the
// result is applied once. ok is false when the request is to be handled as
// before. The callers answer with cur when ok or err: with an error, the
// request's answer is the error alone (applyEnvelope drops the value).
func joinCleanup(c *applyCtx, actionID, command string) (store.Action, bool, error) {
	if actionID == "" || c.level() < levelCleanupJoin {
		return store.Action{}, false, nil
	}
	cur, err := c.r.Action(actionID)
	if err != nil || cur.Finished() || cur.Command != command || CleanupAttempt(cur) == 0 {
		return store.Action{}, false, nil
	}
	nb, err := time.Parse(time.RFC3339Nano, cur.Meta[MetaNotBefore])
	if err != nil || !nb.After(c.at) {
		return cur, true, nil // due already (or being sent): join it as it is
	}
	cur.Deadline = cur.Deadline.Add(-nb.Sub(c.at))
	meta := maps.Clone(cur.Meta)
	delete(meta, MetaNotBefore)
	cur.Meta = meta
	return cur, true, putAction(c, cur)
}

// metaCleanupOf marks a server.terminate opened by a failed provisioning
// (openCleanup); its value is the failed server.provision's id.
const metaCleanupOf = "cleanup_of"

// ActionsFinished is several results in one entry (deadline sweeps).
type ActionsFinished struct {
	Results []ActionFinish `json:"results"`
}

// ServerLabel renames a server.
type ServerLabel struct {
	AccountID string `json:"account_id"`
	ServerID  string `json:"server_id"`
	Label     string `json:"label"`
}

// ServerPTR sets the reverse-DNS (PTR) name of one of a server's addresses;
// an empty Hostname removes it. The proposer validates the hostname and sends
// the address in canonical form (netip.Addr.String).
type ServerPTR struct {
	AccountID string `json:"account_id"`
	ServerID  string `json:"server_id"`
	IP        string `json:"ip"`
	Hostname  string `json:"hostname,omitempty"`
}

// maxPTRHostname is the longest DNS name (without the trailing dot).
const maxPTRHostname = 253

// ServerAddrs are the server's addresses: its primary IPv4 (a static one
// given by hand or its first pool address), then its other pool addresses
// (an IPv6 prefix shows as the guest's address in it); a DHCP server has none.
func ServerAddrs(s store.Server) []netip.Addr {
	var out []netip.Addr
	addr, _, _ := strings.Cut(s.IPv4, "/")
	if ip, err := netip.ParseAddr(addr); err == nil && ip.Is4() {
		out = append(out, ip)
	}
	for _, ad := range s.Addrs {
		if !slices.Contains(out, ad.Addr.Addr()) {
			out = append(out, ad.Addr.Addr())
		}
	}
	return out
}

// primaryIPv4 is the server's primary IPv4 address without its length, or
// nil (the server.created payload's ipv4).
func primaryIPv4(s store.Server) any {
	addr, _, _ := strings.Cut(s.IPv4, "/")
	if ip, err := netip.ParseAddr(addr); err == nil && ip.Is4() {
		return ip.String()
	}
	return nil
}

// ServerIPView is the public view of one of the server's addresses with its
// PTR name (nil while unset), gateway, netmask/prefix and whether it is the
// primary of its family.
func ServerIPView(s store.Server, ip netip.Addr) api.ServerIP {
	out := api.ServerIP{IP: ip.String(), Version: 4}
	if ip.Is6() {
		out.Version = 6
	}
	if h, ok := s.PTRs[out.IP]; ok && h != "" {
		out.PTR = &h
	}
	primary := true
	for _, ad := range s.Addrs {
		if ad.Addr.Addr() == ip {
			out.Primary, out.Prefix = primary, ad.Addr.Bits()
			if ad.Gateway != "" {
				gw := ad.Gateway
				out.Gateway = &gw
			}
			break
		}
		if ad.Addr.Addr().Is6() == ip.Is6() {
			primary = false // an earlier address of the family is the primary
		}
	}
	if out.Prefix == 0 && ip.Is4() {
		// The static IPv4 given by hand (CIDR form), with its gateway.
		if p, err := netip.ParsePrefix(s.IPv4); err == nil && p.Addr() == ip {
			out.Primary, out.Prefix = true, p.Bits()
		}
	}
	if ip.Is4() && out.Prefix > 0 {
		mask := net4Mask(out.Prefix)
		out.Netmask = &mask
	}
	// ZoneHosted and PTRSync come from the mapped reverse zones
	// (WithReverseDNS, rdns.go); without them every name is only recorded.
	out.ZoneHosted, out.PTRSync = false, api.PTRNotHosted
	return out
}

// net4Mask is the dotted netmask of an IPv4 prefix length.
func net4Mask(bits int) string {
	m := ^uint32(0) << (32 - bits)
	if bits == 0 {
		m = 0
	}
	return netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}).String()
}

// ServerObserved records power states the node reported in its inventory that
// differ from the recorded ones (a guest that shut itself down).
type ServerObserved struct {
	Changes []ServerPower `json:"changes"`
}

// ServerPower is one observed power state.
type ServerPower struct {
	ServerID   string `json:"server_id"`
	PowerState string `json:"power_state"` // running or stopped
}

// ActionBusyError is the conflict of a second mutating action on a server.
type ActionBusyError struct {
	ServerID, ActionID, Command string
	// Resource names the kind of ServerID in the message ("" is "server").
	Resource string
}

func (e *ActionBusyError) Error() string {
	res := e.Resource
	if res == "" {
		res = "server"
	}
	return fmt.Sprintf("%s %s has action %s (%s) in progress; retry when it has finished", res, e.ServerID, e.ActionID, e.Command)
}

// Is makes an ActionBusyError an ErrConflict.
func (e *ActionBusyError) Is(target error) bool { return target == ErrConflict }

func putServer(tx *bolt.Tx, s store.Server) error {
	if raw, ok := store.EncodeServer(&s); ok {
		return tx.Bucket(store.BucketServers).Put(store.OwnedKey(s.AccountID, s.ID), raw)
	}
	return store.PutJSON(tx, store.BucketServers, store.OwnedKey(s.AccountID, s.ID), s)
}

func putAction(c *applyCtx, a store.Action) error {
	tx := c.tx
	if err := indexAction(c, &a); err != nil {
		return err
	}
	if raw, ok := store.EncodeAction(&a); ok {
		if err := tx.Bucket(store.BucketActions).Put([]byte(a.ID), raw); err != nil {
			return err
		}
	} else if err := store.PutJSON(tx, store.BucketActions, []byte(a.ID), a); err != nil {
		return err
	}
	if c.actions != nil {
		*c.actions = append(*c.actions, a.ID)
	}
	open := tx.Bucket(store.BucketOpenActions)
	if a.Finished() {
		return open.Delete([]byte(a.ID))
	}
	if v := open.Get([]byte(a.ID)); v != nil && string(v) == a.NodeID {
		// Listed already (a progress): a Put of the same value would
		// still rewrite the bucket's page.
		return nil
	}
	return open.Put([]byte(a.ID), []byte(a.NodeID))
}

func checkNewAction(a *store.Action) error {
	if a.ID == "" || a.Command == "" || a.NodeID == "" || a.Target == "" || a.ResourceID == "" || a.Deadline.IsZero() {
		return fmt.Errorf("%w: an action needs an id, a command, a node, a target, a resource and a deadline", ErrInvalid)
	}
	return nil
}

// newActionOn checks a proposed action, loads the resource it is about
// (server, hosting account) with load and refuses an action id already
// recorded.
func newActionOn[T any](c *applyCtx, a *store.Action, load func(accountID, id string) (T, error)) (T, error) {
	var none T
	if err := checkNewAction(a); err != nil {
		return none, err
	}
	res, err := load(a.AccountID, a.ResourceID)
	if err != nil {
		return none, err
	}
	if c.tx.Bucket(store.BucketActions).Get([]byte(a.ID)) != nil {
		return none, fmt.Errorf("%w: action %s exists", ErrConflict, a.ID)
	}
	return res, nil
}

// busyWith is the ActionBusyError of resource id while its action actionID
// is unfinished; nil when it has none or it has finished. resource names
// the kind in the message ("" is "server").
func (c *applyCtx) busyWith(id, actionID, resource string) error {
	if actionID == "" {
		return nil
	}
	if cur, err := c.r.Action(actionID); err == nil && !cur.Finished() {
		return &ActionBusyError{ServerID: id, ActionID: cur.ID, Command: cur.Command, Resource: resource}
	}
	return nil
}

func applyNodeSchedule(c *applyCtx, p NodeSchedule) (any, error) {
	n, err := c.r.AgentNode(p.NodeID)
	if err != nil {
		return nil, err
	}
	n.Cordoned, n.Draining = p.Cordoned || p.Draining, p.Draining
	return n.AgentNode, store.PutJSON(c.tx, store.BucketAgentNodes, []byte(n.ID), n)
}

func applyServerCreate(c *applyCtx, p ServerCreate) (any, error) {
	return createServer(c, p, false)
}

// createServer is applyServerCreate; accountRead says the caller (an
// order) has just read the server's account, so it is not read again.
func createServer(c *applyCtx, p ServerCreate, accountRead bool) (any, error) {
	s, a := p.Server, p.Action
	if s.ID == "" || s.AccountID == "" || s.NodeID == "" || s.VMName == "" {
		return nil, fmt.Errorf("%w: a server needs an id, an account, a node and a vm name", ErrInvalid)
	}
	if err := checkNewAction(&a); err != nil {
		return nil, err
	}
	if !accountRead {
		if _, err := getAccount(c.tx, s.AccountID); err != nil {
			return nil, err
		}
	}
	n, err := c.nodeTakingNew(s.NodeID, "servers", true)
	if err != nil {
		return nil, err
	}
	if store.OwnerOf(c.tx, store.BucketServerIDs, s.ID) != nil {
		return nil, fmt.Errorf("%w: server %s exists", ErrConflict, s.ID)
	}
	if p.CPUOvercommit > 0 {
		if err := checkNodeRoom(c, n.AgentNode, s.Plan, p.CPUOvercommit); err != nil {
			return nil, err
		}
	}
	if c.level() >= levelLocationAtApply {
		if err := checkNodeLocation(n.AgentNode, p.Locations, "the server"); err != nil {
			return nil, err
		}
		s.Location = n.Location
	}
	s.Status, s.CreatedAt, s.UpdatedAt, s.ActionID = api.ServerProvisioning, c.at, c.at, a.ID
	a.Status, a.CreatedAt, a.AccountID, a.ResourceType, a.ResourceID = api.ActionPending, c.at, s.AccountID, "server", s.ID
	a.Mutating = true
	s.Addrs = nil
	if err := claimStatic(c, &s); err != nil {
		return nil, err
	}
	bridge, resolvers, err := allocateAddrs(c, p.Addresses, n.AgentNode, &s)
	if err != nil {
		return nil, err
	}
	if err := primaryAddrs(&s, &a, n.AgentNode, bridge, resolvers); err != nil {
		return nil, err
	}
	if err := putAllocated(c, s); err != nil {
		return nil, err
	}
	if err := putServer(c.tx, s); err != nil {
		return nil, err
	}
	if err := putOwner(c, store.BucketServerIDs, s.ID, s.AccountID); err != nil {
		return nil, err
	}
	if err := c.tx.Bucket(store.BucketNodeServers).Put(store.NodeServerKey(s.NodeID, s.ID), nil); err != nil {
		return nil, err
	}
	c.nodeServerAdded(s.NodeID, s.Plan)
	if err := putAction(c, a); err != nil {
		return nil, err
	}
	return api.AdminServerCreated{Server: s.Admin(), Action: a.Action}, nil
}

func applyActionCreate(c *applyCtx, p ActionCreate) (any, error) {
	a := p.Action
	s, err := newActionOn(c, &a, c.r.OwnedServer)
	if err != nil {
		return nil, err
	}
	switch {
	case s.Status == api.ServerTerminated:
		return nil, fmt.Errorf("%w: server %s is terminated", ErrConflict, s.ID)
	case s.Status == api.ServerError && a.Command != api.ActionServerTerminate:
		return nil, fmt.Errorf("%w: server %s failed to provision; it can only be terminated", ErrConflict, s.ID)
	}
	if s.Suspension != nil && a.Command != api.ActionServerStop && a.Command != api.ActionServerTerminate &&
		a.Command != api.ActionSnapshotCreate && a.Command != api.ActionSnapshotDelete {
		return nil, &SuspendedError{ServerID: s.ID, Reason: s.Suspension.Reason}
	}
	if a.Command == api.ActionServerTerminate && s.Status == api.ServerError && a.NodeID == s.NodeID && a.Target == s.VMName {
		if cur, ok, err := joinCleanup(c, s.ActionID, a.Command); ok || err != nil {
			pub := s.Server
			return api.ActionAccepted{Action: cur.Action, Server: &pub}, err
		}
	}
	if a.Mutating {
		if err := c.busyWith(s.ID, s.ActionID, ""); err != nil {
			return nil, err
		}
	}
	if a.NodeID != s.NodeID || a.Target != s.VMName {
		return nil, fmt.Errorf("%w: action %s does not match server %s's node", ErrInvalid, a.ID, s.ID)
	}
	switch a.Command {
	case api.ActionSnapshotCreate:
		if a.Snapshot == nil || a.Snapshot.ID == "" {
			return nil, fmt.Errorf("%w: snapshot.create needs the snapshot", ErrInvalid)
		}
		for _, sn := range s.Snapshots {
			if sn.Name == a.Snapshot.Name {
				return nil, fmt.Errorf("%w: server %s already has a snapshot named %q", ErrConflict, s.ID, sn.Name)
			}
		}
	case api.ActionSnapshotDelete, api.ActionSnapshotRevert:
		if !slices.ContainsFunc(s.Snapshots, func(sn api.ServerSnapshot) bool { return sn.ID == a.SnapshotID }) {
			return nil, fmt.Errorf("snapshot %s: %w", a.SnapshotID, ErrNotFound)
		}
	}
	a.Status, a.CreatedAt, a.ResourceType, a.Progress = api.ActionPending, c.at, "server", 0
	a.StartedAt, a.FinishedAt, a.Error = nil, nil, nil
	if a.Mutating {
		s.ActionID = a.ID
		s.UpdatedAt = c.at
		if err := putServer(c.tx, s); err != nil {
			return nil, err
		}
	}
	if err := putAction(c, a); err != nil {
		return nil, err
	}
	out := api.ActionAccepted{Action: a.Action}
	pub := s.Server
	out.Server = &pub
	if a.Snapshot != nil {
		sn := *a.Snapshot
		sn.CreatedAt = c.at // the request's time, as the list shows it (levelSnapshotRequestTime)
		if sn.State == "" {
			sn.State = PowerWord(s.PowerState)
		}
		out.Snapshot = &sn
	}
	return out, nil
}

func applyActionProgress(c *applyCtx, p ActionProgress) (any, error) {
	a, err := c.r.Action(p.ID)
	if err != nil {
		return nil, err
	}
	if a.Finished() {
		return a.Action, nil
	}
	changed := false
	if a.Status == api.ActionPending {
		a.Status = api.ActionRunning
		at := p.At
		if at.IsZero() {
			at = c.at
		}
		a.StartedAt = &at
		changed = true
	}
	if p.Percent > a.Progress && p.Percent < 100 {
		a.Progress = p.Percent
		changed = true
	}
	if p.Step != "" && p.Step != a.Step {
		a.Step = p.Step
		changed = true
	}
	if !changed {
		return a.Action, nil // a repeat: nothing to write
	}
	return a.Action, putAction(c, a)
}

func applyActionsFinished(c *applyCtx, p ActionsFinished) (any, error) {
	out := make([]api.Action, 0, len(p.Results))
	for _, r := range p.Results {
		a, err := finishAction(c, r)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

func applyActionFinish(c *applyCtx, p ActionFinish) (any, error) {
	return finishAction(c, p)
}

// PowerWord maps a libvirt domain state to the API's power word: running or
// stopped.
func PowerWord(state string) string {
	switch state {
	case "running", "paused", "blocked":
		return api.ServerRunning
	}
	return api.ServerStopped
}

func finishAction(c *applyCtx, p ActionFinish) (api.Action, error) {
	a, err := c.r.Action(p.ID)
	if err != nil {
		return api.Action{}, err
	}
	if a.Finished() {
		return a.Action, nil // a late or repeated result: the first one stands
	}
	at := c.at
	a.FinishedAt = &at
	if a.StartedAt == nil {
		a.StartedAt = &at
	}
	if p.Success {
		a.Status, a.Progress = api.ActionSuccess, 100
	} else {
		code := p.ErrorCode
		if code == "" {
			code = "failed"
		}
		a.Status, a.Error = api.ActionFailed, &api.ActionError{Code: code, Message: p.ErrorMessage}
	}
	if a.ResourceType == ResourceHosting {
		res, _ := action.DecodeResult(p.Result)
		if err := finishHosting(c, &a, p, &res); err != nil {
			return api.Action{}, err
		}
		return a.Action, putAction(c, a)
	}
	s, err := c.r.OwnedServer(a.AccountID, a.ResourceID)
	if err != nil {
		return api.Action{}, err
	}
	if s.ActionID == a.ID {
		s.ActionID = ""
	}
	s.UpdatedAt = c.at
	if err := applyResult(c, &s, &a, p.Success, p.Result); err != nil {
		return api.Action{}, err
	}
	if !p.Success && p.CleanupDeadlineSeconds > 0 && a.Command == api.ActionServerProvision && s.InvoiceID != "" && s.ActionID == "" {
		if err := openCleanup(c, &s, a.ID, time.Duration(p.CleanupDeadlineSeconds)*time.Second); err != nil {
			return api.Action{}, err
		}
	}
	if a.Command == api.ActionServerTerminate && s.Status == api.ServerError {
		if _, err := retryCleanup(c, &a, p, &s.ActionID); err != nil {
			return api.Action{}, err
		}
	}
	if err := putServer(c.tx, s); err != nil {
		return api.Action{}, err
	}
	return a.Action, putAction(c, a)
}

// openCleanup opens the server.terminate of s, a bought server whose
// provisioning (the action failedID) failed, in the command that records
// the failure: the node may still hold part of it (an undo step that
// failed, or a provisioning the coordinator gave up on at its deadline
// while the node ran it), and the agent's terminate removes whatever is
// there. Its result releases the server's addresses (into quarantine) and
// its node room through the terminate path of applyResult; the node
// answering that it holds no such VM counts as done (cleanupGone). The
// action's id is derived from the entry, probed past ids taken (several
// failures in one entry).
func openCleanup(c *applyCtx, s *store.Server, failedID string, deadline time.Duration) error {
	id, err := putCleanup(c, store.Action{
		Action:    api.Action{Command: api.ActionServerTerminate, ResourceType: "server", ResourceID: s.ID},
		AccountID: s.AccountID, NodeID: s.NodeID, Target: s.VMName,
	}, failedID, deadline)
	s.ActionID = id
	return err
}

// openHostingCleanup is openCleanup for a bought hosting account whose
// hosting.create failed: its hosting.delete removes whatever the create
// left on the node (the agent's delete of an account it holds nothing of
// is done at once, touching nothing), and its result frees the account's
// username, domain and node slot through the delete path of finishHosting.
func openHostingCleanup(c *applyCtx, h *store.HostingAccount, failedID string, deadline time.Duration) error {
	id, err := putCleanup(c, store.Action{
		Action:    api.Action{Command: api.ActionHostingDelete, ResourceType: ResourceHosting, ResourceID: h.ID},
		AccountID: h.AccountID, NodeID: h.NodeID, Target: h.Username,
	}, failedID, deadline)
	h.ActionID = id
	return err
}

// putCleanup writes a, a failed provisioning's cleanup action, pending, its
// id derived from the entry and probed past ids taken (several failures in
// one entry), and returns the id.
func putCleanup(c *applyCtx, a store.Action, failedID string, deadline time.Duration) (string, error) {
	return putCleanupWith(c, a, failedID, deadline, nil)
}

// putCleanupWith is putCleanup with more meta (a retry's).
func putCleanupWith(c *applyCtx, a store.Action, failedID string, deadline time.Duration, meta map[string]string) (string, error) {
	var id string
	for seq := uint16(0x4000); ; seq++ {
		id = c.derivedID("act", seq)
		if c.tx.Bucket(store.BucketActions).Get([]byte(id)) == nil {
			break
		}
	}
	a.ID, a.Status, a.CreatedAt = id, api.ActionPending, c.createdAt(id)
	if len(a.Params) == 0 {
		a.Params = json.RawMessage(`{}`) // a terminate or delete takes none; a retried uncert keeps its domain
	}
	a.Mutating, a.Deadline, a.Meta = true, c.at.Add(deadline), map[string]string{metaCleanupOf: failedID}
	for k, v := range meta {
		a.Meta[k] = v
	}
	return id, putAction(c, a)
}

// levelSnapshotRequestTime is the semantics level (level.go) from which a
// snapshot's created_at in the server's list is its snapshot.create
// action's created_at (the request's time, which the 202 showed), not the
// time the node's result was recorded: the 202 cannot know when the node
// will take it, and the two disagreed. The node takes it while the action
// runs, by its finished_at at the latest.
const levelSnapshotRequestTime = 2

// levelPowerMethod is the semantics level (level.go) from which a power
// action's success records how the node did it (api.Action.Method) and
// its server.power.changed event says so ("method").
const levelPowerMethod = 2

// powerMethod is how the node reports it did power action command
// (result: its api.NodeOpResult): a reboot's reboot_method, a start's or
// stop's power_method; "" when the result says none, or a value not in
// api.ActionMethods (the customer is shown only those).
func powerMethod(command string, result []byte) string {
	res, err := action.DecodeResult(result)
	if err != nil {
		return ""
	}
	m := res.PowerMethod
	if command == api.ActionServerReboot {
		m = res.RebootMethod
	}
	if !slices.Contains(api.ActionMethods[command], m) {
		return ""
	}
	return m
}

// cleanupGone: a is a failed provisioning's terminate or delete
// (openCleanup, openHostingCleanup), or a retried hosting.uncert
// (openUncert), that the node answered not_found: it holds no VM or
// account of that name, so nothing is left to remove and the cleanup is
// done.
func cleanupGone(a *store.Action) bool {
	return (a.Command == api.ActionServerTerminate || a.Command == api.ActionHostingDelete || a.Command == api.ActionHostingUncert) &&
		a.Meta[metaCleanupOf] != "" && a.Error != nil && a.Error.Code == api.NodeErrNotFound
}

// applyResult changes the server as the finished action says and queues the
// event, in the same transaction as the result. The agent's result is
// informational only and decoded only where it is read (a snapshot's state):
// most actions end without reading it.
func applyResult(c *applyCtx, s *store.Server, a *store.Action, ok bool, result []byte) error {
	power := func(state, action string) error {
		s.PowerState = state
		if s.Status == api.ServerRunning || s.Status == api.ServerStopped {
			s.Status = state
		}
		data := map[string]any{"serverId": s.ID, "action": action}
		if c.level() >= levelPowerMethod {
			if a.Method = powerMethod(a.Command, result); a.Method != "" {
				data["method"] = a.Method
			}
		}
		return c.emit(api.EventServerPowerChanged, s.AccountID, data)
	}
	if !ok && cleanupGone(a) {
		a.Status, a.Progress, a.Error, ok = api.ActionSuccess, 100, nil, true
	}
	if !ok {
		if a.Command == api.ActionServerProvision {
			s.Status = api.ServerError
			return refundOrder(c, s, a)
		}
		return nil
	}
	switch a.Command {
	case api.ActionServerProvision:
		s.Status, s.PowerState = api.ServerRunning, api.ServerRunning
		// 444host's vps.created also carries hostname and planSlug; the
		// sunucu brand leaves them out (pkg/brand).
		c.emitJSON(api.EventServerCreated, s.AccountID, serverCreatedData(s))
		return nil
	case api.ActionServerStart:
		return power(api.ServerRunning, "start")
	case api.ActionServerStop:
		return power(api.ServerStopped, "stop")
	case api.ActionServerReboot:
		return power(api.ServerRunning, "reboot")
	case api.ActionServerReinstall:
		s.Status, s.PowerState, s.Snapshots = api.ServerRunning, api.ServerRunning, nil
		if t := a.Meta["os_template"]; t != "" {
			s.OSTemplate = t
		}
		if o := a.Meta["os"]; o != "" {
			s.OS = o
		}
		return c.emit(api.EventServerReinstalled, s.AccountID, map[string]any{"serverId": s.ID, "os": s.OS, "osTemplate": s.OSTemplate})
	case api.ActionServerTerminate:
		at := c.at
		s.Status, s.PowerState, s.TerminatedAt, s.Snapshots = api.ServerTerminated, api.ServerStopped, &at, nil
		if err := c.tx.Bucket(store.BucketNodeServers).Delete(store.NodeServerKey(s.NodeID, s.ID)); err != nil {
			return err
		}
		c.nodeServerRemoved(s.NodeID, s.Plan)
		// Its reverse-DNS names go with it: the provider's DNS follows the
		// events, PowerDNS the state (the reconciler removes them).
		if len(s.PTRs) > 0 {
			var ips []netip.Addr
			for ip := range s.PTRs {
				if a, err := netip.ParseAddr(ip); err == nil {
					ips = append(ips, a)
				}
			}
			if err := rdnsAddrsChanged(c, ips...); err != nil {
				return err
			}
		}
		ips := slices.Sorted(maps.Keys(s.PTRs))
		for _, ip := range ips {
			if err := c.emit(api.EventServerPTRChanged, s.AccountID, map[string]any{"serverId": s.ID, "ip": ip, "ptr": nil}); err != nil {
				return err
			}
		}
		s.PTRs, s.PTRAt = nil, nil
		if err := releaseAddrs(c, *s); err != nil {
			return err
		}
		if err := closeBilling(c, billedServer(c, s)); err != nil {
			return err
		}
		return c.emit(api.EventServerTerminated, s.AccountID, map[string]any{"serverId": s.ID})
	case api.ActionSnapshotCreate:
		if a.Snapshot != nil {
			sn := *a.Snapshot
			sn.CreatedAt = c.at
			if c.level() >= levelSnapshotRequestTime {
				sn.CreatedAt = a.CreatedAt
			}
			if res, _ := action.DecodeResult(result); res.Snapshot != nil {
				sn.State = PowerWord(res.Snapshot.State)
			} else if sn.State == "" {
				sn.State = s.PowerState
			}
			s.Snapshots = append(s.Snapshots, sn)
		}
	case api.ActionSnapshotDelete:
		s.Snapshots = slices.DeleteFunc(s.Snapshots, func(sn api.ServerSnapshot) bool { return sn.ID == a.SnapshotID })
	case api.ActionSnapshotRevert:
		for _, sn := range s.Snapshots {
			if sn.ID == a.SnapshotID && sn.State != "" {
				s.PowerState = sn.State
				if s.Status == api.ServerRunning || s.Status == api.ServerStopped {
					s.Status = sn.State
				}
			}
		}
	}
	return nil
}

// liveServer loads an account's server that is not terminated.
func (c *applyCtx) liveServer(accountID, id string) (store.Server, error) {
	s, err := c.r.OwnedServer(accountID, id)
	return s, liveErr(err, s.Status == api.ServerTerminated, "server", s.ID, "terminated")
}

// liveErr is the error of loading a resource that must not have ended
// (liveServer, liveHosting): the load's own, else when it has ended a
// conflict naming it ("server srv_1 is terminated").
func liveErr(err error, ended bool, noun, id, state string) error {
	if err == nil && ended {
		return fmt.Errorf("%w: %s %s is %s", ErrConflict, noun, id, state)
	}
	return err
}

func applyServerLabel(c *applyCtx, p ServerLabel) (any, error) {
	s, err := c.liveServer(p.AccountID, p.ServerID)
	if err != nil {
		return nil, err
	}
	s.Label, s.UpdatedAt = p.Label, c.at
	return s.Server, putServer(c.tx, s)
}

// levelSuspendedPTR is the semantics level from which a suspended server's
// PTR change is refused.
const levelSuspendedPTR = 2

// applyServerPTR records a PTR name and emits server.ptr.changed when it
// changes; a repeat of the current value (or removing an absent one) writes
// nothing and emits nothing.
func applyServerPTR(c *applyCtx, p ServerPTR) (any, error) {
	if len(p.Hostname) > maxPTRHostname || strings.ContainsAny(p.Hostname, " \t\r\n/") {
		return nil, fmt.Errorf("%w: hostname is not a DNS name", ErrInvalid)
	}
	s, err := c.liveServer(p.AccountID, p.ServerID)
	if err != nil {
		return nil, err
	}
	// A suspended server's reverse DNS does not change (as it is not
	// powered on); from semantics level 2 (level.go), so a cluster with a
	// coordinator of a release without it applies the change as that does.
	if s.Suspension != nil && c.level() >= levelSuspendedPTR {
		return nil, &SuspendedError{ServerID: s.ID, Reason: s.Suspension.Reason}
	}
	ip, err := netip.ParseAddr(p.IP)
	if err != nil || !slices.Contains(ServerAddrs(s), ip) {
		return nil, fmt.Errorf("ip %q on server %s: %w", p.IP, s.ID, ErrNotFound)
	}
	key := ip.String()
	if s.PTRs[key] == p.Hostname {
		zones, err := c.r.ReverseZones()
		if err != nil {
			return nil, err
		}
		return WithReverseDNS(ServerIPView(s, ip), s, ip, zones), nil // unchanged: no write, no event
	}
	var ptr any // null when removed
	if p.Hostname == "" {
		delete(s.PTRs, key)
		if len(s.PTRs) == 0 {
			s.PTRs = nil
		}
	} else {
		if s.PTRs == nil {
			s.PTRs = map[string]string{}
		}
		s.PTRs[key] = p.Hostname
		ptr = p.Hostname
	}
	s.UpdatedAt = c.at
	if s.PTRAt == nil {
		s.PTRAt = map[string]uint64{}
	}
	s.PTRAt[key] = c.rdnsIndex()
	if err := rdnsAddrsChanged(c, ip); err != nil {
		return nil, err
	}
	if err := c.emit(api.EventServerPTRChanged, s.AccountID, map[string]any{"serverId": s.ID, "ip": key, "ptr": ptr}); err != nil {
		return nil, err
	}
	zones, err := c.r.ReverseZones()
	if err != nil {
		return nil, err
	}
	return WithReverseDNS(ServerIPView(s, ip), s, ip, zones), putServer(c.tx, s)
}

func applyServerObserved(c *applyCtx, p ServerObserved) (any, error) {
	n := 0
	for _, ch := range p.Changes {
		s, err := c.r.Server(ch.ServerID)
		if err != nil || s.ActionID != "" || (s.Status != api.ServerRunning && s.Status != api.ServerStopped) {
			continue // an action in progress owns the state
		}
		st := PowerWord(ch.PowerState)
		if s.PowerState == st {
			continue
		}
		s.PowerState, s.Status, s.UpdatedAt = st, st, c.at
		if err := putServer(c.tx, s); err != nil {
			return nil, err
		}
		n++
	}
	return n, nil
}

// NoCapacityError refuses a server its node has no room for at apply time,
// or a server or hosting account whose node is no longer in a location it
// may be in (Moved) (the API's 409 no_capacity); it is an ErrConflict.
type NoCapacityError struct {
	NodeID, Why string
	// What is what the node cannot take ("" for the server).
	What string
	// Moved says the node was put in another location since placement.
	Moved bool
}

func (e *NoCapacityError) Error() string {
	what := cmp.Or(e.What, "the server")
	if e.Moved {
		return fmt.Sprintf("node %s can no longer take %s: %s", e.NodeID, what, e.Why)
	}
	return fmt.Sprintf("node %s has no room left for %s: %s", e.NodeID, what, e.Why)
}

// Is makes a NoCapacityError an ErrConflict.
func (e *NoCapacityError) Is(target error) bool { return target == ErrConflict }

// levelLocationAtApply is the semantics level (level.go) from which a
// server or hosting create checks its node's location again at apply
// (checkNodeLocation) and records the node's location then, not the one
// placement saw.
const levelLocationAtApply = 2

// checkNodeLocation refuses what (a server, a hosting account) on node n
// when locations are set and n is in none of them: the node was put in
// another location between placement and apply. Refused as a full node is
// (NoCapacityError): the order charges nothing and its customer is told no
// node can take it now.
func checkNodeLocation(n api.AgentNode, locations []string, what string) error {
	if len(locations) == 0 || slices.Contains(locations, n.Location) {
		return nil
	}
	in := "in no location"
	if n.Location != "" {
		in = fmt.Sprintf("in location %q", n.Location)
	}
	return &NoCapacityError{NodeID: n.ID, What: what, Moved: true,
		Why: fmt.Sprintf("it is %s now, not in %s", in, strings.Join(locations, ", "))}
}

// nodeTakingNew reads node id for a new what ("servers", "hosting
// accounts"). A removed or cordoned node takes none: the refusal is a
// conflict, "node ID takes no new WHAT", and with why it says which of the
// two the node is.
func (c *applyCtx) nodeTakingNew(id, what string, why bool) (store.AgentNode, error) {
	n, err := c.r.AgentNode(id)
	if err != nil || n.State != api.AgentNodeRemoved && !n.Cordoned {
		return n, err
	}
	if why {
		what += map[bool]string{true: " (cordoned)", false: " (removed)"}[n.Cordoned]
	}
	return n, fmt.Errorf("%w: node %s takes no new %s", ErrConflict, n.ID, what)
}

// checkNodeRoom checks that the node's servers (those not terminated) and
// a new one of plan fit its capacity, vCPUs overcommitted by overcommit,
// as placement.Choose decides.
func checkNodeRoom(c *applyCtx, n api.AgentNode, plan api.ServerPlan, overcommit float64) error {
	used, err := c.nodeUsed(n.ID)
	if err != nil {
		return err
	}
	if why := placement.Room(n.Capacity, used, placement.Need(plan), overcommit); why != "" {
		return &NoCapacityError{NodeID: n.ID, Why: why}
	}
	return nil
}
