package hosting

import (
	"fmt"
	"sync"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// TestConcurrentCreatesOnOneNode (outside-in): customers order at the same
// time; the accounts land on one node whose PHP-FPM master is not running
// yet (a new node, or one whose last pool went). Every account is made and
// serves its own PHP; then all are deleted at once, and all go.
func TestConcurrentCreatesOnOneNode(t *testing.T) {
	w := newWorld(t)
	ctx := hostenv.Ctx(t)
	const n = 4
	created := make([]api.AdminHostingCreated, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			created[i] = w.create(fmt.Sprintf("%sc%d", w.env.Prefix, i), fmt.Sprintf("c%d-%s.test", i, w.env.Prefix))
		})
	}
	wg.Wait()
	for i := range n {
		w.mustSucceed(created[i].Action.ID)
	}
	for i, c := range created {
		user := c.Hosting.Username
		hostenv.PutProbe(t, w.env.SSHAddr, user, c.SFTPPassword, "sftp "+user)
		hostenv.WantSite(t, w.env.HTTPAddr, fmt.Sprintf("c%d-%s.test", i, w.env.Prefix), user, "site of "+user)
	}
	dels := make([]string, n)
	for i, c := range created {
		acc, err := w.client(i%3, w.key).DeleteHosting(ctx, c.Hosting.ID, "")
		if err != nil {
			t.Fatal(err)
		}
		dels[i] = acc.Action.ID
	}
	for i, id := range dels {
		w.mustSucceed(id)
		assertGone(t, w, created[i].Hosting.Username, fmt.Sprintf("c%d-%s.test", i, w.env.Prefix))
	}
}
