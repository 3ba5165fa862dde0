package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// ResourceHosting is the resource type of hosting actions.
const ResourceHosting = "hosting"

// HostingCreate records a placed hosting account and its hosting.create
// action (whose passwords travel in the dispatcher's secrets, never here).
type HostingCreate struct {
	Hosting store.HostingAccount `json:"hosting"`
	Action  store.Action         `json:"action"`
	// Locations, when set, are the node locations the account may be in
	// (an order's location or its product's, an operator's --location),
	// checked again at apply from semantics level 2 as a server's are
	// (checkNodeLocation). Entries written before have none.
	Locations []string `json:"locations,omitempty"`
}

// HostingAction commits suspend, unsuspend, php or delete on an account; the
// one-mutating-action-per-account rule holds. PHPVersion is the version a
// hosting.php action sets on success.
type HostingAction struct {
	Action     store.Action `json:"action"`
	PHPVersion string       `json:"php_version,omitempty"`
}

func putHosting(tx *bolt.Tx, h store.HostingAccount) error {
	return store.PutJSON(tx, store.BucketHosting, store.OwnedKey(h.AccountID, h.ID), h)
}

func applyHostingCreate(c *applyCtx, p HostingCreate) (any, error) {
	h, a := p.Hosting, p.Action
	if h.ID == "" || h.AccountID == "" || h.NodeID == "" || h.Username == "" || h.Domain == "" {
		return nil, fmt.Errorf("%w: a hosting account needs an id, an account, a node, a username and a domain", ErrInvalid)
	}
	if err := checkNewAction(&a); err != nil {
		return nil, err
	}
	if a.Command != api.ActionHostingCreate || a.Target != h.Username || a.NodeID != h.NodeID || a.ResourceID != h.ID {
		return nil, fmt.Errorf("%w: the action does not create hosting account %s", ErrInvalid, h.ID)
	}
	if _, err := getAccount(c.tx, h.AccountID); err != nil {
		return nil, err
	}
	n, err := c.nodeTakingNew(h.NodeID, "hosting accounts", false)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(n.Roles, api.RoleHosting) {
		return nil, fmt.Errorf("%w: node %s does not have the hosting role", ErrConflict, n.ID)
	}
	if c.level() >= levelLocationAtApply {
		if err := checkNodeLocation(n.AgentNode, p.Locations, "the hosting account"); err != nil {
			return nil, err
		}
		h.Location = n.Location
	}
	if c.tx.Bucket(store.BucketHostingIDs).Get([]byte(h.ID)) != nil {
		return nil, fmt.Errorf("%w: hosting account %s exists", ErrConflict, h.ID)
	}
	if id := c.r.HostingUsernameTaken(h.Username); id != "" {
		return nil, &FieldConflictError{Field: "username", Msg: fmt.Sprintf("username %s is taken", h.Username)}
	}
	if id := c.r.HostingDomainTaken(h.Domain); id != "" {
		return nil, &FieldConflictError{Field: "domain", Msg: fmt.Sprintf("domain %s is already served by a hosting account", h.Domain)}
	}
	h.Status, h.CreatedAt, h.UpdatedAt, h.ActionID = api.HostingProvisioning, c.at, c.at, a.ID
	a.Status, a.CreatedAt, a.AccountID, a.ResourceType = api.ActionPending, c.at, h.AccountID, ResourceHosting
	a.Mutating = true
	for _, kv := range []struct{ b, k, v []byte }{
		{store.BucketHostingIDs, []byte(h.ID), []byte(h.AccountID)},
		{store.BucketHostingUsernames, []byte(h.Username), []byte(h.ID)},
		{store.BucketHostingDomains, []byte(h.Domain), []byte(h.ID)},
		{store.BucketNodeHosting, store.NodeHostingKey(h.NodeID, h.ID), nil},
	} {
		if err := c.tx.Bucket(kv.b).Put(kv.k, kv.v); err != nil {
			return nil, err
		}
	}
	if err := putHosting(c.tx, h); err != nil {
		return nil, err
	}
	if err := putAction(c, a); err != nil {
		return nil, err
	}
	return api.AdminHostingCreated{Hosting: h.HostingAccount, NodeID: h.NodeID, Action: a.Action}, nil
}

// FieldConflictError is a 409 about one request field (a username or domain
// taken).
type FieldConflictError struct{ Field, Msg string }

func (e *FieldConflictError) Error() string { return e.Msg }

// Is makes a FieldConflictError an ErrConflict.
func (e *FieldConflictError) Is(target error) bool { return target == ErrConflict }

// hostingActionOn is newActionOn for an action on a hosting account: the
// account, which must be on the action's node under its target (the
// username).
func hostingActionOn(c *applyCtx, a *store.Action) (store.HostingAccount, error) {
	h, err := newActionOn(c, a, c.r.OwnedHostingAccount)
	if err != nil {
		return h, err
	}
	if a.NodeID != h.NodeID || a.Target != h.Username {
		return h, fmt.Errorf("%w: action %s does not match hosting account %s", ErrInvalid, a.ID, h.ID)
	}
	return h, nil
}

