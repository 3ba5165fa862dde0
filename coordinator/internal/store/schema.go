// Package store defines the FSM's bbolt schema (every bucket in one place) and typed
// accessors over a bbolt transaction. Only the FSM writes; HTTP handlers read.
package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// SchemaVersion is bumped when a bucket's layout changes incompatibly;
// CreateBuckets migrates a database written with an older version.
//
//	2: the units allocated to servers moved from ip_units (one record per
//	   unit) to ip_allocs (one record per server and pool).
const SchemaVersion = 2

// Buckets: every bucket of the FSM's database is declared here, and only here.
// Keys of account-owned objects are "<accountID>/<objectID>" so that a lookup
// with the caller's account id finds nothing of another account. The typed
// records and the accessors that read them live in one file per domain
// (accounts.go, billing.go, tickets.go, webhooks.go, servers.go, nodes.go,
// cluster.go, idempotency.go, outbox.go, ippools.go, rdns.go, hosting.go,
// domainreg.go); only the FSM writes.
var (
	// Accounts and API keys (accounts.go).
	BucketMeta      = []byte("meta")       // applied_index, applied_at, schema_version
	BucketAccounts  = []byte("accounts")   // accountID → api.Account
	BucketEmails    = []byte("emails")     // lower(email) → accountID
	BucketKeys      = []byte("keys")       // keyID → Key
	BucketKeyHashes = []byte("key_hashes") // sha256 hex → keyID
	BucketKeyUsage  = []byte("key_usage")  // keyID/<8-byte seq> → api.KeyUsage

	// Billing (billing.go).
	BucketWalletTx   = []byte("wallet_tx")   // accountID/txID → api.WalletTransaction
	BucketInvoices   = []byte("invoices")    // accountID/invoiceID → Invoice
	BucketInvoiceIDs = []byte("invoice_ids") // invoiceID → accountID (invoices made below semantics level 10; then BucketOwnerIDs)

	// Support tickets (tickets.go).
	BucketTickets    = []byte("tickets")     // accountID/ticketID → api.Ticket (with thread)
	BucketTicketIDs  = []byte("ticket_ids")  // ticketID → accountID
	BucketTicketList = []byte("ticket_list") // accountID/ticketID → ticket without thread (list view, served raw)

	// Bookkeeping (schema.go, idempotency.go, outbox.go, cluster.go).
	BucketCounters    = []byte("counters")    // name → uint64
	BucketIdempotency = []byte("idempotency") // keyID/<idempotency key> → IdemRecord
	BucketOutbox      = []byte("outbox")      // <8-byte raft index><2-byte seq> → Event
	BucketCluster     = []byte("cluster")     // coordinator ID → ClusterNode

	// Webhooks (webhooks.go). Subscription and delivery keys start with the
	// owner so a prefix scan lists one account's subscriptions or one
	// subscription's deliveries.
	BucketWebhooks          = []byte("webhooks")           // accountID/webhookID → Webhook
	BucketWebhookIDs        = []byte("webhook_ids")        // webhookID → accountID
	BucketWebhookDeliveries = []byte("webhook_deliveries") // webhookID/deliveryID → Delivery
	BucketWebhookPending    = []byte("webhook_pending")    // webhookID/deliveryID → "" for deliveries awaiting an attempt
	BucketWebhookAttempts   = []byte("webhook_attempts")   // webhookID/<8-byte seq> → api.WebhookAttempt (the delivery log)
	BucketWebhookMeta       = []byte("webhook_meta")       // dispatcher cursor, change versions, per-subscription counters
	// BucketWebhookAttemptIDs indexes the attempts the delivery log holds by
	// their id, so an attempt recorded again (a WebhookAttempts command
	// proposed again after an apply that failed but committed) is not
	// logged twice; written from semantics level 9 on (fsm
	// LevelWebhookAttemptOnce), pruned with the log.
	BucketWebhookAttemptIDs = []byte("webhook_attempt_ids") // webhookID/attemptID → <8-byte seq> of its log entry

	// Agent nodes (nodes.go): the hypervisor/hosting nodes that enrol with a
	// join token and hold a session to the leader. (Coordinators are in
	// BucketCluster.)
	BucketAgentNodes   = []byte("agent_nodes")   // nodeID → AgentNode
	BucketJoinTokens   = []byte("join_tokens")   // tokenID → JoinToken (secret hash only)
	BucketNodeCA       = []byte("node_ca")       // "ca" → NodeCA (key sealed with the KEK); "kek" → KEKMark
	BucketSessionAddrs = []byte("session_addrs") // coordinator ID → agent session address (host:port)

	// Servers and actions (servers.go).
	BucketServers     = []byte("servers")      // accountID/serverID → Server
	BucketServerIDs   = []byte("server_ids")   // serverID → accountID (servers created below semantics level 10)
	BucketNodeServers = []byte("node_servers") // nodeID/serverID → nil (servers not terminated)
	BucketActions     = []byte("actions")      // actionID → Action
	BucketOpenActions = []byte("open_actions") // actionID → nodeID (pending or running: the dispatcher's work list)
	// BucketAccountActions indexes an account's actions for GET /v1/actions
	// (actionlist.go), written from semantics level 2 on.
	BucketAccountActions = []byte("account_actions") // accountID/actionID → "<resource type> <resource id> <command>"
	// BucketOwnerIDs is the id index of the servers and invoices made from
	// semantics level 10 on (fsm LevelOwnerIDs): one bucket where there
	// were two (server_ids, invoice_ids, which keep what was indexed
	// before), keyed by OwnerKey, so that the ids an order makes in one
	// millisecond (its server's and its invoice's) sort next to each
	// other and its commit writes one leaf of one tree (ownerids.go).
	BucketOwnerIDs = []byte("owner_ids") // OwnerKey(serverID or invoiceID) → accountID

	// IP pools (ippools.go). A unit is an IPv4 address or an IPv6 prefix.
	// The units a server holds are one record per server and pool, so a
	// placing command adds one key per pool at the end of the pool's range
	// (server ids sort by time) instead of one key per unit scattered over
	// it; reserved and quarantined units keep a record each, keyed by the
	// pool name, a slash and the unit in CIDR form.
	BucketIPPools  = []byte("ip_pools")  // pool name → IPPool
	BucketIPUnits  = []byte("ip_units")  // pool/<unit CIDR> → IPUnit (reserved or quarantined)
	BucketIPAllocs = []byte("ip_allocs") // pool/serverID → IPAlloc (the units allocated to the server)

	// Reverse DNS (rdns.go). The index of the last change is the
	// "rdns_changed" counter.
	BucketReverseZones = []byte("reverse_zones") // zone name (no trailing dot) → ReverseZone
	// OAuth (oauth.go): clients, pending device and authorization codes, grants
	// (connected apps) and tokens. Codes and tokens are keyed by their SHA-256
	// hash; no plaintext is stored.
	BucketOAuthClients     = []byte("oauth_clients")      // clientID → OAuthClient (registered, RFC 7591)
	BucketOAuthDevices     = []byte("oauth_devices")      // device-code hash → OAuthDevice
	BucketOAuthUserCodes   = []byte("oauth_user_codes")   // user-code hash → device-code hash
	BucketOAuthCodes       = []byte("oauth_codes")        // authorization-code hash → OAuthCode
	BucketOAuthGrants      = []byte("oauth_grants")       // accountID/grantID → OAuthGrant
	BucketOAuthGrantIDs    = []byte("oauth_grant_ids")    // grantID → accountID
	BucketOAuthTokens      = []byte("oauth_tokens")       // token hash → OAuthToken
	BucketOAuthGrantTokens = []byte("oauth_grant_tokens") // grantID/token hash → "" (a grant's tokens)

	// Hosting accounts (hosting.go). Usernames and domains are unique among
	// live accounts in the whole cluster.
	BucketHosting          = []byte("hosting")           // accountID/hostingID → HostingAccount
	BucketHostingIDs       = []byte("hosting_ids")       // hostingID → accountID
	BucketHostingUsernames = []byte("hosting_usernames") // username → hostingID (live accounts)
	BucketHostingDomains   = []byte("hosting_domains")   // domain → hostingID (live accounts)
	BucketNodeHosting      = []byte("node_hosting")      // nodeID/hostingID → nil (live accounts)
	// Custom domains (customdomains.go): hostingID → CustomDomain. The name
	// itself is indexed in BucketHostingDomains (domain → hostingID) with the
	// accounts' own domains, so a name is attached to at most one account.
	BucketCustomDomains = []byte("custom_domains")
	BucketACME          = []byte("acme") // ACMEAccountKey → the cluster's one ACME account

	// Catalogue (products.go).
	BucketProducts       = []byte("products")        // slug → api.AdminProduct
	BucketAccountPricing = []byte("account_pricing") // accountID → api.AccountPricing
	BucketOSTemplates    = []byte("os_templates")    // template name → api.OSTemplateLabel (operator labels)

	// Registered domains (domainreg.go). A name is held by at most one
	// domain that is registering or registered; the open registry
	// operations are the leader's work list.
	BucketRegDomains     = []byte("reg_domains")      // accountID/domainID → RegDomain
	BucketRegDomainIDs   = []byte("reg_domain_ids")   // domainID → accountID
	BucketRegDomainNames = []byte("reg_domain_names") // ASCII name → domainID (registering, active or expired)
	BucketRegDomainOps   = []byte("reg_domain_ops")   // domainID → "" (a registry operation is open)
)

