package fsm

import (
	"fmt"

	"github.com/hostplane/hostplane/coordinator/internal/store"
)

// The cluster's semantics level, as etcd's cluster version: what a command
// does on apply may only change with the level, and the level only rises
// once every coordinator of the cluster runs a binary that applies it. A
// rolling upgrade then never has replicas of one log apply an entry two ways:
// until the last coordinator is upgraded the cluster stays at the old level,
// new command types are refused before they reach the log (and, should one
// reach it, refused alike on every replica that knows the level), and
// changed behaviour stays off; the leader raises the level once every
// member reports the new one (server/level.go).
//
// Level 1 is every command of the releases before levels existed (a state
// without a recorded level is at 1). Level 2 is the first release that
// records one. Level 3 writes key usage flushes with their ids
// (CmdKeyUsageFlush, LevelUsageFlush). Level 4 writes hosting nodes'
// periodic usage reports (CmdHostingUsage, LevelHostingUsage). Level 5
// keeps a ticket reply's Idempotency-Key record without its answer, rebuilt
// on replay (LevelTicketReplyIdem, ResolveIdem). Level 6 refuses a custom
// domain's set or verification at apply while the hosting account's delete
// is under way (levelCustomDomainVsDelete), and records whether the node
// enforces a hosting account's disk allowance (quota.enforced) from its
// actions' results and usage reports (LevelQuotaEnforced). Level 7
// records a hosting node's connection details (SFTP host and port, MariaDB
// port) from its Hello and usage reports (LevelHostingConnection), and
// notifies a hosting account's disk allowance crossings
// (hosting.disk_quota_warning/exceeded) from its usage figures
// (LevelQuotaAlerts). Level 8 refuses a hosting node's connection details
// whose SFTP host is an IP address with a zone (LevelHostingHostNoZone).
// Level 9 logs a webhook attempt once: a WebhookAttempts command applied
// again (proposed again after an apply that failed but committed) skips
// each attempt whose id the delivery log holds (LevelWebhookAttemptOnce).
// Level 10 indexes a new server's and a new invoice's id in one bucket,
// owner_ids, instead of server_ids and invoice_ids (LevelOwnerIDs): an
// order writes one tree fewer. Level 11 names the state a `cluster
// restore` installs (store.RestoreEpoch): the leader marks the backup, each
// replica's Restore moves the epoch, and a WebhookAttempts read from the
// state a restore replaced moves neither the restored cursor nor prunes the
// outbox (LevelRestoreEpoch); a ReverseZoneSynced read from it records no
// synced index, and reverse DNS's sync state (a zone's changed, added,
// remapped and synced indexes, a PTR's PTRAt) counts in event indexes
// (rdnsIndex). Level 12 makes webhook event ids sort in commit order: an
// event's time (its id's first part, its created_at) never goes below the
// last event's (store.EventAt), and its id carries the event index
// (LevelEventOrder). Level 13 does the same for every other id the FSM
// makes (a cleanup's or a sweep's action, a refund's or a renewal's wallet
// transaction, a renewal's invoice and payment, a domain renewal's
// operation): its time, and its record's created_at, is the events' clamped
// time (the one clamp, store.EventAt, for events and records alike) and it
// carries the event index, so lists read newest first by id follow commit
// order (LevelIDOrder). Level 14 decides the answer a domain order's,
// transfer's or change's Idempotency-Key replays in the log: the first of
// the operation's end and its answer window's close (CmdDomainAnswerClose)
// rewrites the key's record (LevelDomainAnswer). Level 15 marks that record
// decided (store.IdemRecord.Decided), so a send of the key tells a window the
// log decided from an operation opened below level 14 without one
// (LevelDomainAnswerDecided). Level 16 records a domain's child name
// servers (host objects with glue addresses): CmdDomainHost opens a registry
// operation of kind host, and its end keeps the host on the domain
// (LevelDomainHosts). Level 17 gives a payment a top-up makes the id of its
// wallet transaction with the "pay" prefix, so two top-ups of one Raft entry
// no longer give their payments one id (LevelPaymentIDs).

// MaxLevel is the newest semantics level this binary applies.
const MaxLevel uint16 = 17

// ClusterLevel is the payload of CmdClusterLevel.
type ClusterLevel struct {
	Level uint16 `json:"level"`
}

