package upgrade

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
	"github.com/hostplane/hostplane/tests/framework"
	bolt "go.etcd.io/bbolt"
)

// preWALFixture is testdata/prewal-cluster.tar.gz: the data directories of a
// three-coordinator cluster written by the build before the Raft log moved
// from raft-boltdb to raft-wal (b2c6323^), made by scripts/make-prewal-fixture.sh.
const preWALFixture = "testdata/prewal-cluster.tar.gz"

// preWALManifest is the fixture's manifest.json: what the old cluster held
// when it was stopped.
type preWALManifest struct {
	BuiltFrom       string `json:"built_from"`
	ClusterSecret   string `json:"cluster_secret"`
	AccountID       string `json:"account_id"`
	AccountEmail    string `json:"account_email"`
	APIKey          string `json:"api_key"`
	TicketID        string `json:"ticket_id"`
	Tickets         int    `json:"tickets"`
	BalanceUsdCents int64  `json:"balance_usd_cents"`
	Term            uint64 `json:"term"`
	LastIndex       uint64 `json:"last_index"`
	CommitIndex     uint64 `json:"commit_index"`
	Nodes           map[string]struct {
		API  string `json:"api"`
		Raft string `json:"raft"`
	} `json:"nodes"`
}

// boltLog is what a node's raft.db held: its term, its log's bounds and the
// file's checksum.
type boltLog struct {
	term        uint64
	first, last uint64
	sum         [32]byte
}

const migratedMsg = "migrated the raft log from raft.db to the WAL"