// Bucket groups, for tests and tools that look at one domain.
var (
	// WebhookBuckets are the webhook subscription and delivery buckets.
	WebhookBuckets = [][]byte{
		BucketWebhooks, BucketWebhookIDs, BucketWebhookDeliveries, BucketWebhookPending,
		BucketWebhookAttempts, BucketWebhookMeta, BucketWebhookAttemptIDs,
	}
	// NodeBuckets are the agent-node buckets.
	NodeBuckets = [][]byte{BucketAgentNodes, BucketJoinTokens, BucketNodeCA, BucketSessionAddrs}
	// ServerBuckets are the server and action buckets.
	ServerBuckets = [][]byte{BucketServers, BucketServerIDs, BucketNodeServers, BucketActions, BucketOpenActions, BucketAccountActions, BucketOwnerIDs}
	// IPPoolBuckets are the IP pool buckets.
	IPPoolBuckets = [][]byte{BucketIPPools, BucketIPUnits, BucketIPAllocs}
	// OAuthBuckets are the OAuth buckets.
	OAuthBuckets = [][]byte{
		BucketOAuthClients, BucketOAuthDevices, BucketOAuthUserCodes, BucketOAuthCodes,
		BucketOAuthGrants, BucketOAuthGrantIDs, BucketOAuthTokens, BucketOAuthGrantTokens,
	}
	// CatalogueBuckets are the catalogue buckets.
	CatalogueBuckets = [][]byte{BucketProducts, BucketAccountPricing, BucketOSTemplates}
	// HostingBuckets are the hosting account buckets.
	HostingBuckets = [][]byte{BucketHosting, BucketHostingIDs, BucketHostingUsernames, BucketHostingDomains, BucketNodeHosting, BucketCustomDomains, BucketACME}
	// RegDomainBuckets are the registered-domain buckets.
	RegDomainBuckets = [][]byte{BucketRegDomains, BucketRegDomainIDs, BucketRegDomainNames, BucketRegDomainOps}
)

