package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
)

// Key usage is written through Raft by the leader (the server's usage
// flush). A follower answers requests too (stale reads), and records their
// use in its own UsageRecorder: ShipUsage sends what it recorded to the
// leader with POST usagePath over the coordinators' own channel (mutual TLS,
// else the cluster secret; requireClusterToken refuses anyone else), whose
// serveUsage merges it into the leader's recorder for its next flush. So a
// key's use count, last use and usage log hold every request, whichever
// coordinator answered it.
const (
	usagePath = "/internal/usage"
	// maxUsageBody bounds a shipment's body; a follower sends bodies of at
	// most half of it, a key's log entries cut to fit if they alone do not.
	maxUsageBody = 8 << 20
	// maxUsageIP bounds a batch's last_used_ip (an address as clientIP
	// gives it: an IPv6 address with a zone fits).
	maxUsageIP = 100
	// maxUsageCount bounds one batch's request count.
	maxUsageCount = 1 << 40
)

// checkUsageBatch checks one batch a follower shipped.
func checkUsageBatch(b fsm.KeyUsageBatch) error {
	switch {
	case b.KeyID == "" || len(b.KeyID) > maxLeaseKey:
		return badRequest("key_id must be 1 to %d bytes", maxLeaseKey)
	case b.Count < 1 || b.Count > maxUsageCount:
		return badRequest("count must be 1 to %d", int64(maxUsageCount))
	case len(b.Entries) > usageEntriesPerFlush || int64(len(b.Entries)) > b.Count:
		return badRequest("at most %d entries, and no more than count", usageEntriesPerFlush)
	case b.LastUsedAt.IsZero():
		return badRequest("last_used_at is required")
	case b.LastUsedIP != "" && (len(b.LastUsedIP) > maxUsageIP || !printableASCII(b.LastUsedIP)):
		return badRequest("last_used_ip must be at most %d printable characters", maxUsageIP)
	}
	return nil
}

// parseUsageShipment decodes and checks a follower's shipment.
func parseUsageShipment(body []byte) (fsm.KeyUsage, error) {
	var u fsm.KeyUsage
	if err := decodeStrict(body, &u); err != nil {
		return u, err
	}
	for _, b := range u.Keys {
		if err := checkUsageBatch(b); err != nil {
			return u, err
		}
	}
	return u, nil
}

// serveUsage is the leader's end of a follower's shipment.
func (a *API) serveUsage(w http.ResponseWriter, r *http.Request) {
	u, ok := leaderRequest(a, w, r, maxUsageBody, "usage shipment", "invalid_usage", parseUsageShipment)
	if !ok {
		return
	}
	for _, b := range u.Keys {
		a.Usage.Merge(b)
	}
	w.WriteHeader(http.StatusNoContent)
}

// ShipUsage sends what this coordinator, a follower, recorded to the leader;
// what could not be sent is kept for the next call. The leader (or a
// coordinator that cannot authenticate to it) does nothing: the leader's
// flush writes its own.
func (a *API) ShipUsage(ctx context.Context) error {
	if !a.clusterAuth() || a.raft.IsLeader() {
		return nil
	}
	// A flush this coordinator kept when it led, once its fate is settled.
	a.usageFlush.mu.Lock()
	a.settleUsageFlush()
	a.usageFlush.mu.Unlock()
	u := a.Usage.Take()
	if u == nil {
		return nil
	}
	// A leader of the release before takes no last_used_ip (its shipment
	// decoding refuses an unknown field): below fsm.LevelKeyLastIP, when one
	// may still lead, it is left out (and the flush would ignore it anyway).
	oldLeader := a.state.ClusterLevel() < fsm.LevelKeyLastIP
	var chunk []fsm.KeyUsageBatch
	size := 0
	for i := range u.Keys {
		b := &u.Keys[i]
		if oldLeader {
			b.LastUsedIP = ""
		}
		n := usageBatchSize(*b)
		for n > maxUsageBody/2 && len(b.Entries) > 0 {
			b.Entries = b.Entries[:len(b.Entries)/2]
			n = usageBatchSize(*b)
		}
		if len(chunk) > 0 && size+n > maxUsageBody/2 {
			if err := a.shipUsage(ctx, chunk); err != nil {
				a.keepUsage(u.Keys[i-len(chunk):])
				return err
			}
			chunk, size = nil, 0
		}
		chunk, size = append(chunk, *b), size+n
	}
	if err := a.shipUsage(ctx, chunk); err != nil {
		a.keepUsage(chunk)
		return err
	}
	return nil
}

// keepUsage puts batches that could not be shipped back for the next try.
func (a *API) keepUsage(keys []fsm.KeyUsageBatch) {
	for _, b := range keys {
		a.Usage.Merge(b)
	}
}

// usageBatchSize is b's size in a shipment's body.
func usageBatchSize(b fsm.KeyUsageBatch) int {
	enc, _ := json.Marshal(b)
	return len(enc) + 1
}

func (a *API) shipUsage(ctx context.Context, keys []fsm.KeyUsageBatch) error {
	addr := a.LeaderAPIAddr()
	if addr == "" {
		return fmt.Errorf("ship key usage: no leader known")
	}
	resp, err := a.postToLeader(ctx, addr, usagePath, fsm.KeyUsage{Keys: keys})
	if err != nil {
		return fmt.Errorf("ship key usage to the leader at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxLeaseBody))
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("ship key usage to the leader at %s: %s", addr, resp.Status)
	}
	return nil
}