// TestPreWALClusterMigrates starts the current coordinator on the data of a
// real pre-WAL cluster (raft.db written by raft-boltdb): every node migrates
// its log once, the cluster elects a leader in a new term, the old state reads
// back on every node with the old API key (c3 has no fsm.db in the fixture, so
// it rebuilds its state from the migrated log alone), a new write reaches
// every node, the WAL holds every committed entry of raft.db, and a second
// start does not migrate again. Then the README's rollback puts every node
// back at the old state, and a write after it is applied everywhere.
func TestPreWALClusterMigrates(t *testing.T) {
	bin := framework.Coordinator(t)
	began := time.Now()
	root := t.TempDir()
	extractTarGz(t, preWALFixture, root)
	dir := filepath.Join(root, "prewal")
	var m preWALManifest
	if err := json.Unmarshal([]byte(framework.ReadFile(t, filepath.Join(dir, "manifest.json"))), &m); err != nil {
		t.Fatalf("fixture manifest: %v", err)
	}
	ids := []string{"c1", "c2", "c3"}
	old := map[string]boltLog{}
	var oldTerm uint64
	for _, id := range ids {
		raftDir := filepath.Join(dir, id, "raft")
		if _, err := os.Stat(filepath.Join(raftDir, "raft-wal")); err == nil {
			t.Fatalf("fixture %s already has raft-wal/", id)
		}
		old[id] = readBoltLog(t, filepath.Join(raftDir, "raft.db"))
		oldTerm = max(oldTerm, old[id].term)
		t.Logf("fixture %s (built from %s): raft.db term %d, log %d..%d", id, m.BuiltFrom, old[id].term, old[id].first, old[id].last)
	}
	if oldTerm != m.Term || old["c1"].last < m.CommitIndex {
		t.Fatalf("fixture raft.db files (term %d, c1's log ends at %d) disagree with its manifest (term %d, commit %d)",
			oldTerm, old["c1"].last, m.Term, m.CommitIndex)
	}

	c := &framework.ProcessCluster{Dir: dir}
	for i, id := range ids {
		n, ok := m.Nodes[id]
		if !ok {
			t.Fatalf("fixture manifest names no node %s", id)
		}
		for _, a := range []string{n.API, n.Raft} {
			ln, err := net.Listen("tcp", a)
			if err != nil {
				t.Fatalf("the fixture's Raft configuration names %s, which is not free here: %v", a, err)
			}
			ln.Close()
		}
		p := &framework.CoordinatorProcess{ID: id, DataDir: filepath.Join(dir, id), APIAddr: n.API, RaftAddr: n.Raft, Bin: bin}
		// The flags the old cluster ran with (scripts/make-prewal-fixture.sh).
		p.Args = []string{"run", "--node-id", id, "--data-dir", p.DataDir, "--api-addr", n.API, "--raft-addr", n.Raft,
			"--metrics-addr", "", fmt.Sprintf("--bootstrap=%v", i == 0), "--bootstrap-account=false",
			"--cluster-secret", m.ClusterSecret, "--webhook-kek-file", filepath.Join(dir, "kek"),
			"--rate-limit", "1000000", "--log-format", "text"}
		c.Nodes = append(c.Nodes, p)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			for _, p := range c.Nodes {
				t.Logf("--- tail of coordinator %s log:\n%s", p.ID, framework.Tail(p.LogPath(), 40))
			}
		}
	})
	start := func() {
		t.Helper()
		if err := c.StartAll(30 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	stop := func() {
		t.Helper()
		for _, p := range c.Nodes {
			p.Stop()
		}
	}

	// First start: every node migrates.
	start()
	t.Logf("%v: started and settled", time.Since(began).Round(time.Millisecond))
	for _, id := range ids {
		checkMigrated(t, filepath.Join(dir, id), old[id])
		if n, entries, last := migrations(t, filepath.Join(dir, id+".log")); n != 1 || entries != old[id].last-old[id].first+1 || last != old[id].last {
			t.Fatalf("%s logged %d migrations (the last of %d entries through index %d), want 1 of %d through %d",
				id, n, entries, last, old[id].last-old[id].first+1, old[id].last)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ld := c.WaitLeader(10 * time.Second)
	st, err := c.Admin(ld).ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Raft's term only grows: the first election on the migrated log is in a
	// term past every one the old cluster reached.
	if st.Term <= oldTerm {
		t.Fatalf("leader %s elected in term %d, not past the old cluster's term %d", st.NodeID, st.Term, oldTerm)
	}
	t.Logf("leader %s in term %d (old term %d)", st.NodeID, st.Term, oldTerm)
	for i, id := range ids {
		s, err := c.Admin(i).ClusterStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s.LastIndex < old[id].last {
			t.Fatalf("%s's log ends at %d, before the %d raft.db held", id, s.LastIndex, old[id].last)
		}
	}
	for i := range c.Nodes {
		checkOldState(t, c.URL(i), m, m.Tickets)
	}
	// A new write, read back on every node from its own state.
	cl := c.Client(0, m.APIKey)
	tk, err := cl.CreateTicket(ctx, api.TicketCreateRequest{Subject: "after the WAL", Message: "written by the new build"}, "prewal-new-1")
	if err != nil {
		t.Fatalf("new write: %v", err)
	}
	for i := range c.Nodes {
		waitStaleTicket(t, c.URL(i), m.APIKey, tk.ID, "after the WAL")
	}
	t.Logf("%v: state read back, new write on every node", time.Since(began).Round(time.Millisecond))
	stop()
	t.Logf("%v: stopped", time.Since(began).Round(time.Millisecond))
	// Every committed entry of raft.db is in the WAL, as it was.
	for _, id := range ids {
		compareLogs(t, filepath.Join(dir, id, "raft"), min(old[id].last, m.CommitIndex))
	}

	// Second start: nothing to migrate, the old and the new state are there.
	start()
	t.Logf("%v: second start settled", time.Since(began).Round(time.Millisecond))
	for _, id := range ids {
		checkMigrated(t, filepath.Join(dir, id), old[id])
		if n, _, _ := migrations(t, filepath.Join(dir, id+".log")); n != 1 {
			t.Fatalf("%s logged %d migrations after its second start, want 1", id, n)
		}
	}
	for i := range c.Nodes {
		checkOldState(t, c.URL(i), m, m.Tickets+1)
		if _, err := c.Client(i, m.APIKey).Ticket(ctx, tk.ID); err != nil {
			t.Fatalf("node %d: the ticket written after the migration: %v", i, err)
		}
	}
	stop()
	t.Logf("%v: stopped again", time.Since(began).Round(time.Millisecond))

	// The README's rollback, the whole cluster stopped: raft-wal/ and fsm.db
	// removed, raft.db.pre-wal renamed back to raft.db (and the snapshots taken
	// since the migration removed: there are none, the threshold is 8192
	// entries). The current build stands in for the old one: it migrates raft.db
	// again, and then runs the same FSM as the old build (b2c6323 changed none
	// of it). Every node is back at the old state: the ticket written since is
	// gone, and a new write is applied everywhere.
	for _, id := range ids {
		rd := filepath.Join(dir, id, "raft")
		if snaps, _ := os.ReadDir(filepath.Join(rd, "snapshots", "snapshots")); len(snaps) > 0 {
			t.Fatalf("%s took a snapshot since the migration (%s): this check does not remove it", id, snaps[0].Name())
		}
		for _, err := range []error{os.RemoveAll(filepath.Join(rd, "raft-wal")), os.Remove(filepath.Join(rd, "fsm.db")),
			os.Rename(filepath.Join(rd, "raft.db.pre-wal"), filepath.Join(rd, "raft.db"))} {
			if err != nil {
				t.Fatalf("roll %s back: %v", id, err)
			}
		}
	}
	start()
	t.Logf("%v: rolled back, started and settled", time.Since(began).Round(time.Millisecond))
	for i, id := range ids {
		if n, _, _ := migrations(t, filepath.Join(dir, id+".log")); n != 2 {
			t.Fatalf("%s logged %d migrations after the rollback, want 2", id, n)
		}
		checkOldState(t, c.URL(i), m, m.Tickets)
		// The ticket written after the migration is gone.
		waitStaleGone(t, c.URL(i), m.APIKey, "/v1/tickets/"+tk.ID)
	}
	tk2, err := cl.CreateTicket(ctx, api.TicketCreateRequest{Subject: "after the rollback", Message: "written again"}, "prewal-rollback-1")
	if err != nil || tk2.ID == "" {
		t.Fatalf("write after the rollback: %+v, %v", tk2, err)
	}
	for i := range c.Nodes {
		waitStaleTicket(t, c.URL(i), m.APIKey, tk2.ID, "after the rollback")
	}
	stop()
	t.Logf("%v: stopped", time.Since(began).Round(time.Millisecond))
}

// extractTarGz unpacks a gzipped tarball of directories and regular files into dst.
func extractTarGz(t *testing.T, archive, dst string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", archive, err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", archive, err)
		}
		if !filepath.IsLocal(h.Name) {
			t.Fatalf("%s: entry %q leaves the directory", archive, h.Name)
		}
		p := filepath.Join(dst, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o700)
		case tar.TypeReg:
			var out *os.File
			if out, err = os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, os.FileMode(h.Mode)&0o700); err == nil {
				_, err = io.Copy(out, tr)
				if cerr := out.Close(); err == nil {
					err = cerr
				}
			}
		default:
			err = fmt.Errorf("entry %q of type %c", h.Name, h.Typeflag)
		}
		if err != nil {
			t.Fatalf("%s: %v", archive, err)
		}
	}
}

