package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/pkg/client"
)

// TestAdminBackupFailingMidwayIsNoBackup: a backup whose copy fails after
// the leader has sent the 200 and part of the state (a read error of the
// database, say) reaches the client as a broken stream, not as a whole
// copy: pkg/client's BackupWith (hostplanectl's) returns an error. One that
// fails before anything was sent is the API's JSON error. Before, the
// handler logged the error and ended the response as usual: the client got
// a cut copy and success. The failing copy is the test's API's own: another
// API of the process is not touched.
func TestAdminBackupFailingMidwayIsNoBackup(t *testing.T) {
	w := newWHAPI(t)
	admin := adminURL(t, w.a)

	// Whole: the copy as the FSM writes it.
	adm := adminClient(admin)
	var whole countWriter
	if _, err := adm.BackupWith(context.Background(), &whole, false); err != nil || whole.n == 0 {
		t.Fatalf("a backup: %d bytes, %v", whole.n, err)
	}

	// Cut: part of it sent, then the copy fails.
	w.a.backupState = func(s *fsm.FSM, out io.Writer, label func(uint64)) error {
		label(7)
		if _, err := out.Write(make([]byte, 8192)); err != nil {
			return err
		}
		return errors.New("read fsm.db: input/output error")
	}
	var cut countWriter
	info, err := adm.BackupWith(context.Background(), &cut, false)
	if err == nil {
		t.Fatalf("a backup whose copy failed after %d bytes: success (%+v); want an error", cut.n, info)
	}
	t.Logf("a copy failing after 8192 bytes: %d bytes received, %v", cut.n, err)
	// The failing copy is that API's alone: another coordinator's API in
	// the same process (tests run several) still backs up whole.
	adm2 := adminClient(adminURL(t, newWHAPI(t).a))
	var other countWriter
	if _, err := adm2.BackupWith(context.Background(), &other, false); err != nil || other.n == 0 {
		t.Fatalf("another API's backup while the first's copy fails: %d bytes, %v", other.n, err)
	}

	// Failed before a byte: the JSON error.
	w.a.backupState = func(*fsm.FSM, io.Writer, func(uint64)) error {
		return errors.New("begin read transaction: too many open files")
	}
	resp, err := http.Get(admin + "/admin/cluster/backup")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("a backup failing before any byte: %s %s %q; want the JSON 500", resp.Status, resp.Header.Get("Content-Type"), body)
	}
}

type countWriter struct{ n int }

func (c *countWriter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }

// adminClient is pkg/client's Admin (hostplanectl's) of the admin API served
// at base (adminURL).
func adminClient(base string) *client.Admin {
	return &client.Admin{HTTP: &http.Client{Transport: rewrite{base}}}
}

// rewrite sends the admin client's requests (to http://admin) to base.
type rewrite struct{ base string }

func (r rewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	u := *req.URL
	u.Scheme, u.Host = "http", r.base[len("http://"):]
	req = req.Clone(req.Context())
	req.URL, req.Host = &u, u.Host
	return http.DefaultTransport.RoundTrip(req)
}
