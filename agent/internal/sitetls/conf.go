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
//     bounded per-worker cache of parsed certificates and keys; each
//     handshake stats the name's file and uses the cached entry only while
//     the file is the version it was parsed from.
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

// DefaultCacheSize bounds each nginx worker's certificate cache (ModeLua):
// 64 entries of about 8 KiB (OpenSSL's parsed leaf, ~4.7 KiB, and key,
// ~2.2 KiB), about 0.5 MiB per worker however many names the node serves:
// what keeps nginx's memory within 10 % of its size after 1,000 attaches
// (BenchmarkMemory: +7 %; 96 entries were +10 %).
const DefaultCacheSize = 64

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
	// Body is served when SiteConf is empty (tests and benchmarks).
	Body string
	// CacheSize is the per-worker cache size in certificates (ModeLua):
	// about 8 KiB each (OpenSSL 3's parsed leaf and key; intermediates are
	// shared), least recently used evicted and freed; DefaultCacheSize when
	// zero. Names past it are read from their file on each handshake.
	CacheSize int
	// SkipMap leaves out the $hp_sni map (and the lua cache's init):
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
# {{.CacheSize}} names it served last (least recently used evicted and freed at
# once: the Lua GC does not see the ~8 KiB of OpenSSL memory behind each
# entry). Every handshake stats the name's file (one statx, no read) and
# uses the entry only while the file is the version it was parsed from
# (same inode, size, mtime and ctime): a renewed, rolled back or removed
# file is never served from the cache. An entry keeps the parsed objects
# only, not the file's text (nor so its key's PEM).
init_by_lua_block {
  local ffi = require "ffi"
  local ssl = require "ngx.ssl"
  local C = ffi.C
  -- libcrypto's own parsers, for what ngx.ssl parses slowly on OpenSSL 3.0
  -- (its PEM key reader tries every decoder: ~0.6 ms against ~20 us here).
  ffi.cdef[[
    void *d2i_X509(void **a, const unsigned char **pp, long length);
    int X509_up_ref(void *x);
    void X509_free(void *x);
    void *OPENSSL_sk_new_null(void);
    int OPENSSL_sk_push(void *st, const void *data);
    void *d2i_ECPrivateKey(void **a, const unsigned char **pp, long length);
    void *d2i_RSAPrivateKey(void **a, const unsigned char **pp, long length);
    void EC_KEY_free(void *k);
    void RSA_free(void *r);
    void *EVP_PKEY_new(void);
    int EVP_PKEY_assign(void *pkey, int type, void *key);
    void EVP_PKEY_free(void *k);
    void *EC_KEY_get0_group(const void *k);
    const void *EC_KEY_get0_private_key(const void *k);
    const void *EC_KEY_get0_public_key(const void *k);
    int EC_GROUP_get_curve_name(const void *g);
    const char *OBJ_nid2sn(int n);
    size_t EC_POINT_point2oct(const void *g, const void *p, int form, unsigned char *buf, size_t len, void *ctx);
    void *OSSL_PARAM_BLD_new(void);
    int OSSL_PARAM_BLD_push_utf8_string(void *b, const char *key, const char *v, size_t len);
    int OSSL_PARAM_BLD_push_BN(void *b, const char *key, const void *bn);
    int OSSL_PARAM_BLD_push_octet_string(void *b, const char *key, const void *buf, size_t len);
    void *OSSL_PARAM_BLD_to_param(void *b);
    void OSSL_PARAM_BLD_free(void *b);
    void OSSL_PARAM_free(void *p);
    void *EVP_PKEY_CTX_new_from_name(void *libctx, const char *name, const char *propq);
    int EVP_PKEY_fromdata_init(void *ctx);
    int EVP_PKEY_fromdata(void *ctx, void **ppkey, int selection, void *params);
    typedef int (*hp_pkey_meths)(void *e, void **pm, const int **nids, int nid);
    void *ENGINE_new(void);
    int ENGINE_set_id(void *e, const char *id);
    int ENGINE_set_name(void *e, const char *name);
    int ENGINE_set_pkey_meths(void *e, hp_pkey_meths f);
    int ENGINE_init(void *e);
    int ENGINE_register_pkey_meths(void *e);
    void ENGINE_unregister_pkey_meths(void *e);
    struct hp_statx_ts { int64_t tv_sec; uint32_t tv_nsec; int32_t reserved; };
    struct hp_statx {
      uint32_t stx_mask, stx_blksize; uint64_t stx_attributes;
      uint32_t stx_nlink, stx_uid, stx_gid; uint16_t stx_mode, spare0;
      uint64_t stx_ino, stx_size, stx_blocks, stx_attributes_mask;
      struct hp_statx_ts stx_atime, stx_btime, stx_ctime, stx_mtime;
      uint32_t stx_rdev_major, stx_rdev_minor, stx_dev_major, stx_dev_minor;
      uint64_t spare2[14];
    };
    int statx(int dirfd, const char *path, int flags, unsigned int mask, struct hp_statx *buf);
  ]]
  -- Every handshake leaves Lua garbage (its coroutine; a miss also the
  -- file's text and its base64): collect continuously rather than when the heap
  -- has doubled, so the heap's high-water mark, which stays resident, stays
  -- near what is live (about 5 % of nginx's memory otherwise).
  collectgarbage("setpause", 100)
  local pp = ffi.new("const unsigned char *[1]")
  -- d2i_X509 on OpenSSL 3.0 decodes a certificate's EC public key through
  -- its provider decoders (~130 us, three quarters of a parse) unless an
  -- engine is registered for EC keys, when it takes libcrypto's own legacy
  -- decoder (d2i_EC_PUBKEY's). An engine that offers no method at all is
  -- registered for the parse only and unregistered before anything else
  -- runs in this single-threaded worker (~25 us in all). Without the
  -- engine API the plain parse is used.
  local x509 = function(d) pp[0] = d return C.d2i_X509(nil, pp, #d) end
  local ok, err = pcall(function()
    local ecnid = ffi.new("const int[1]", 408) -- EVP_PKEY_EC
    local cb = ffi.cast("hp_pkey_meths", function(_, pm, nids)
      if pm == nil then nids[0] = ecnid return 1 end
      return 0 -- no method: nothing may use this engine for an operation
    end)
    local e = C.ENGINE_new()
    if e == nil or C.ENGINE_set_id(e, "hostplane-x509") ~= 1 or C.ENGINE_set_name(e, "parse only") ~= 1
      or C.ENGINE_set_pkey_meths(e, cb) ~= 1 or C.ENGINE_init(e) ~= 1 then error("engine set-up failed") end
    hp_tls_engine = { e = e, cb = cb, nid = ecnid } -- kept alive for the worker's life
    local plain = x509
    x509 = function(d)
      if C.ENGINE_register_pkey_meths(e) ~= 1 then return plain(d) end
      pp[0] = d
      local x = C.d2i_X509(nil, pp, #d)
      C.ENGINE_unregister_pkey_meths(e)
      return x
    end
    jit.off(x509) -- it calls back into Lua (cb), which compiled code may not
  end)
  if not ok then ngx.log(ngx.NOTICE, "hostplane tls: certificates parsed without the EC engine: ", err) end
  local function der(b64) return ngx.decode_base64((b64:gsub("%s", ""))) end
  -- Intermediates are shared by every entry that sends them (one parsed
  -- copy per worker, at most 32 distinct ones).
  local inter, ninter = {}, 0
  local function chain(pem)
    local sk = C.OPENSSL_sk_new_null()
    if sk == nil then return nil end
    sk = ffi.gc(sk, C.ngx_http_lua_ffi_free_cert)
    local n = 0
    for b64 in pem:gmatch("%-%-%-%-%-BEGIN CERTIFICATE%-%-%-%-%-(.-)%-%-%-%-%-END CERTIFICATE%-%-%-%-%-") do
      local d = der(b64)
      if not d then return nil end
      local x = n > 0 and inter[d]
      if x then
        C.X509_up_ref(x)
      else
        x = x509(d)
        if x == nil then return nil end
        if n > 0 and ninter < 32 then
          C.X509_up_ref(x)
          inter[d], ninter = x, ninter + 1
        end
      end
      if C.OPENSSL_sk_push(sk, x) == 0 then C.X509_free(x) return nil end
      n = n + 1
    end
    if n == 0 then return nil end
    return sk
  end
  -- An EC key as the provider's own key, built from the SEC 1 key's parts:
  -- one copy. A legacy EC_KEY (EVP_PKEY_assign) gets a second, provider
  -- copy at its first use by TLS: ~2 KiB more per cached entry.
  local ectx = C.EVP_PKEY_CTX_new_from_name(nil, "EC", nil)
  local pub = ffi.new("unsigned char[133]")
  local ppk = ffi.new("void *[1]")
  local function ec(k)
    local g, priv, pt = C.EC_KEY_get0_group(k), C.EC_KEY_get0_private_key(k), C.EC_KEY_get0_public_key(k)
    if ectx == nil or g == nil or priv == nil or pt == nil then return nil end
    local sn = C.OBJ_nid2sn(C.EC_GROUP_get_curve_name(g))
    local plen = C.EC_POINT_point2oct(g, pt, 4, pub, 133, nil) -- POINT_CONVERSION_UNCOMPRESSED
    if sn == nil or plen == 0 then return nil end
    local bld = C.OSSL_PARAM_BLD_new()
    if bld == nil then return nil end
    local params = nil
    if C.OSSL_PARAM_BLD_push_utf8_string(bld, "group", sn, 0) == 1
      and C.OSSL_PARAM_BLD_push_BN(bld, "priv", priv) == 1
      and C.OSSL_PARAM_BLD_push_octet_string(bld, "pub", pub, plen) == 1 then
      params = C.OSSL_PARAM_BLD_to_param(bld)
    end
    C.OSSL_PARAM_BLD_free(bld)
    if params == nil then return nil end
    ppk[0] = nil
    local ok = C.EVP_PKEY_fromdata_init(ectx) == 1 and C.EVP_PKEY_fromdata(ectx, ppk, 0x87, params) == 1 -- EVP_PKEY_KEYPAIR
    C.OSSL_PARAM_free(params) -- the private part is cleared (the key's BIGNUM is a secure one)
    local pk = ppk[0]
    ppk[0] = nil
    if not ok or pk == nil then return nil end
    return ffi.gc(pk, C.EVP_PKEY_free)
  end
  local function key(pem)
    local kind, b64 = pem:match("%-%-%-%-%-BEGIN (%u+) PRIVATE KEY%-%-%-%-%-(.-)%-%-%-%-%-END")
    if kind ~= "EC" and kind ~= "RSA" then return ssl.parse_pem_priv_key(pem) end -- PKCS#8 (Ed25519)
    local d = der(b64)
    if not d then return nil end
    pp[0] = d
    if kind == "EC" then
      local k = C.d2i_ECPrivateKey(nil, pp, #d)
      if k == nil then return nil end
      local pk = ec(k)
      C.EC_KEY_free(k)
      return pk
    end
    local k = C.d2i_RSAPrivateKey(nil, pp, #d)
    if k == nil then return nil end
    local pk = C.EVP_PKEY_new()
    if pk == nil or C.EVP_PKEY_assign(pk, 6, k) ~= 1 then -- EVP_PKEY_RSA
      C.RSA_free(k)
      if pk ~= nil then C.EVP_PKEY_free(pk) end
      return nil
    end
    return ffi.gc(pk, C.EVP_PKEY_free)
  end
  local function free(e)
    C.ngx_http_lua_ffi_free_cert(ffi.gc(e.cert, nil))
    C.EVP_PKEY_free(ffi.gc(e.key, nil))
  end
  -- LRU: a map and a ring through a sentinel, most recent first.
  local max, n, map = {{.CacheSize}}, 0, {}
  local ring = {}
  ring.next, ring.prev = ring, ring
  local function unlink(e) e.prev.next, e.next.prev = e.next, e.prev end
  local function front(e)
    e.next, e.prev = ring.next, ring
    ring.next.prev = e
    ring.next = e
  end
  hp_tls = {}
  -- The file's identity: statx (one system call, the same layout on every
  -- architecture) instead of reading it. The store replaces a file by
  -- renaming a new one over it, with an mtime later than any earlier
  -- version of that name (Store.write): a changed file always has another
  -- inode or mtime.
  local stx = ffi.new("struct hp_statx")
  local function stat(path)
    if C.statx(-100, path, 0, 0x7ff, stx) ~= 0 then return nil end -- AT_FDCWD, STATX_BASIC_STATS
    return tonumber(stx.stx_ino), tonumber(stx.stx_size), tonumber(stx.stx_mtime.tv_sec),
      stx.stx_mtime.tv_nsec, tonumber(stx.stx_ctime.tv_sec), stx.stx_ctime.tv_nsec
  end
  -- hp_tls.get returns name's parsed chain and key (nil when its file is
  -- missing or bad): from the cache while dir/name.pem is unchanged.
  function hp_tls.get(dir, name)
    local path = dir .. "/" .. name .. ".pem"
    local ino, size, ms, mns, cs, cns = stat(path)
    local e = map[name]
    if e and ino and e.ino == ino and e.size == size and e.ms == ms and e.mns == mns and e.cs == cs and e.cns == cns then
      unlink(e)
      front(e)
      return e
    end
    if e then
      unlink(e)
      map[name], n = nil, n - 1
      free(e)
    end
    if not ino then return nil end
    -- Read after the stat: the content is that version or a later one,
    -- whose own identity differs, so the next handshake parses it again.
    local f = io.open(path, "rb")
    if not f then return nil end
    local pem = f:read("*a")
    f:close()
    if not pem then return nil end
    local c, k = chain(pem), key(pem)
    if not c or not k then return nil end
    e = { name = name, cert = c, key = k, ino = ino, size = size, ms = ms, mns = mns, cs = cs, cns = cns }
    map[name], n = e, n + 1
    front(e)
    if n > max then
      local old = ring.prev
      unlink(old)
      map[old.name], n = nil, n - 1
      free(old)
    end
    return e
  end
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
    local e = hp_tls.get("{{.CertsDir}}", name)
    if not e then return ngx.exit(ngx.ERROR) end
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
		c.CacheSize = DefaultCacheSize
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