// readBoltLog reads a raft-boltdb file (read-only): its current term, its
// log's bounds, and its checksum.
func readBoltLog(t *testing.T, path string) boltLog {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := openBolt(t, path)
	defer s.Close()
	var l boltLog
	l.sum = sha256.Sum256(b)
	if l.term, err = s.GetUint64([]byte("CurrentTerm")); err != nil {
		t.Fatalf("%s: CurrentTerm: %v", path, err)
	}
	if l.first, err = s.FirstIndex(); err == nil {
		l.last, err = s.LastIndex()
	}
	if err != nil || l.last == 0 {
		t.Fatalf("%s: log %d..%d: %v", path, l.first, l.last, err)
	}
	return l
}

func openBolt(t *testing.T, path string) *raftboltdb.BoltStore {
	t.Helper()
	s, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bolt.Options{Timeout: 5 * time.Second, ReadOnly: true}})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	return s
}

// checkMigrated checks a node's data directory after a start: the WAL in
// place, no raft.db, raft.db.pre-wal as raft.db was, no temporary copy left.
func checkMigrated(t *testing.T, dataDir string, old boltLog) {
	t.Helper()
	raftDir := filepath.Join(dataDir, "raft")
	if fi, err := os.Stat(filepath.Join(raftDir, "raft-wal")); err != nil || !fi.IsDir() {
		t.Fatalf("%s: no raft-wal/ directory: %v", raftDir, err)
	}
	for _, gone := range []string{"raft.db", "raft-wal.tmp"} {
		if _, err := os.Stat(filepath.Join(raftDir, gone)); err == nil {
			t.Fatalf("%s: %s still there", raftDir, gone)
		}
	}
	b, err := os.ReadFile(filepath.Join(raftDir, "raft.db.pre-wal"))
	if err != nil {
		t.Fatalf("%s: raft.db.pre-wal not kept: %v", raftDir, err)
	}
	if sha256.Sum256(b) != old.sum {
		t.Fatalf("%s: raft.db.pre-wal differs from the raft.db the old build left", raftDir)
	}
}