func applyHostingAction(c *applyCtx, p HostingAction) (any, error) {
	a := p.Action
	h, err := hostingActionOn(c, &a)
	if err != nil {
		return nil, err
	}
	if a.Command == api.ActionHostingDelete && h.Status == api.HostingError {
		if cur, ok, err := joinCleanup(c, h.ActionID, a.Command); ok || err != nil {
			pub := h.HostingAccount
			return api.HostingActionAccepted{Action: cur.Action, Hosting: &pub}, err
		}
	}
	if err := c.busyWith(h.ID, h.ActionID, "hosting account"); err != nil {
		return nil, err
	}
	switch {
	case h.Status == api.HostingDeleted:
		return nil, fmt.Errorf("%w: hosting account %s is deleted", ErrConflict, h.ID)
	case h.Status == api.HostingError && a.Command != api.ActionHostingDelete:
		return nil, fmt.Errorf("%w: hosting account %s failed to provision; it can only be deleted", ErrConflict, h.ID)
	case a.Command == api.ActionHostingSuspend && h.Status == api.HostingSuspended:
		return nil, fmt.Errorf("%w: hosting account %s is already suspended", ErrConflict, h.ID)
	case a.Command == api.ActionHostingUnsuspend && h.Suspension != nil:
		return nil, &SuspendedError{ServerID: h.ID, Reason: h.Suspension.Reason, Resource: "hosting account"}
	case a.Command == api.ActionHostingUnsuspend && h.Status != api.HostingSuspended:
		return nil, fmt.Errorf("%w: hosting account %s is not suspended", ErrConflict, h.ID)
	case a.Command == api.ActionHostingSetPHP && p.PHPVersion == "":
		return nil, fmt.Errorf("%w: hosting.php needs the version", ErrInvalid)
	}
	if a.Command == api.ActionHostingCert {
		// The certificate job proposes the install after recording the
		// certificate; the customer may have removed or replaced the domain
		// in between (its hosting.uncert already opened): installing it then
		// would route a name the cluster has freed, for good.
		var cp struct {
			Domain string `json:"domain"`
		}
		_ = json.Unmarshal(a.Params, &cp)
		if d, err := c.r.CustomDomain(h.AccountID, h.ID); err != nil || d.Domain != cp.Domain || d.Status != api.CustomDomainVerified {
			return nil, fmt.Errorf("%w: %s is not the verified custom domain of hosting account %s", ErrConflict, cp.Domain, h.ID)
		}
	}
	switch a.Command {
	case api.ActionHostingSuspend, api.ActionHostingUnsuspend, api.ActionHostingSetPHP, api.ActionHostingDelete,
		api.ActionHostingChallenge, api.ActionHostingCert, api.ActionHostingUncert:
	default:
		return nil, fmt.Errorf("%w: %s is not a hosting action", ErrInvalid, a.Command)
	}
	a.Status, a.CreatedAt, a.ResourceType, a.Progress, a.Mutating = api.ActionPending, c.at, ResourceHosting, 0, true
	a.StartedAt, a.FinishedAt, a.Error = nil, nil, nil
	if p.PHPVersion != "" {
		a.Meta = map[string]string{"php_version": p.PHPVersion}
	}
	return startHostingAction(c, h, a)
}

// startHostingAction records a as the hosting account's action under way and
// answers the request that opened it.
func startHostingAction(c *applyCtx, h store.HostingAccount, a store.Action) (any, error) {
	h.ActionID, h.UpdatedAt = a.ID, c.at
	if err := putHosting(c.tx, h); err != nil {
		return nil, err
	}
	if err := putAction(c, a); err != nil {
		return nil, err
	}
	pub := h.HostingAccount
	return api.HostingActionAccepted{Action: a.Action, Hosting: &pub}, nil
}

// levelHostingCleanup is the semantics level (level.go) from which a
// failed hosting.create opens its cleanup delete.
const levelHostingCleanup = 2

// LevelQuotaEnforced is the semantics level (level.go) from which a
// finished hosting action's result, and a node's usage report that carries
// it (applyHostingUsage), record whether the node enforces the account's
// disk allowance (quota.enforced, the node's quota_enforced). Below it the
// field stays unset (nil: no key in the stored record), as the release
// before writes the record.
const LevelQuotaEnforced = 6

