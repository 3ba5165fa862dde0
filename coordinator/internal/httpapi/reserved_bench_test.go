package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/store"
)

// BenchmarkDomainNotReserved: the reserved-name check an order, a quote and
// a custom-domain PUT or verify make, with 200 enrolled nodes (IDN
// hostnames, as ASCII conversion is the cost) and 3 configured names, for a
// domain reserved by none. "rebuilt" is the check as it was before the set
// was kept (every node's hostname through IDNA and a scan of the names, each
// call); "kept" is domainNotReserved. The ratio of the two ns/op is the
// saving; both run in the same process on the same state.
func BenchmarkDomainNotReserved(b *testing.B) {
	node := leadingNode(b, b.TempDir())
	a := New(Config{NodeID: "n1", ReservedDomains: []string{"provider.example", "panel.example", "xn--bcher-kva.example"}}, node, slog.New(slog.DiscardHandler), nil, nil)
	apply := func(typ fsm.CommandType, p any) {
		env, _ := fsm.NewEnvelope(typ, time.Now(), p)
		if _, err := a.Apply(context.Background(), env); err != nil {
			b.Fatalf("apply %d: %v", typ, err)
		}
	}
	now := time.Now()
	apply(fsm.CmdNodeCAInit, fsm.NodeCAInit{CertDER: []byte{1}, SealedKey: "v1.x", Fingerprint: "fp"})
	for i := range 200 {
		tok := fmt.Sprintf("jt_%d", i)
		apply(fsm.CmdNodeTokenCreate, fsm.NodeTokenCreate{ID: tok, Hash: "h" + tok, ExpiresAt: now.Add(time.Hour)})
		apply(fsm.CmdNodeEnrol, fsm.NodeEnrol{TokenID: tok, TokenHash: "h" + tok, NodeID: fmt.Sprintf("hv-%03d", i),
			Hostname: fmt.Sprintf("hv-%03d.düğüm.example.net", i), CertSerial: "s" + tok, CertNotAfter: now.Add(24 * time.Hour)})
	}
	const domain = "shop.customer.example.com"
	b.Run("rebuilt", func(b *testing.B) {
		for b.Loop() {
			var by string
			_ = a.state.Read(func(r store.ReadTx) error {
				by = reservedBy(domain, reservedNames(r, a.cfg.ReservedDomains))
				return nil
			})
			if by != "" {
				b.Fatal(by)
			}
		}
	})
	b.Run("kept", func(b *testing.B) {
		for b.Loop() {
			if err := a.domainNotReserved(domain); err != nil {
				b.Fatal(err)
			}
		}
	})
}