var migratedRe = regexp.MustCompile(regexp.QuoteMeta(migratedMsg) + `.* entries=(\d+) last_index=(\d+)`)

// migrations counts the migrations a coordinator's log reports and returns
// the number of entries the last one copied and the last index it logged
// (README: a rollback removes the snapshots past it).
func migrations(t *testing.T, logPath string) (n int, entries, last uint64) {
	t.Helper()
	for _, line := range strings.Split(framework.ReadFile(t, logPath), "\n") {
		if !strings.Contains(line, migratedMsg) {
			continue
		}
		n++
		entries, last = 0, 0
		if mm := migratedRe.FindStringSubmatch(line); mm != nil {
			entries, _ = strconv.ParseUint(mm[1], 10, 64)
			last, _ = strconv.ParseUint(mm[2], 10, 64)
		}
	}
	return n, entries, last
}

// compareLogs checks, with the node stopped, that its WAL holds raft.db's log
// from its first entry through last as raft.db.pre-wal has it.
func compareLogs(t *testing.T, raftDir string, last uint64) {
	t.Helper()
	old := openBolt(t, filepath.Join(raftDir, "raft.db.pre-wal"))
	defer old.Close()
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(filepath.Join(raftDir, "raft-wal"), wal.WithMetaStore(meta), wal.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		meta.Close()
		t.Fatalf("%s: open the WAL: %v", raftDir, err)
	}
	defer meta.Close() // raft-wal v0.4.0's Close leaves its meta database open
	defer w.Close()
	first, err := old.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	if wf, err := w.FirstIndex(); err != nil || wf != first {
		t.Fatalf("%s: the WAL starts at %d (%v), raft.db at %d", raftDir, wf, err, first)
	}
	for i := first; i <= last; i++ {
		var want, got raft.Log
		if err := old.GetLog(i, &want); err != nil {
			t.Fatalf("%s: raft.db entry %d: %v", raftDir, i, err)
		}
		if err := w.GetLog(i, &got); err != nil {
			t.Fatalf("%s: WAL entry %d (raft.db has %d..%d): %v", raftDir, i, first, last, err)
		}
		if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type ||
			!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) ||
			!got.AppendedAt.Equal(want.AppendedAt) {
			t.Fatalf("%s: entry %d differs: WAL index %d term %d type %v %d+%d bytes appended %v, raft.db index %d term %d type %v %d+%d bytes appended %v",
				raftDir, i, got.Index, got.Term, got.Type, len(got.Data), len(got.Extensions), got.AppendedAt,
				want.Index, want.Term, want.Type, len(want.Data), len(want.Extensions), want.AppendedAt)
		}
	}
}

