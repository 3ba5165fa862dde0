package sitetls

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hostplane/hostplane/agent/internal/hosting"
)

// Options are a hosting node's TLS settings.
type Options struct {
	Listen string // nginx's TLS address ("0.0.0.0:443")
	// CheckAddr is where the agent handshakes to check an attach (the
	// listener's loopback form when empty: 127.0.0.1:<port>).
	CheckAddr string
	Mode      Mode   // ModeLua when empty and nginx's lua module is installed, else ModeVariable
	WebUser   string // nginx workers' group (www-data)
}

// LuaModule is where Debian's libnginx-mod-http-lua puts the module.
const LuaModule = "/usr/lib/nginx/modules/ngx_http_lua_module.so"

// Node is the TLS part of a hosting node: the certificate store and the
// ACME HTTP-01 responder, with their nginx includes in the hosting layout's
// hooks.
type Node struct {
	Store      *Store
	Challenges *Challenges
	Mode       Mode
	srv        *http.Server
	// previous holds, for each include Setup changed, what it replaced (nil:
	// the file did not exist): nginx must reload to take the change, and a
	// failed reload puts these back (Rollback).
	previous map[string][]byte
}

// Changed tells whether Setup changed nginx's includes: a running nginx
// needs one reload (a template change, not a domain) to take them.
func (n *Node) Changed() bool { return len(n.previous) > 0 }

// Rollback puts back the includes Setup replaced (after a failed reload).
func (n *Node) Rollback() error {
	var errs []error
	for p, old := range n.previous {
		if old == nil {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		errs = append(errs, hosting.WriteFileAtomic(p, old, 0o644))
	}
	return errors.Join(errs...)
}

// Setup renders the TLS server block (tls.d), the ACME location (http.d)
// and, for the lua cache, its load_module lines (main.d) into the hosting
// layout, prepares the certificate directory and starts the HTTP-01
// responder on a unix socket. Call it before hosting.Node.Start, whose
// nginx -t and start or reload pick the files up.
func Setup(l hosting.Layout, o Options) (*Node, error) {
	g, err := user.LookupGroup(o.WebUser)
	if err != nil {
		return nil, fmt.Errorf("tls: web group %q: %w", o.WebUser, err)
	}
	gid, _ := strconv.Atoi(g.Gid)
	mode := o.Mode
	if mode == "" {
		mode = ModeVariable
		if _, err := os.Stat(LuaModule); err == nil {
			mode = ModeLua
		}
	}
	check := o.CheckAddr
	if check == "" {
		_, port, err := net.SplitHostPort(o.Listen)
		if err != nil {
			port = o.Listen
		}
		check = net.JoinHostPort("127.0.0.1", port)
	}
	run := filepath.Join(l.NginxDir(), "run")
	if err := os.MkdirAll(run, 0o750); err != nil {
		return nil, err
	}
	if err := os.Chown(run, 0, gid); err != nil {
		return nil, err
	}
	st := &Store{CertsDir: l.CertsDir(), GID: gid, CheckAddr: check}
	if err := st.Prepare(); err != nil {
		return nil, err
	}
	block, err := Render(Conf{Mode: mode, Listen: o.Listen, CertsDir: st.CertsDir, SiteConf: l.SiteConf()})
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(run, "acme.sock")
	acme, err := ChallengeConf(sock)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{l.TLSDir(), l.HTTPDir(), l.MainDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	files := map[string][]byte{
		filepath.Join(l.TLSDir(), "hostplane-tls.conf"):   block,
		filepath.Join(l.HTTPDir(), "hostplane-acme.conf"): acme,
	}
	mainConf := filepath.Join(l.MainDir(), "hostplane-lua.conf")
	previous := map[string][]byte{}
	if mode == ModeLua {
		files[mainConf] = []byte(MainConf)
	} else if old, err := os.ReadFile(mainConf); err == nil {
		if err := os.Remove(mainConf); err != nil {
			return nil, err
		}
		previous[mainConf] = old
	}
	for p, b := range files {
		old, err := os.ReadFile(p)
		if err == nil && bytes.Equal(old, b) {
			continue
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if err := hosting.WriteFileAtomic(p, b, 0o644); err != nil {
			return nil, err
		}
		previous[p] = old // nil when there was none
	}
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("tls: acme responder: %w", err)
	}
	// nginx's workers (the web group) connect; the directory keeps others out.
	if err := os.Chown(sock, 0, gid); err != nil {
		ln.Close()
		return nil, err
	}
	if err := os.Chmod(sock, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	n := &Node{Store: st, Challenges: &Challenges{}, Mode: mode, previous: previous}
	n.srv = &http.Server{Handler: n.Challenges, ReadHeaderTimeout: 5 * time.Second}
	go n.srv.Serve(ln) //nolint:errcheck // ends with Close
	return n, nil
}

// Close stops the HTTP-01 responder.
func (n *Node) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return n.srv.Shutdown(ctx)
}
