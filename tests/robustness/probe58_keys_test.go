package robustness

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// keyOp is an operation on API key number key of the run: its minting
// (POST /v1/account/api-keys), its revocation (DELETE
// /v1/account/api-keys/{id}) or a use (GET /v1/account with it).
type keyOp struct {
	kind string // "mint", "revoke", "use"
	key  int
}

// keyStates of the model: a key not minted yet, live, revoked.
const (
	keyAbsent = iota
	keyLive
	keyRevoked
)

// keysModel is one API key's life (the history is partitioned by key): a
// use is answered 200 while the key is live and 401 before it was minted or
// once revoked.
var keysModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		by := map[int][]porcupine.Operation{}
		var order []int
		for _, op := range history {
			k := op.Input.(keyOp).key
			if _, ok := by[k]; !ok {
				order = append(order, k)
			}
			by[k] = append(by[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(order))
		for _, k := range order {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() any { return keyAbsent },
	Step: func(state, input, output any) (bool, any) {
		s, in := state.(int), input.(keyOp)
		switch in.kind {
		case "mint":
			return s == keyAbsent, keyLive
		case "revoke":
			return s != keyAbsent, keyRevoked
		}
		if output.(bool) {
			return s == keyLive, s
		}
		return s != keyLive, s
	},
	DescribeOperation: func(input, output any) string {
		in := input.(keyOp)
		if in.kind == "use" {
			return fmt.Sprintf("use(key %d) -> %v", in.key, output)
		}
		return fmt.Sprintf("%s(key %d)", in.kind, in.key)
	},
	DescribeState: func(state any) string { return [...]string{"absent", "live", "revoked"}[state.(int)] },
	DescribeOperationMetadata: func(info any) string {
		if info == nil {
			return ""
		}
		return info.(string)
	},
}

// TestProbe58LinearizableKeysLeaderPaused: 12 clients mint API keys (with an
// Idempotency-Key), revoke them and use them (GET /v1/account) through all
// three coordinator processes while the leader is SIGSTOPped for 6 s and
// resumed, twice; the history of each key must be linearizable: a key
// whose mint was answered 201 is never refused as unknown (401) by any
// coordinator afterwards, and a key whose revocation was answered is never
// served afterwards (README "Read consistency": every GET reflects every
// write acknowledged before it was sent; SPEC: a revoked key is a 401).
// tests/robustness's other histories are a register, the wallet and a
// ticket set; paused_auth_test.go checks one revocation at the paused
// ex-leader.
func TestProbe58LinearizableKeysLeaderPaused(t *testing.T) {
	// Uses of revoked keys spend the client address's budget for requests
	// without a valid key (300 a minute): raised, so they stay 401s.
	c := startCluster(t, "p58keys", clusterOptions{scopes: api.AllScopes, place: func(o *framework.ProcessOptions) {
		o.Extra = func(int, *framework.CoordinatorProcess) []string { return []string{"--ip-rate-limit", "100000000"} }
	}})
	type minted struct {
		secret, id string
		revoking   atomic.Bool
	}
	var (
		mu   sync.Mutex
		keys []*minted
	)
	rec := newRecorder()
	var mints, revokes, uses, unknown, failed atomic.Int64
	var failedMu sync.Mutex
	failedBy := map[string]int{} // the failed requests by what answered them
	fail := func(what string, st int, err error) {
		failedMu.Lock()
		defer failedMu.Unlock()
		if err != nil {
			failedBy[what+": no answer"]++
		} else {
			failedBy[fmt.Sprintf("%s: %d", what, st)]++
		}
	}
	var nextClient atomic.Int64
	const clients = 12
	nextClient.Store(clients + 100)
	ids := make([]int, clients)
	for i := range ids {
		ids[i] = i
	}
	send := func(ctx context.Context, p *framework.CoordinatorProcess, key, method, path string, body any, hdr map[string]string) (int, []byte, error) {
		var raw []byte
		if body != nil {
			raw, _ = json.Marshal(body)
		}
		h := map[string]string{"Authorization": "Bearer " + key}
		maps.Copy(h, hdr)
		return framework.Send(ctx, httpc, method, p.URL()+path, raw, h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	c.runClients(ctx, t, rec, faultPause, clients, func(i int, rng *rand.Rand, p *framework.CoordinatorProcess) {
		rctx, rcancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer rcancel()
		mu.Lock()
		n := len(keys)
		mu.Unlock()
		switch r := rng.IntN(10); {
		case r < 2 || n == 0: // mint (a 409 once the account holds 50 live keys)
			call := rec.now()
			st, raw, err := send(rctx, p, c.key, "POST", "/v1/account/api-keys",
				map[string]any{"name": fmt.Sprintf("p58-%d-%d", i, call), "scopes": []string{"account:read"}},
				map[string]string{"Idempotency-Key": fmt.Sprintf("p58-%d-%d", i, call)})
			ret := rec.now()
			var kc api.KeyCreated
			if err != nil || st != 201 || json.Unmarshal(raw, &kc) != nil || kc.Key == "" {
				// A mint of unknown outcome: its secret is not known, so no
				// operation of the history names it.
				if err == nil && st >= 400 && st < 500 && st != 409 && st != 429 {
					t.Errorf("mint refused: %d %s", st, raw)
				}
				failed.Add(1)
				fail("mint", st, err)
				retryPause(ctx, st)
				return
			}
			mu.Lock()
			keys = append(keys, &minted{secret: kc.Key, id: kc.Info.ID})
			k := len(keys) - 1
			mu.Unlock()
			mints.Add(1)
			rec.add(porcupine.Operation{ClientId: ids[i], Input: keyOp{"mint", k}, Call: call, Output: true, Return: ret, Metadata: p.ID})
		case r < 4: // revoke one not revoked yet
			k := rng.IntN(n)
			mu.Lock()
			m := keys[k]
			mu.Unlock()
			if !m.revoking.CompareAndSwap(false, true) {
				return
			}
			call := rec.now()
			st, raw, err := send(rctx, p, c.key, "DELETE", "/v1/account/api-keys/"+m.id, nil, nil)
			ret := rec.now()
			op := porcupine.Operation{ClientId: ids[i], Input: keyOp{"revoke", k}, Call: call, Output: true, Return: ret, Metadata: p.ID}
			switch {
			case err == nil && st/100 == 2:
				revokes.Add(1)
			case err == nil && st >= 400 && st < 500:
				t.Errorf("revoke of key %d refused: %d %s", k, st, raw)
				return
			default: // may have been committed: pending until infinity
				op.Return = pendingForever
				op.Metadata = fmt.Sprintf("%s: unknown outcome (status %d, %v)", p.ID, st, err)
				unknown.Add(1)
				fail("revoke", st, err)
				ids[i] = int(nextClient.Add(1))
				retryPause(ctx, st)
			}
			rec.add(op)
		default: // use one
			k := rng.IntN(n)
			mu.Lock()
			m := keys[k]
			mu.Unlock()
			call := rec.now()
			st, raw, err := send(rctx, p, m.secret, "GET", "/v1/account", nil, nil)
			ret := rec.now()
			if err != nil || (st != 200 && st != 401) {
				failed.Add(1) // constrains nothing
				fail("use", st, err)
				retryPause(ctx, st)
				return
			}
			if st == 401 {
				var e api.Error
				_ = json.Unmarshal(raw, &e)
				op := porcupine.Operation{ClientId: ids[i], Input: keyOp{"use", k}, Call: call, Output: false, Return: ret,
					Metadata: fmt.Sprintf("%s: 401 %s", p.ID, e.Code)}
				rec.add(op)
			} else {
				rec.add(porcupine.Operation{ClientId: ids[i], Input: keyOp{"use", k}, Call: call, Output: true, Return: ret, Metadata: p.ID})
			}
			uses.Add(1)
		}
	}, nil)
	hist := rec.history()
	t.Logf("%d operations: %d mints, %d revokes answered (%d of unknown outcome), %d uses; %d requests constrained nothing",
		len(hist), mints.Load(), revokes.Load(), unknown.Load(), uses.Load(), failed.Load())
	t.Logf("requests that constrain nothing (no answer, 503, or a mint refused at the 50-key cap): %v", failedBy)
	if mints.Load() < 20 || revokes.Load() < 10 || uses.Load() < 100 {
		t.Fatalf("too little happened to check")
	}
	checkLinearizable(t, keysModel, "keys", hist)

	// The checker bites: a use answered 200 after its key's revocation
	// returned is illegal.
	bad := append([]porcupine.Operation(nil), hist...)
	bit := false
	for _, rv := range hist {
		in := rv.Input.(keyOp)
		if in.kind != "revoke" || rv.Return == pendingForever {
			continue
		}
		for j, u := range bad {
			if ui := u.Input.(keyOp); ui.kind == "use" && ui.key == in.key && u.Call > rv.Return && !u.Output.(bool) {
				bad[j].Output, bad[j].Metadata, bit = true, "CORRUPTED: really 401", true
				break
			}
		}
		if bit {
			break
		}
	}
	if !bit {
		t.Fatalf("no use after a revocation to corrupt")
	}
	if res := porcupine.CheckOperationsTimeout(keysModel, bad, checkTimeout); res != porcupine.Illegal {
		t.Errorf("a history with a revoked key served was judged %s, want Illegal", res)
	}
}
