// Package sitetls serves the custom domains of a hosting node over TLS from
// one fixed nginx server block: the certificate of each handshake is chosen
// by its SNI from certs/<name>.pem, so attaching a domain is a file written
// and renamed into place, checked by a TLS handshake with that SNI and rolled
// back if the check fails. nginx is never reloaded for a domain.
//
// Two ways of choosing the certificate, both from the same files:
//
//   - ModeVariable: ssl_certificate with a variable (nginx >= 1.15.9). nginx
//     reads and parses the file on every handshake.
//   - ModeLua: ssl_certificate_by_lua (Debian's libnginx-mod-http-lua) with a
//     per-worker cache of parsed certificates and keys, invalidated per name
//     through a shared-dict generation the agent bumps after each change
//     (over a unix socket only root can reach).
//
// $ssl_server_name is raw client input ("../x", "A.TEST"): in both modes only
// a name of the validated shape (lower-case LDH labels, at least two) is
// used in a path; anything else gets the node's default certificate.
package sitetls

import (
	"bytes"
	"fmt"
	"regexp"
	"text/template"
)

// NameRegex is the shape an SNI must have to be used in a path: what
// validate.Domain returns (lower-case LDH labels, at least two).
const NameRegex = `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$`

// DefaultName is the file name (without .pem) of the node's own certificate,
// served when the SNI is absent or malformed. It cannot be a domain name.
const DefaultName = "_default"

// Mode chooses how nginx finds a handshake's certificate.
type Mode string

// Modes.
const (
	ModeVariable Mode = "variable"
	ModeLua      Mode = "lua"
)

// Conf fills the nginx server block template.
type Conf struct {
	Mode     Mode
	Listen   string // "443" or "0.0.0.0:443"
	CertsDir string // where <name>.pem live
	SiteConf string // the per-request site logic to include ("" for none)
	// CtlSocket is the unix socket of the cache invalidation endpoint
	// (ModeLua).
	CtlSocket string
	// Body is served when SiteConf is empty (tests and benchmarks).
	Body string
	// CacheSize is the per-worker cache size in certificates (ModeLua):
	// about 9 KiB each (OpenSSL 3's parsed certificate and key), least
	// recently used evicted; 4096 when zero.
	CacheSize int
	// SkipMap leaves out the $hp_sni map (and the lua cache's shared parts):
	// another block rendered into the same http{} defines them.
	SkipMap bool
}

var (
	safePathRE   = regexp.MustCompile(`^/[A-Za-z0-9/._-]*$`)
	safeListenRE = regexp.MustCompile(`^(\[[0-9a-fA-F:.]+\]|[0-9.]+|\*)?:?[0-9]{1,5}$`)
	safeBodyRE   = regexp.MustCompile(`^[A-Za-z0-9 =$_.:/-]*$`)
)

func (c Conf) check() error {
	switch {
	case c.Mode != ModeVariable && c.Mode != ModeLua:
		return fmt.Errorf("tls mode %q must be %s or %s", c.Mode, ModeVariable, ModeLua)
	case !safeListenRE.MatchString(c.Listen):
		return fmt.Errorf("tls listen address %q must be host:port", c.Listen)
	case !safePathRE.MatchString(c.CertsDir):
		return fmt.Errorf("certs dir %q must be an absolute path of A-Z, a-z, 0-9, '/', '.', '_' and '-'", c.CertsDir)
	case c.SiteConf != "" && !safePathRE.MatchString(c.SiteConf):
		return fmt.Errorf("site conf %q must be an absolute path of A-Z, a-z, 0-9, '/', '.', '_' and '-'", c.SiteConf)
	case c.Mode == ModeLua && !safePathRE.MatchString(c.CtlSocket):
		return fmt.Errorf("tls control socket %q must be an absolute path of A-Z, a-z, 0-9, '/', '.', '_' and '-'", c.CtlSocket)
	case !safeBodyRE.MatchString(c.Body):
		return fmt.Errorf("tls body %q has characters that need quoting", c.Body)
	}
	return nil
}

