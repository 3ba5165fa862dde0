package store

import (
	"encoding/json"
	"net/netip"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	bolt "go.etcd.io/bbolt"
)

// Server is a stored server: the customer view plus where it runs. Snapshots
// are kept with it (a handful per server).
type Server struct {
	api.Server
	AccountID string               `json:"account_id"`
	NodeID    string               `json:"node_id"`
	VMName    string               `json:"vm_name"`
	Snapshots []api.ServerSnapshot `json:"snapshots,omitempty"`
	// PowerState is the last known libvirt-level state: running or stopped.
	PowerState string `json:"power_state,omitempty"`
	// PTRs are the reverse-DNS names set on the server's addresses: canonical
	// IP → hostname (no trailing dot).
	PTRs map[string]string `json:"ptrs,omitempty"`
	// PTRAt is the Raft index of the last change of each address's PTR
	// (set or removed): the name is in PowerDNS once its zone's
	// SyncedIndex reaches it.
	PTRAt map[string]uint64 `json:"ptr_at,omitempty"`
	// Addrs are the addresses the server got from IP pools, in the order they
	// were allocated (the first of each family is its primary). They stay
	// recorded after termination; the units went back to their pools.
	Addrs []ServerAddr `json:"addrs,omitempty"`
	// MonthlyUsdCents is the price a bought server renews at (the account's
	// effective price when it was ordered); 0 for servers an operator placed.
	MonthlyUsdCents int64 `json:"monthly_usd_cents,omitempty"`
	// InvoiceID is the paid invoice of the order that bought the server: a
	// failed provisioning refunds it.
	InvoiceID string `json:"invoice_id,omitempty"`
	// Renewal is the renewal invoice issued for the period starting at
	// PaidUntil (one per period: the sweep issues none while it matches).
	Renewal *Renewal `json:"renewal,omitempty"`
	// Suspension is set while the server is suspended: it is stopped and
	// refuses power-on (409 suspended) until it is lifted.
	Suspension *Suspension `json:"suspension,omitempty"`
}

// Renewal is the invoice of one renewal period of a server.
type Renewal struct {
	InvoiceID   string    `json:"invoice_id"`
	PeriodStart time.Time `json:"period_start"`
	PeriodEnd   time.Time `json:"period_end"`
}

// SuspendNonPayment is the Suspension.By of the renewal sweep's suspensions,
// the only ones a payment lifts.
const SuspendNonPayment = "non_payment"

// SuspendOperator is the Suspension.By of an operator's suspension, which
// only an operator lifts.
const SuspendOperator = "operator"

// Suspension says why and since when a server is suspended.
type Suspension struct {
	By        string    `json:"by"` // non_payment (the renewal sweep) or operator
	Reason    string    `json:"reason"`
	InvoiceID string    `json:"invoice_id,omitempty"`
	At        time.Time `json:"at"`
}

// ServerAddr is an address a server got from an IP pool.
type ServerAddr struct {
	Pool string `json:"pool"`
	// Unit is what the pool handed out: an IPv4 /32 or an IPv6 prefix.
	Unit netip.Prefix `json:"unit"`
	// Addr is the guest's address with the length of its network: the pool's
	// for IPv4 (198.51.100.10/24), the delegated prefix's for IPv6
	// (2001:db8:0:5::1/64).
	Addr    netip.Prefix `json:"addr"`
	Gateway string       `json:"gateway,omitempty"`
}

// Public is the customer view. A terminated server shows no addresses:
// they were released (into quarantine, then to other servers), so showing
// them would name someone else's address. The record keeps them (the
// operator's view shows them).
func (s Server) Public() api.Server {
	v := s.Server
	if v.Status == api.ServerTerminated {
		v.IPv4, v.IPv6 = "", ""
	}
	return v
}

// Admin is the operator view.
func (s Server) Admin() api.AdminServer {
	return api.AdminServer{Server: s.Server, AccountID: s.AccountID, NodeID: s.NodeID, VMName: s.VMName}
}

// Action is a stored action: the public view plus what the dispatcher needs.
// Params never hold a secret (root passwords travel over the session only).
type Action struct {
	api.Action
	AccountID string          `json:"account_id"`
	NodeID    string          `json:"node_id"`
	Target    string          `json:"target"` // the VM name on the node
	Params    json.RawMessage `json:"params,omitempty"`
	// NeedsSecret: the agent needs secret params only the accepting leader had.
	NeedsSecret bool      `json:"needs_secret,omitempty"`
	Mutating    bool      `json:"mutating"`
	Deadline    time.Time `json:"deadline"`
	Step        string    `json:"step,omitempty"`
	// SnapshotID is the snapshot a snapshot.* action is about.
	SnapshotID string `json:"snapshot_id,omitempty"`
	// Snapshot is the restore point a snapshot.create records on success.
	Snapshot *api.ServerSnapshot `json:"snapshot,omitempty"`
	// Meta holds what the result applies to the server (os, os_template).
	Meta map[string]string `json:"meta,omitempty"`
}

