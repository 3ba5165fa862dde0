package hosting

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
	"github.com/hostplane/hostplane/tests/framework/hostenv"
)

// probe13NodeState is what the node's configuration holds: every file and
// symbolic link under the hosting root's nginx/ (not its logs and temp
// paths), hosts/, certs/, accounts/, ssh/ and fpm/*/pool.d, each with its
// mode and its content's hash or its link target.
func probe13NodeState(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	pools, _ := filepath.Glob(filepath.Join(root, "fpm", "*", "pool.d"))
	for _, top := range append(pools, filepath.Join(root, "nginx"), filepath.Join(root, "hosts"), filepath.Join(root, "certs"),
		filepath.Join(root, "accounts"), filepath.Join(root, "ssh")) {
		_ = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() && (d.Name() == "logs" || d.Name() == "tmp") {
				return filepath.SkipDir
			}
			rel, _ := filepath.Rel(root, p)
			info, err := os.Lstat(p)
			if err != nil || rel == "nginx/nginx.pid" {
				return nil
			}
			switch {
			case info.Mode()&fs.ModeSymlink != 0:
				l, _ := os.Readlink(p)
				out[rel] = "-> " + l
			case info.Mode().IsRegular():
				b, _ := os.ReadFile(p)
				h := sha256.Sum256(b)
				out[rel] = info.Mode().String() + " " + hex.EncodeToString(h[:])
			default:
				out[rel] = info.Mode().String()
			}
			return nil
		})
	}
	return out
}

// TestProbe13HostileInputLeavesTheNodeAlone (outside-in, three coordinator
// processes, the real node): a customer's client sends what a careless or
// hostile one would in every field of the hosting routes that write —
// custom domains (upper case, trailing dot, wildcard, IP literals, a
// single label, mixed scripts, bad punycode, paths, NUL and newline, an
// over-long label, the wrong JSON type) and PHP versions (spaces, a patch
// level, a prefix, full-width digits, paths, a number instead of a
// string, versions the node does not have), and password-reset targets.
// Each is a 400 naming its field, and afterwards the node's nginx
// configuration, host routes, certificates, pools, account records and
// sshd include are byte for byte what they were; the account reads as
// before (no custom domain, PHP 8.2) and its site still serves.
func TestProbe13HostileInputLeavesTheNodeAlone(t *testing.T) {
	w := newWorld(t)
	ctx := hostenv.Ctx(t)
	user, domain, created := w.activeSite("h", "h")
	id := created.Hosting.ID
	hostenv.PutProbe(t, w.env.SSHAddr, user, created.SFTPPassword, "sftp")
	before := probe13NodeState(t, w.env.Root)
	if len(before) == 0 || before["hosts/"+domain] == "" {
		t.Fatalf("node state without the account's host route: %v", before)
	}

	send := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, w.c.URL(0)+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+w.key)
		req.Header.Set("Content-Type", "application/json")
		res, b := framework.Fetch(t, nil, req)
		return res.StatusCode, string(b)
	}
	quote := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	p := w.env.Prefix
	domains := []string{
		"Shop-" + p + ".test..", "shop-" + p + ".test..", ".", "*.shop-" + p + ".test", "shop-" + p + ".*", "127.0.0.1", "[::1]",
		"::1", "localhost", "shop", "sh\u043ep-" + p + ".test", "xn--zz-" + p + ".test", "xn--.test", "shop-" + p + ".test/../../etc",
		"../" + p + ".test", "shop-" + p + ".test\x00.evil", "shop-" + p + ".test\nevil.test", "shop " + p + ".test",
		"shop_" + p + ".test", "-shop-" + p + ".test", "shop-" + p + "-.test", "a..test", ".shop.test",
		strings.Repeat("a", 64) + ".test", "ｓｈｏｐ-" + p + ".test", "shop-" + p + ".test;rm -rf", "http://shop-" + p + ".test",
		"shop-" + p + ".test:443", "",
	}
	bodies := []string{}
	for _, d := range domains {
		bodies = append(bodies, `{"domain":`+quote(d)+`}`)
	}
	bodies = append(bodies, `{"domain":123}`, `{"domain":["a.test"]}`, `{"domain":null}`, `{}`)
	for _, b := range bodies {
		if code, body := send("PUT", "/v1/hosting/"+id+"/custom-domain", b); code != http.StatusBadRequest || !strings.Contains(body, "domain") {
			t.Errorf("PUT custom-domain %s: %d %s", b, code, body)
		}
	}
	phps := []string{" 8.2", "8.2 ", "8.2\n", "8.2.0", "v8.2", "php8.2", "8", "8.", ".2", "８.２", "../8.2", "8.2;", "8,2", "9.99", "5.6", ""}
	// Well-formed versions are refused only where the node does not have
	// them: the ones it has are read from the node, not assumed.
	installed, err := w.c.AnyAlive(nil).Admin().AgentNodeDetail(ctx, w.nodeID)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"7.4", "8.0", "8.1", "8.3", "8.4"} {
		if !slices.Contains(installed.PHPVersions, v) {
			phps = append(phps, v)
		}
	}
	bodies = bodies[:0]
	for _, v := range phps {
		bodies = append(bodies, `{"php_version":`+quote(v)+`}`)
	}
	bodies = append(bodies, `{"php_version":8.2}`, `{"php_version":null}`, `{}`)
	for _, b := range bodies {
		if code, body := send("PUT", "/v1/hosting/"+id+"/php", b); code != http.StatusBadRequest || !strings.Contains(body, "php_version") {
			t.Errorf("PUT php %s: %d %s", b, code, body)
		}
	}
	for _, b := range []string{`{"target":"root"}`, `{"target":"SFTP"}`, `{"target":"sftp "}`, `{"target":["db"]}`, `{"target":1}`} {
		if code, body := send("POST", "/v1/hosting/"+id+"/password-reset", b); code != http.StatusBadRequest || !strings.Contains(body, "target") {
			t.Errorf("POST password-reset %s: %d %s", b, code, body)
		}
	}

	// Give a change that slipped through time to reach the node.
	time.Sleep(2 * time.Second)
	after := probe13NodeState(t, w.env.Root)
	for k, v := range after {
		if before[k] != v {
			t.Errorf("node file %s changed: %q -> %q", k, before[k], v)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			t.Errorf("node file %s is gone", k)
		}
	}
	h, err := w.client(2, w.key).HostingAccount(ctx, id)
	if err != nil || h.PHPVersion != "8.2" || h.Status != api.HostingActive || h.ActionID != "" {
		t.Fatalf("account after the hostile input: %+v %v", h, err)
	}
	if _, err := w.client(2, w.key).CustomDomain(ctx, id); api.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("custom domain after the hostile input: %v", err)
	}
	hostenv.WantSite(t, w.env.HTTPAddr, domain, user, "the site after the hostile input")
}
