package clustertest

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestUsageShipmentIsForCoordinatorsOnly: the key usage a follower sends the
// leader (POST /internal/usage) is refused to a caller without the cluster
// secret, and a bad body or a follower as the receiver is refused too; none
// of them reaches the key's use count or log. With the secret, the leader
// writes the shipment with its next flush.
func TestUsageShipmentIsForCoordinatorsOnly(t *testing.T) {
	r := newInternalRig(t, "ship@example.com", api.KeyCreateRequest{Name: "shipped"})
	c, acc, k, ld := r.c, r.acc, r.key, r.ld
	post := func(node int, token, body string) (int, string) {
		t.Helper()
		return r.post(t, node, "/internal/usage", token, body)
	}
	at := time.Now().UTC().Format(time.RFC3339Nano)
	ship := func(path string) string {
		return `{"keys":[{"key_id":"` + k.Info.ID + `","last_used_at":"` + at + `","count":1,"entries":[{"at":"` + at + `","m":"GET","p":"` + path + `","s":200,"ip":"192.0.2.7"}]}]}`
	}
	for _, token := range []string{"", "not-the-secret"} {
		if st, body := post(ld, token, ship("/v1/forged")); st != http.StatusUnauthorized {
			t.Errorf("a shipment with cluster token %q: %d %s, want 401", token, st, body)
		}
	}
	if st, body := post(ld, c.Secret, `{"keys":[{"key_id":"`+k.Info.ID+`","last_used_at":"`+at+`","count":0}]}`); st != http.StatusBadRequest || !strings.Contains(body, "count") {
		t.Errorf("a shipment with count 0: %d %s, want 400 naming count", st, body)
	}
	if st, body := post((ld+1)%3, c.Secret, ship("/v1/to-a-follower")); st != http.StatusServiceUnavailable {
		t.Errorf("a shipment to a follower: %d %s, want 503", st, body)
	}
	if st, body := post(ld, c.Secret, ship("/v1/shipped")); st != http.StatusNoContent {
		t.Fatalf("a shipment with the secret: %d %s, want 204", st, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var log []api.KeyUsage
	for {
		var err error
		if log, err = c.Admin(ld).KeyUsage(ctx, k.Info.ID); err == nil && len(log) > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the shipment never reached the usage log: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A refused shipment, had it been taken, would be in the same flush.
	log, err := c.Admin(ld).KeyUsage(ctx, k.Info.ID)
	if err != nil || len(log) != 1 || log[0].Path != "/v1/shipped" || log[0].IP != "192.0.2.7" {
		t.Fatalf("usage log after the shipments: %v %+v, want only /v1/shipped", err, log)
	}
	keys, err := c.Admin(ld).Keys(ctx, acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, ki := range keys {
		if ki.ID == k.Info.ID && ki.UseCount != 1 {
			t.Errorf("use_count %d after one accepted shipment, want 1", ki.UseCount)
		}
	}
}