// AllBuckets lists every bucket; CreateBuckets makes them.
var AllBuckets = [][]byte{
	BucketMeta, BucketAccounts, BucketEmails, BucketKeys, BucketKeyHashes, BucketKeyUsage,
	BucketWalletTx, BucketInvoices, BucketInvoiceIDs, BucketTickets, BucketTicketIDs, BucketTicketList, BucketCounters,
	BucketIdempotency, BucketOutbox, BucketCluster,
	BucketWebhooks, BucketWebhookIDs, BucketWebhookDeliveries, BucketWebhookPending, BucketWebhookAttempts, BucketWebhookMeta,
	BucketWebhookAttemptIDs,
	BucketAgentNodes, BucketJoinTokens, BucketNodeCA, BucketSessionAddrs,
	BucketServers, BucketServerIDs, BucketNodeServers, BucketActions, BucketOpenActions, BucketAccountActions,
	BucketOwnerIDs,
	BucketIPPools, BucketIPUnits, BucketIPAllocs, BucketReverseZones,
	BucketOAuthClients, BucketOAuthDevices, BucketOAuthUserCodes, BucketOAuthCodes,
	BucketOAuthGrants, BucketOAuthGrantIDs, BucketOAuthTokens, BucketOAuthGrantTokens,
	BucketHosting, BucketHostingIDs, BucketHostingUsernames, BucketHostingDomains, BucketNodeHosting,
	BucketCustomDomains, BucketACME,
	BucketProducts, BucketAccountPricing, BucketOSTemplates,
	BucketRegDomains, BucketRegDomainIDs, BucketRegDomainNames, BucketRegDomainOps,
}