// MainConf is what ModeLua needs at nginx's top level (load_module).
const MainConf = "load_module /usr/lib/nginx/modules/ndk_http_module.so;\nload_module /usr/lib/nginx/modules/ngx_http_lua_module.so;\n"

var confTemplate = template.Must(template.New("tls.conf").Parse(`# rendered by hostplane-agent (hosting role): TLS for every custom domain, one server block
{{- if not .SkipMap}}
# $ssl_server_name is raw client input: only a validated name becomes part of a path.
map $ssl_server_name $hp_sni {
  "~{{.Regex}}" $ssl_server_name;
  default "{{.Default}}";
}
{{- end}}
{{- if and (eq .Mode "lua") (not .SkipMap)}}
# The certificate cache: each worker keeps the parsed chain and key of the
# names it served (lrucache); an entry is tagged with the name's generation
# in a shared dict, read before the file, which the agent bumps after it
# replaces a file: an entry filled from the old file is never used again.
lua_shared_dict hp_certs 1m;
init_by_lua_block {
  hp_tls_lru = require("resty.lrucache").new({{.CacheSize}})
}
server {
  listen unix:{{.CtlSocket}};
  access_log off;
  location = /invalidate {
    content_by_lua_block {
      local name = ngx.var.arg_name
      if not name or not (name == "{{.Default}}" or ngx.re.find(name, [[{{.Regex}}]], "jo")) then
        return ngx.exit(400)
      end
      ngx.shared.hp_certs:incr(name, 1, 0)
      ngx.say("ok")
    }
  }
}
{{- end}}
server {
  listen {{.Listen}} ssl default_server;
  server_name _;
{{- if eq .Mode "lua"}}
  ssl_certificate {{.CertsDir}}/{{.Default}}.pem;
  ssl_certificate_key {{.CertsDir}}/{{.Default}}.pem;
  ssl_certificate_by_lua_block {
    local ssl = require "ngx.ssl"
    local name = ssl.server_name()
    if not name or not ngx.re.find(name, [[{{.Regex}}]], "jo") then name = "{{.Default}}" end
    local gen = ngx.shared.hp_certs:get(name) or 0
    local e = hp_tls_lru:get(name)
    if not e or e.gen ~= gen then
      local f = io.open("{{.CertsDir}}/" .. name .. ".pem", "rb")
      if not f then return ngx.exit(ngx.ERROR) end
      local pem = f:read("*a")
      f:close()
      local cert, key = ssl.parse_pem_cert(pem), ssl.parse_pem_priv_key(pem)
      if not cert or not key then return ngx.exit(ngx.ERROR) end
      e = { gen = gen, cert = cert, key = key }
      hp_tls_lru:set(name, e)
    end
    ssl.clear_certs()
    local ok, err = ssl.set_cert(e.cert)
    if ok then ok, err = ssl.set_priv_key(e.key) end
    if not ok then ngx.log(ngx.ERR, "hostplane tls: ", err) return ngx.exit(ngx.ERROR) end
  }
{{- else}}
  ssl_certificate {{.CertsDir}}/$hp_sni.pem;
  ssl_certificate_key {{.CertsDir}}/$hp_sni.pem;
{{- end}}
  ssl_protocols TLSv1.2 TLSv1.3;
  # A request's Host must name the certificate's site: no other account's
  # site behind this certificate (421 Misdirected Request).
  if ($hp_sni != $host) { return 421; }
{{- if .SiteConf}}
  include {{.SiteConf}};
{{- else}}
  location / { return 200 "{{.Body}}"; }
{{- end}}
}
`))

// Render returns the server block (an http{}-level include).
func Render(c Conf) ([]byte, error) {
	if c.Mode == "" {
		c.Mode = ModeVariable
	}
	if c.CacheSize <= 0 {
		c.CacheSize = 4096
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	err := confTemplate.Execute(&b, struct {
		Conf
		Regex, Default string
	}{c, NameRegex, DefaultName})
	return b.Bytes(), err
}