// commandLevel is the semantics level a command type needs, for the types
// that need more than 1. A command type added after level 1 is listed here
// with the level of the release that added it (until every coordinator
// applies it, its route answers 503 cluster_upgrading); a handler whose
// behaviour changes with a level asks c.level() >= that level.
var commandLevel = map[CommandType]uint16{
	CmdHostingPasswordReset: 2,
	CmdNodeLocation:         2,
	CmdKeyUsageFlush:        LevelUsageFlush,
	CmdHostingUsage:         LevelHostingUsage,
	CmdDomainAnswerClose:    LevelDomainAnswer,
	CmdDomainHost:           LevelDomainHosts,
}

// LevelOf is the semantics level command type t needs.
func LevelOf(t CommandType) uint16 {
	if l := commandLevel[t]; l > 1 {
		return l
	}
	return 1
}

// LevelError refuses a command the cluster's level does not allow yet: some
// coordinator has not been upgraded to a binary that applies it.
type LevelError struct{ Need, Have uint16 }

func (e *LevelError) Error() string {
	return fmt.Sprintf("this operation needs every coordinator of the cluster upgraded: it needs semantics level %d and the cluster runs %d (hostplanectl cluster status shows each coordinator's)", e.Need, e.Have)
}

// applyClusterLevel raises the recorded level; a lower or equal level
// changes nothing (the level never falls; a restored backup may carry a
// lower one, which the leader raises again). A level above what this binary
// applies stops this replica: every entry after it may mean something this
// binary does not do, and applying it anyway would let the replicas' states
// part. (ApplyBatch's transaction rolls back; the process exits saying so.)
func applyClusterLevel(c *applyCtx, p ClusterLevel) (any, error) {
	if p.Level < 1 {
		return nil, fmt.Errorf("%w: semantics level %d", ErrInvalid, p.Level)
	}
	have := c.level()
	if p.Level <= have {
		return have, nil
	}
	if p.Level > c.maxLevel {
		panic(fmt.Sprintf("fsm: the cluster raised its semantics level to %d at index %d but this coordinator's binary applies only up to %d: upgrade it (every coordinator must run a release that applies level %d)", p.Level, c.index, c.maxLevel, p.Level))
	}
	if have < levelActionIndex && p.Level >= levelActionIndex {
		if _, err := backfillActionIndex(c.tx); err != nil {
			return nil, err
		}
	}
	if have < LevelEventOrder && p.Level >= LevelEventOrder {
		// The first events of the new level take no time before this
		// command's nor the latest of the events in the outbox
		// (eventorder.go): an event of the old level committed before
		// the raise may carry a later time than the raise's own (its
		// request raced it). An event pruned from the outbox was
		// delivered already. The outbox at this index is the same on
		// every replica. (An event further ahead than hlc.MaxAhead is
		// a wrong clock's, and left out as eventTime leaves it.)
		seed := c.at
		if at := latestOutboxAt(c, c.at); at.After(seed) {
			seed = at
		}
		if err := raiseEventAt(c, seed); err != nil {
			return nil, err
		}
	}
	if have < LevelIDOrder && p.Level >= LevelIDOrder {
		// Likewise for the ids the FSM makes for records: below the new
		// level such an id took its command's time, recorded nowhere
		// when the command emitted no event (a cleanup action) and
		// possibly later than the last event's. The seed is the latest
		// time of the ids the actions, wallet transactions and invoices
		// hold (the same on every replica at this index; one further
		// ahead than hlc.MaxAhead left out), so no id made from the new
		// level sorts before one made before it.
		if err := raiseEventAt(c, latestIDAt(c, c.at)); err != nil {
			return nil, err
		}
	}
	if err := store.PutClusterLevel(c.tx, p.Level); err != nil {
		return nil, err
	}
	if c.lvl != nil {
		*c.lvl = p.Level
	}
	return p.Level, nil
}

// ClusterLevel is the cluster's semantics level as this replica has applied
// it: the level its database holds as of the last batch committed (or the
// last open or Restore), kept in memory rather than read from the database
// each time (raftnode's Apply asks before each proposal).
func (f *FSM) ClusterLevel() uint16 { return uint16(f.level.Load()) }

// MaxLevel is the newest level this FSM applies: the binary's MaxLevel, or
// less when LimitLevel made it act as an older release's.
func (f *FSM) MaxLevel() uint16 { return f.maxLevel }

// LimitLevel makes this FSM act as a binary that applies levels up to l only
// (tests of rolling upgrades; hidden flag of the coordinator). l is capped to
// MaxLevel.
func (f *FSM) LimitLevel(l uint16) {
	if l >= 1 && l < MaxLevel {
		f.maxLevel = l
	}
}