// AppendOnlyBuckets are the buckets whose new keys sort after the keys
// already there and whose values are written once: the outbox (keyed by
// Raft index, pruned from its front) and the id indexes of servers,
// invoices and tickets (keyed by time-ordered ids, or their time first in
// owner_ids; one made on a
// coordinator whose clock is some milliseconds behind lands just before the
// end and splits that one page). PackAppends fills their pages.
var AppendOnlyBuckets = [][]byte{BucketOutbox, BucketServerIDs, BucketInvoiceIDs, BucketTicketIDs, BucketOwnerIDs}

// AppendMostlyBuckets are the buckets an order writes whose new keys sort
// after the keys of their owner already there (time-ordered ids after the
// account's or node's prefix; actions' after all) and whose values, when
// rewritten (a server or action changing state, an invoice paid), grow by
// some tens of bytes: servers, actions, invoices, wallet transactions, the
// node index of servers and the account index of actions (written once). Packed like the append-only buckets, a page
// that overflows splits into a full page and the rest instead of two half
// pages; the appends of several owners, interleaved, still fill their
// pages. An order's commit writes fewer pages (TestOrderPagesTable).
var AppendMostlyBuckets = [][]byte{BucketServers, BucketActions, BucketInvoices, BucketWalletTx, BucketNodeServers, BucketAccountActions}

// PackAppends makes the write transaction tx split full pages of the
// append-only buckets at 100 % instead of bbolt's 50 %: a page that only
// ever gains keys at its end would stay half empty after a split, so these
// trees hold half the pages (the outbox is a level shallower for longer)
// and the last leaf, which every append rewrites, is smaller on average.
// The append-mostly buckets are packed the same way. Only the file's page
// layout changes, never what it holds: the FSM calls it at the start of
// every write transaction, on every replica alike.
func PackAppends(tx *bolt.Tx) {
	for _, name := range AppendOnlyBuckets {
		tx.Bucket(name).FillPercent = 1.0
	}
	for _, name := range AppendMostlyBuckets {
		tx.Bucket(name).FillPercent = 1.0
	}
}

var (
	keyAppliedIndex  = []byte("applied_index")
	keyAppliedAt     = []byte("applied_at")
	keySchemaVersion = []byte("schema_version")
)

// ErrNotFound is returned by getters when the object is absent.
var ErrNotFound = errors.New("not found")

// CreateBuckets makes every bucket, migrates a database written with an
// older schema version and records the current one. Every replica migrates
// the same state to the same result, so replicas stay byte-identical.
func CreateBuckets(tx *bolt.Tx) error {
	for _, b := range AllBuckets {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return fmt.Errorf("create bucket %s: %w", b, err)
		}
	}
	from := schemaVersion(tx)
	if from > SchemaVersion {
		return fmt.Errorf("database schema version %d is newer than this binary's (%d)", from, SchemaVersion)
	}
	if from < 2 {
		if err := migrateIPAllocs(tx); err != nil {
			return fmt.Errorf("migrate ip_units to ip_allocs: %w", err)
		}
	}
	return tx.Bucket(BucketMeta).Put(keySchemaVersion, u64(SchemaVersion))
}