// NodeServerKey is the key of BucketNodeServers.
func NodeServerKey(nodeID, serverID string) []byte { return []byte(nodeID + "/" + serverID) }

var servers = ownedRecords[Server]{what: "server", bucket: BucketServers, index: BucketServerIDs, owners: true}

// Server loads a server by id alone (leader jobs, admin), through its id's
// index: BucketOwnerIDs from semantics level 10 on, BucketServerIDs below
// (OwnerOf).
func (r ReadTx) Server(id string) (Server, error) { return servers.byID(r, id) }

// OwnedServer loads an account's server; another account's is not found.
func (r ReadTx) OwnedServer(accountID, id string) (Server, error) {
	s, err := getRead(r.tx, BucketServers, OwnedKey(accountID, id), readServer)
	return s, named(servers.what, id, err)
}

// Servers pages an account's servers (terminated ones included), newest
// first, with the total count.
func (r ReadTx) Servers(accountID string, offset, limit int) ([]Server, int, error) {
	return servers.page(r, accountID, offset, limit)
}

// ServersAt is Servers from at, with the next page's Below (ListOwnedAt).
func (r ReadTx) ServersAt(accountID string, at PageAt, limit int) ([]Server, int, string, error) {
	return servers.pageAt(r, accountID, at, limit)
}

// LiveServers pages the account's servers that are not terminated, newest
// first, with their total count.
func (r ReadTx) LiveServers(accountID string, offset, limit int) ([]Server, int, error) {
	return listOwnedIf[Server](r.tx, BucketServers, accountID, offset, limit, notTerminated)
}

// LiveServersAt is LiveServers from at, with the next page's Below (ListOwnedAt).
func (r ReadTx) LiveServersAt(accountID string, at PageAt, limit int) ([]Server, int, string, error) {
	return listOwnedAt[Server](r.tx, BucketServers, accountID, at, limit, notTerminated)
}

// notTerminated keeps the stored servers that are not terminated.
func notTerminated(v []byte) (bool, error) {
	var st struct {
		Status string `json:"status"`
	}
	err := json.Unmarshal(v, &st)
	return st.Status != api.ServerTerminated, err
}

// AllServers lists every server of every account (terminated ones included).
func (r ReadTx) AllServers() ([]Server, error) { return servers.all(r) }

// NodeServers lists the servers (not terminated) placed on a node.
func (r ReadTx) NodeServers(nodeID string) ([]Server, error) {
	var out []Server
	prefix := []byte(nodeID + "/")
	cur := r.tx.Bucket(BucketNodeServers).Cursor()
	for k, _ := cur.Seek(prefix); k != nil && len(k) > len(prefix) && string(k[:len(prefix)]) == string(prefix); k, _ = cur.Next() {
		s, err := r.Server(string(k[len(prefix):]))
		if err != nil {
			continue
		}
		out = append(out, s)
	}
	return out, nil
}

// Action loads an action.
func (r ReadTx) Action(id string) (Action, error) { return r.Actions().Action(id) }

// Actions loads actions by id (Action), their bucket looked up once: the
// dispatcher's scan reads many in one transaction.
func (r ReadTx) Actions() Actions { return Actions{r.tx.Bucket(BucketActions)} }

// Actions reads the actions of one read transaction (ReadTx.Actions).
type Actions struct{ b *bolt.Bucket }

// Action loads an action, as ReadTx.Action does.
func (a Actions) Action(id string) (Action, error) {
	v, err := getIn(a.b, BucketActions, []byte(id), readAction)
	return v, named("action", id, err)
}

// OpenActions lists the pending and running actions (the dispatcher's work).
func (r ReadTx) OpenActions() ([]Action, error) {
	out, _, _, err := r.OpenActionsExcept(nil)
	return out, err
}

// OpenActionsExcept is OpenActions without reading the actions skip
// reports (nil: none): their ids are listed in skipped instead. The
// dispatcher skips the actions it is already exchanging with their agents,
// so a scan decodes only the new ones, however many run. An open action
// whose record cannot be read (it does not decode, or the open index names
// an action that is not there: no command writes either) is in neither
// list: unreadable holds it, by id, with the read's error.
func (r ReadTx) OpenActionsExcept(skip func(id string) bool) (open []Action, skipped []string, unreadable map[string]error, err error) {
	actions := r.Actions()
	err = r.tx.Bucket(BucketOpenActions).ForEach(func(k, _ []byte) error {
		if skip != nil && skip(string(k)) {
			skipped = append(skipped, string(k))
			return nil
		}
		a, err := actions.Action(string(k))
		if err != nil {
			if unreadable == nil {
				unreadable = map[string]error{}
			}
			unreadable[string(k)] = err
			return nil
		}
		open = append(open, a)
		return nil
	})
	return open, skipped, unreadable, err
}

// OpenActionCount counts the pending and running actions.
func (r ReadTx) OpenActionCount() int { return r.tx.Bucket(BucketOpenActions).Stats().KeyN }