// checkOldState reads what the old cluster held from one coordinator's own
// state (?consistency=stale), as its customer would see it, waiting for a node
// still catching up; then once more through the leader (a linearizable read).
// The account has tickets tickets by then.
func checkOldState(t *testing.T, base string, m preWALManifest, tickets int) {
	t.Helper()
	waitStale(t, base, m.APIKey, "/v1/account", func(b []byte) string {
		var a api.Account
		if err := json.Unmarshal(b, &a); err != nil || a.ID != m.AccountID || a.Email != m.AccountEmail ||
			a.Name != "Pre-WAL Customer" || a.Country != "DE" {
			return fmt.Sprintf("account: %s", b)
		}
		return ""
	})
	waitStale(t, base, m.APIKey, "/v1/billing/wallet", func(b []byte) string {
		var w api.Wallet
		if err := json.Unmarshal(b, &w); err != nil || w.BalanceUsdCents != m.BalanceUsdCents {
			return fmt.Sprintf("wallet (want %d cents): %s", m.BalanceUsdCents, b)
		}
		return ""
	})
	checkTicket := func(b []byte) string {
		var tk api.Ticket
		if err := json.Unmarshal(b, &tk); err != nil || tk.ID != m.TicketID || tk.Subject != "Written before the WAL" {
			return fmt.Sprintf("ticket: %s", b)
		}
		var msgs []string
		for _, mm := range tk.Messages {
			msgs = append(msgs, mm.Author+"/"+mm.StaffName+": "+mm.Body)
		}
		if got, want := strings.Join(msgs, " | "),
			"customer/: Is my data safe? | staff/Support: Yes: it moves to the WAL on the first start. | customer/: Thanks!"; got != want {
			return fmt.Sprintf("ticket %s messages %q, want %q", tk.ID, got, want)
		}
		return ""
	}
	waitStale(t, base, m.APIKey, "/v1/tickets/"+m.TicketID, checkTicket)
	// Every ticket, the last one written before the stop included.
	waitStale(t, base, m.APIKey, "/v1/tickets?limit=1", func(b []byte) string {
		var p api.Page[api.Ticket]
		if err := json.Unmarshal(b, &p); err != nil || p.Total != tickets {
			return fmt.Sprintf("tickets: total %d, want %d", p.Total, tickets)
		}
		return ""
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tk, err := client.New(base, m.APIKey).Ticket(ctx, m.TicketID)
	if err != nil {
		t.Fatalf("%s: linearizable read of ticket %s: %v", base, m.TicketID, err)
	}
	b, _ := json.Marshal(tk)
	if why := checkTicket(b); why != "" {
		t.Fatalf("%s: linearizable read: %s", base, why)
	}
}

// waitStale GETs path from the coordinator at base with ?consistency=stale
// (its own state, not the leader's) until it answers 200 and check returns ""
// for the body, failing after 10 s.
func waitStale(t *testing.T, base, key, path string, check func(body []byte) string) {
	t.Helper()
	waitStaleStatus(t, base, key, path, func(status int, b []byte) string {
		if status != http.StatusOK {
			return fmt.Sprintf("%d %s", status, b)
		}
		return check(b)
	})
}

// waitStaleTicket is waitStale waiting for ticket id with subject.
func waitStaleTicket(t *testing.T, base, key, id, subject string) {
	t.Helper()
	waitStale(t, base, key, "/v1/tickets/"+id, func(b []byte) string {
		var got api.Ticket
		if err := json.Unmarshal(b, &got); err != nil || got.Subject != subject {
			return fmt.Sprintf("ticket %s: %s", id, b)
		}
		return ""
	})
}

// waitStaleGone is waitStale waiting for a 404.
func waitStaleGone(t *testing.T, base, key, path string) {
	t.Helper()
	waitStaleStatus(t, base, key, path, func(status int, b []byte) string {
		if status != http.StatusNotFound {
			return fmt.Sprintf("%d %s, want 404", status, b)
		}
		return ""
	})
}

func waitStaleStatus(t *testing.T, base, key, path string, check func(status int, body []byte) string) {
	t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var why string
		req, _ := http.NewRequest(http.MethodGet, base+path+sep+"consistency=stale", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := hc.Do(req)
		if err != nil {
			why = err.Error()
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			why = check(resp.StatusCode, b)
		}
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%s (its own state): %s", base, path, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