// finishHosting applies a finished hosting action to its account and queues
// the event, in the result's transaction.
func finishHosting(c *applyCtx, a *store.Action, p ActionFinish, res *api.NodeOpResult) error {
	ok := p.Success
	if !ok && cleanupGone(a) {
		a.Status, a.Progress, a.Error, ok = api.ActionSuccess, 100, nil, true
	}
	h, err := c.r.OwnedHostingAccount(a.AccountID, a.ResourceID)
	if err != nil {
		return err
	}
	if h.ActionID == a.ID {
		h.ActionID = ""
	}
	h.UpdatedAt = c.at
	if ok && res != nil && res.Hosting != nil {
		h.Quota.DiskUsedBytes = res.Hosting.DiskBytes
		if c.level() >= LevelHostingUsage {
			at := c.at
			h.DiskUsedAt = &at
		}
		if c.level() >= LevelQuotaEnforced && !res.Hosting.Deleted {
			enforced := res.Hosting.QuotaEnforced
			h.Quota.Enforced = &enforced
		}
		if res.Hosting.PHPVersion != "" {
			h.PHPVersion = res.Hosting.PHPVersion
		}
		if !res.Hosting.Deleted {
			if err := noteQuotaAlert(c, &h); err != nil {
				return err
			}
		}
	}
	switch {
	case !ok && a.Command == api.ActionHostingCreate:
		h.Status = api.HostingError
		if err := refundHostingOrder(c, &h, a); err != nil {
			return err
		}
		// A bought account's failed create opens its delete, which frees
		// its username, domain and node slot when done. Gated twice:
		// entries written before carry no deadline, and a cluster not yet
		// at level 2 (a coordinator still runs a release without it)
		// records the failure as that release does.
		if p.CleanupDeadlineSeconds > 0 && h.InvoiceID != "" && h.ActionID == "" && c.level() >= levelHostingCleanup {
			if err := openHostingCleanup(c, &h, a.ID, time.Duration(p.CleanupDeadlineSeconds)*time.Second); err != nil {
				return err
			}
		}
	case !ok && a.Command == api.ActionHostingDelete && h.Status == api.HostingError,
		!ok && a.Command == api.ActionHostingUncert: // a retried uncert (openUncert)
		if _, err := retryCleanup(c, a, p, &h.ActionID); err != nil {
			return err
		}
	case !ok:
	case a.Command == api.ActionHostingUncert:
		if err := installAfterUncert(c, h, a); err != nil {
			return err
		}
	case a.Command == api.ActionHostingCreate:
		h.Status = api.HostingActive
		if err := c.emit(api.EventHostingCreated, h.AccountID, map[string]any{"hostingId": h.ID, "username": h.Username,
			"domain": h.Domain, "status": h.Status}); err != nil {
			return err
		}
	case a.Command == api.ActionHostingSuspend:
		h.Status = api.HostingSuspended
	case a.Command == api.ActionHostingUnsuspend:
		// Whoever asked, the node no longer holds a suspension to resume.
		h.Status, h.Resume = api.HostingActive, false
	case a.Command == api.ActionHostingSetPHP:
		if v := a.Meta["php_version"]; v != "" {
			h.PHPVersion = v
		}
	case a.Command == api.ActionHostingDelete:
		h.Status = api.HostingDeleted
		if err := freeHosting(c.tx, h); err != nil {
			return err
		}
		if err := closeBilling(c, billedHosting(c, &h)); err != nil {
			return err
		}
	}
	return putHosting(c.tx, h)
}

// freeHosting releases a deleted account's username, every domain indexed to
// it and its node slot.
func freeHosting(tx *bolt.Tx, h store.HostingAccount) error {
	if err := tx.Bucket(store.BucketHostingUsernames).Delete([]byte(h.Username)); err != nil {
		return err
	}
	var doms [][]byte
	_ = tx.Bucket(store.BucketHostingDomains).ForEach(func(k, v []byte) error {
		if bytes.Equal(v, []byte(h.ID)) {
			doms = append(doms, bytes.Clone(k))
		}
		return nil
	})
	for _, d := range doms {
		if err := tx.Bucket(store.BucketHostingDomains).Delete(d); err != nil {
			return err
		}
	}
	if err := tx.Bucket(store.BucketCustomDomains).Delete([]byte(h.ID)); err != nil { // its custom domain (customdomains.go)
		return err
	}
	return tx.Bucket(store.BucketNodeHosting).Delete(store.NodeHostingKey(h.NodeID, h.ID))
}

// installAfterUncert: from levelUncertRetry, once the node took the name of
// a's hosting.uncert off h, the certificate of the hosting account that now
// holds the name (its verified custom domain), which that node refused to
// install while the name was routed to h, is made due at once instead of
// at its next install retry.
func installAfterUncert(c *applyCtx, h store.HostingAccount, a *store.Action) error {
	if c.level() < levelUncertRetry {
		return nil
	}
	var p struct {
		Domain string `json:"domain"`
	}
	if json.Unmarshal(a.Params, &p) != nil || p.Domain == "" {
		return nil
	}
	holder := c.r.HostingDomainTaken(p.Domain)
	if holder == "" || holder == h.ID {
		return nil
	}
	d, err := c.certDomain(holder, p.Domain)
	if err != nil {
		return nil // not a verified custom domain (a primary domain, a pending one): nothing to install
	}
	s := d.Cert
	if s.OrderID != "" || s.Chain == "" || !s.InstalledAt.IsZero() || s.InstallError == "" || !s.RetryAt.After(c.at) {
		return nil
	}
	s.RetryAt = c.at
	_, err = c.putCert(d)
	return err
}
