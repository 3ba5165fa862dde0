package fsm

import (
	"errors"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestProductPutIfUpdatedAt: an update sent onto the product as read
// (IfUpdatedAt: its updated_at then) applies while the product is still
// that; after another change it is a *ChangedError (a conflict) with
// nothing changed, from semantics level 2. At level 1 (a release before it
// replicates too, which does not know the field) it is ignored on every
// replica alike. Replicas byte-identical.
func TestProductPutIfUpdatedAt(t *testing.T) {
	h := newServerHarness(t)
	h.putVPS2(1200)
	read := func() api.AdminProduct {
		t.Helper()
		var p api.AdminProduct
		if err := h.fsms[0].Read(func(r store.ReadTx) (err error) { p, err = r.Product("vps-2"); return }); err != nil {
			t.Fatal(err)
		}
		return p
	}
	update := func(at api.AdminProduct, cents int64) error {
		req := at.ProductRequest
		req.RetailMonthlyUsdCents = cents
		_, err := h.apply(CmdProductPut, ProductPut{Slug: "vps-2", Product: req, IfUpdatedAt: &at.UpdatedAt})
		return err
	}
	stale := read()
	h.putVPS2Update(1300) // another change after that read
	// Level 1: ignored, as a release without the field applies it.
	if err := update(stale, 1400); err != nil {
		t.Fatalf("level 1: %v", err)
	}
	h.must(CmdClusterLevel, ClusterLevel{Level: levelProductPrecondition})
	stale = read()
	h.putVPS2Update(1500)
	var ce *ChangedError
	if err := update(stale, 1600); !errors.As(err, &ce) || !errors.Is(err, ErrConflict) {
		t.Fatalf("level 2, changed after the read: %v, want a ChangedError", err)
	}
	if p := read(); p.RetailMonthlyUsdCents != 1500 {
		t.Fatalf("the refused update left the price %d, want 1500", p.RetailMonthlyUsdCents)
	}
	if err := update(read(), 1700); err != nil {
		t.Fatalf("level 2, unchanged since the read: %v", err)
	}
	if p := read(); p.RetailMonthlyUsdCents != 1700 {
		t.Fatalf("price %d, want 1700", p.RetailMonthlyUsdCents)
	}
	h.replicasSame(func(f *FSM) []byte { return bucketDump(f, store.BucketProducts) })
}

// putVPS2Update updates vps-2 (putVPS2's) to monthly cents, unconditionally.
func (h *whHarness) putVPS2Update(monthly int64) {
	h.t.Helper()
	h.must(CmdProductPut, ProductPut{Slug: "vps-2", Product: api.ProductRequest{Category: api.ProductVPS, NameEn: "VPS 2",
		RetailMonthlyUsdCents: monthly, Specs: api.ProductSpecs{VCPU: 2, RAMMB: 4096, DiskGB: 60}}})
}