// schemaVersion is the schema version recorded in the database (0 if none).
func schemaVersion(tx *bolt.Tx) uint64 {
	if v := metaFixed(tx, keySchemaVersion, 8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// AppliedIndex returns the Raft index of the last command applied to this database.
func AppliedIndex(tx *bolt.Tx) uint64 {
	if v := metaFixed(tx, keyAppliedIndex, 8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// metaFixed is the value of key in the meta bucket when it is size bytes
// long, or nil: no such value, one of another size, or no meta bucket (a
// database not made yet).
func metaFixed(tx *bolt.Tx, key []byte, size int) []byte {
	if b := tx.Bucket(BucketMeta); b != nil {
		if v := b.Get(key); len(v) == size {
			return v
		}
	}
	return nil
}

// SetAppliedIndex records the applied index in the same transaction as the change.
func SetAppliedIndex(tx *bolt.Tx, idx uint64) error {
	return tx.Bucket(BucketMeta).Put(keyAppliedIndex, u64(idx))
}

// AppliedAt is the latest time (unix ns) a command applied to this database
// carried (the commands' Envelope.At), 0 when none recorded (a database
// written before it was kept). Coordinators make ids and times no earlier
// (coordinator/internal/hlc).
func AppliedAt(tx *bolt.Tx) int64 { return metaInt64(tx, keyAppliedAt) }

// SetAppliedAt records AppliedAt.
func SetAppliedAt(tx *bolt.Tx, ns int64) error { return setMetaInt64(tx, keyAppliedAt, ns) }

// metaInt64 is the int64 the meta bucket holds under key (8 bytes, big
// endian, as setMetaInt64 writes it), 0 when it holds none (or a value of
// another size, or there is no meta bucket yet).
func metaInt64(tx *bolt.Tx, key []byte) int64 {
	if v := metaFixed(tx, key, 8); v != nil {
		return int64(binary.BigEndian.Uint64(v))
	}
	return 0
}

// setMetaInt64 records v under key in the meta bucket (metaInt64).
func setMetaInt64(tx *bolt.Tx, key []byte, v int64) error {
	return tx.Bucket(BucketMeta).Put(key, u64(uint64(v)))
}

// OwnedKey is the "<account>/<object>" key of an account-owned object.
func OwnedKey(accountID, id string) []byte { return []byte(accountID + "/" + id) }

// OwnedPrefix is the key prefix of every object of one account in a bucket.
func OwnedPrefix(accountID string) []byte { return []byte(accountID + "/") }

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// GetJSON decodes bucket[key] into v, or returns ErrNotFound.
func GetJSON(tx *bolt.Tx, bucket, key []byte, v any) error {
	raw := tx.Bucket(bucket).Get(key)
	if raw == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s/%s: %w", bucket, key, err)
	}
	return nil
}

// PutJSON encodes v into bucket[key].
func PutJSON(tx *bolt.Tx, bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", bucket, key, err)
	}
	return tx.Bucket(bucket).Put(key, raw)
}

// NextCounter increments and returns a named counter.
func NextCounter(tx *bolt.Tx, name string) (uint64, error) {
	b := tx.Bucket(BucketCounters)
	var n uint64
	if v := b.Get([]byte(name)); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	n++
	return n, b.Put([]byte(name), u64(n))
}

// SetCounter sets a named counter (NextCounter then returns n+1).
func SetCounter(tx *bolt.Tx, name string, n uint64) error {
	return tx.Bucket(BucketCounters).Put([]byte(name), u64(n))
}

// ListOwned decodes the objects of one account in key (= creation) order, newest
// first, returning one page and the total count.
func ListOwned[T any](tx *bolt.Tx, bucket []byte, accountID string, offset, limit int) ([]T, int, error) {
	return listOwnedIf[T](tx, bucket, accountID, offset, limit, nil)
}

// listOwnedIf is ListOwned over the objects keep accepts (walkOwnedAt).
func listOwnedIf[T any](tx *bolt.Tx, bucket []byte, accountID string, offset, limit int, keep func(v []byte) (bool, error)) ([]T, int, error) {
	out, total, _, err := listOwnedAt[T](tx, bucket, accountID, PageAt{Offset: offset}, limit, keep)
	return out, total, err
}

// PageAt is where a page of an account's objects starts, newest first: at
// the Offset-th of them, or, when Below is set, at the newest whose key
// sorts below OwnedKey(account, Below). Below is a position, not a lookup:
// an id of an object deleted since, or of another account's, places the
// page as well (ids sort by creation time) and reads nothing of it.
type PageAt struct {
	Offset int
	Below  string
}

// ListOwnedAt is ListOwned from at, with next, the id of the page's last
// object when an older one follows it ("" at the end): the Below of the
// next page.
func ListOwnedAt[T any](tx *bolt.Tx, bucket []byte, accountID string, at PageAt, limit int) (page []T, total int, next string, err error) {
	return listOwnedAt[T](tx, bucket, accountID, at, limit, nil)
}

// listOwnedAt is ListOwnedAt over the objects keep accepts (walkOwnedAt).
func listOwnedAt[T any](tx *bolt.Tx, bucket []byte, accountID string, at PageAt, limit int, keep func(v []byte) (bool, error)) ([]T, int, string, error) {
	out := []T{}
	total, next, err := walkOwnedAt(tx, bucket, accountID, at, limit, keep, appendDecoded(bucket, &out))
	return out, total, next, err
}

// ListOwnedRaw is ListOwned without decoding: it returns copies of the stored
// JSON values, for buckets that store exactly what the API returns.
func ListOwnedRaw(tx *bolt.Tx, bucket []byte, accountID string, offset, limit int) ([][]byte, int) {
	out, total, _ := ListOwnedRawAt(tx, bucket, accountID, PageAt{Offset: offset}, limit)
	return out, total
}

// ListOwnedRawAt is ListOwnedAt without decoding (ListOwnedRaw).
func ListOwnedRawAt(tx *bolt.Tx, bucket []byte, accountID string, at PageAt, limit int) ([][]byte, int, string) {
	out := [][]byte{}
	total, next, _ := walkOwnedAt(tx, bucket, accountID, at, limit, nil, func(_, v []byte) error {
		out = append(out, append([]byte(nil), v...))
		return nil
	})
	return out, total, next
}

// walkOwnedAt visits one page of an account's objects that keep accepts
// (all with a nil keep), newest first, from at, and returns their count
// and the id of the page's last object when an older one follows it, else
// "". It counts every object keep accepts, above the page too: the total
// does not depend on where the page starts.
func walkOwnedAt(tx *bolt.Tx, bucket []byte, accountID string, at PageAt, limit int, keep func(v []byte) (bool, error), visit func(k, v []byte) error) (total int, next string, err error) {
	prefix := OwnedPrefix(accountID)
	var below []byte
	if at.Below != "" {
		below = OwnedKey(accountID, at.Below)
	}
	c := tx.Bucket(bucket).Cursor()
	// Seek past the prefix to walk it backwards.
	end := append(append([]byte{}, prefix...), 0xff)
	var k, v, last []byte
	if k, _ = c.Seek(end); k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	taken, more := 0, false
	for ; k != nil && hasPrefix(k, prefix); k, v = c.Prev() {
		if keep != nil {
			ok, err := keep(v)
			if err != nil {
				return 0, "", fmt.Errorf("decode %s/%s: %w", bucket, k, err)
			}
			if !ok {
				continue
			}
		}
		if below == nil && total >= at.Offset || below != nil && bytes.Compare(k, below) < 0 {
			if taken < limit {
				if err := visit(k, v); err != nil {
					return 0, "", err
				}
				taken, last = taken+1, k
			} else {
				more = true
			}
		}
		total++
	}
	if more && last != nil { // last is nil on a page of limit 0 (DeliveryLog's, after queued rows)
		next = string(last[len(prefix):])
	}
	return total, next, nil
}

func hasPrefix(k, p []byte) bool {
	return len(k) >= len(p) && string(k[:len(p)]) == string(p)
}
