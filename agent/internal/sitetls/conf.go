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
// 64 entries of about 6.5 KiB (OpenSSL's parsed leaf, ~4.7 KiB, and key;
// an EC key has no provider copy), about 0.4 MiB per worker however many
// names the node serves: what keeps nginx's memory within 10 % of its size
// after 1,000 attaches (BenchmarkMemory: its own pages +4.0-4.4 %; +5.2-5.6 %
// when EC keys had a provider copy, when 96 entries were +10 % of its PSS).
const DefaultCacheSize = 64

// Protocols are the TLS versions the server block accepts (ssl_protocols).
const Protocols = "TLSv1.2 TLSv1.3"

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
	// about 6.5 KiB each (OpenSSL 3's parsed leaf and key; intermediates are
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
# once: the Lua GC does not see the ~6.5 KiB of OpenSSL memory behind each
# entry). Every handshake stats the name's file (one statx, no read) and
# uses the entry only while the file is the version it was parsed from
# (same inode, size, mtime and ctime): a renewed, rolled back or removed
# file is never served from the cache. A miss reads the file with libcrypto
# (its text, and so its key, never becomes a Lua string) and an entry keeps
# the parsed objects only.
init_by_lua_block {
  local ffi = require "ffi"
  local ssl = require "ngx.ssl"
  local C = ffi.C
  -- libcrypto's own parsers, for what ngx.ssl parses slowly on OpenSSL 3.0
  -- (its PEM key reader tries every decoder: ~0.6 ms against ~20 us here)
  -- and reads from the file, so no key material reaches the Lua heap.
  ffi.cdef[[
    void *d2i_X509(void **a, const unsigned char **pp, long length);
    int X509_up_ref(void *x);
    void X509_free(void *x);
    void *OPENSSL_sk_new_null(void);
    void *OPENSSL_sk_value(const void *st, int i);
    int OPENSSL_sk_push(void *st, const void *data);
    void *d2i_ECPrivateKey(void **a, const unsigned char **pp, long length);
    void *d2i_RSAPrivateKey(void **a, const unsigned char **pp, long length);
    void EC_KEY_free(void *k);
    void RSA_free(void *r);
    void *EVP_PKEY_new(void);
    int EVP_PKEY_assign(void *pkey, int type, void *key);
    void EVP_PKEY_free(void *k);
    void *EC_KEY_get0_group(const void *k);
    const void *EC_KEY_get0_public_key(const void *k);
    size_t EC_POINT_point2oct(const void *g, const void *p, int form, unsigned char *buf, size_t len, void *ctx);
    void *X509_get0_pubkey(const void *x);
    void *EVP_PKEY_get0_EC_KEY(const void *pkey);
    void *EC_KEY_dup(const void *k);
    int EC_KEY_set_private_key(void *k, const void *bn);
    void *BN_secure_new(void);
    void *BN_bin2bn(const unsigned char *s, int len, void *ret);
    void BN_clear_free(void *a);
    int memcmp(const void *a, const void *b, size_t n);
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
  ffi.cdef[[ /* one long bracket of nginx's config must fit in 4 KiB */
    void *BIO_new_file(const char *filename, const char *mode);
    int BIO_free(void *a);
    int PEM_read_bio(void *bp, char **name, char **header, unsigned char **data, long *len);
    void CRYPTO_free(void *ptr, const char *file, int line);
    void CRYPTO_clear_free(void *ptr, size_t num, const char *file, int line);
    void ERR_clear_error(void);
    void *d2i_AutoPrivateKey(void **a, const unsigned char **pp, long length);
    const void *EC_KEY_OpenSSL(void);
    void *EC_KEY_METHOD_new(const void *meth);
    int EC_KEY_set_method(void *key, const void *meth);
    int open(const char *path, int flags);
    long read(int fd, void *buf, size_t n);
    int close(int fd);
    void *BIO_new_mem_buf(const void *buf, int len);
    void OPENSSL_cleanse(void *ptr, size_t len);
  ]]
  ffi.cdef[[
    void *EVP_PKEY_asn1_find(void **pe, int type);
    void *EVP_PKEY_asn1_new(int id, int flags, const char *pem_str, const char *info);
    void EVP_PKEY_asn1_copy(void *dst, const void *src);
    typedef int (*hp_pub_decode)(void *pk, const void *pub);
    struct hp_ameth { int pkey_id, pkey_base_id; unsigned long pkey_flags; char *pem_str, *info; hp_pub_decode pub_decode; };
    typedef int (*hp_asn1_meths)(void *e, void **am, const int **nids, int nid);
    int ENGINE_set_pkey_asn1_meths(void *e, hp_asn1_meths f);
    int ENGINE_register_pkey_asn1_meths(void *e);
    void ENGINE_unregister_pkey_asn1_meths(void *e);
    int X509_PUBKEY_get0_param(void **ppkalg, const unsigned char **pk, int *ppklen, void **pa, const void *pub);
    void X509_ALGOR_get0(const void **paobj, int *pptype, const void **ppval, const void *algor);
    int OBJ_obj2nid(const void *o);
    void *EC_KEY_new(void);
    int EC_KEY_set_group(void *key, const void *group);
    int EC_KEY_oct2key(void *key, const unsigned char *buf, size_t len, void *ctx);
    void *EC_GROUP_new_by_curve_name(int nid);
  ]]
  -- Every handshake leaves Lua garbage (its coroutine; a miss a few small
  -- strings): collect continuously rather than when the heap has doubled,
  -- so the heap's high-water mark, which stays resident, stays near what is
  -- live (about 5 % of nginx's memory otherwise).
  collectgarbage("setpause", 100)
  local pp = ffi.new("const unsigned char *[1]")
  -- d2i_X509 on OpenSSL 3.0 decodes a certificate's EC public key through
  -- its provider decoders (~130 us, three quarters of a parse) unless an
  -- engine is registered for EC keys, when it takes libcrypto's own legacy
  -- decoder (d2i_EC_PUBKEY's). An engine that offers no method at all is
  -- registered for the parse only and unregistered before anything else
  -- runs in this single-threaded worker (~25 us in all). Without the
  -- engine API the plain parse is used.
  local x509 = function(d, len) pp[0] = d return C.d2i_X509(nil, pp, len) end
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
    -- The legacy decoder still builds a new P-256 group for each
    -- certificate (~28 us of a parse under load: two Montgomery set-ups).
    -- For the parse only, the engine also offers EC's own ASN.1 method with
    -- its public key decoder replaced: a P-256 key (named curve) is a copy
    -- of one group built here (~1 us) given the certificate's point,
    -- checked on the curve as the default decoder does; any other curve or
    -- form takes the default decoder. The method is libcrypto's EC method
    -- copied whole (EVP_PKEY_asn1_copy); only pub_decode, after the
    -- struct's two ints, flags and two names (OpenSSL 3.0), is replaced,
    -- and only when the copy is seen to match the original there.
    local am = false
    local aok, aerr = pcall(function()
      local def = C.EVP_PKEY_asn1_find(nil, 408)
      local my = C.EVP_PKEY_asn1_new(408, 0, "EC", "hostplane")
      if def == nil or my == nil then error("no asn1 method") end
      C.EVP_PKEY_asn1_copy(my, def)
      local h, dh = ffi.cast("struct hp_ameth *", my), ffi.cast("struct hp_ameth *", def)
      if h.pkey_id ~= 408 or dh.pub_decode == nil or h.pub_decode ~= dh.pub_decode then error("asn1 method layout") end
      local orig = dh.pub_decode
      local group = C.EC_GROUP_new_by_curve_name(415)
      if group == nil then error("no P-256") end
      local pkp, pkl, palg = ffi.new("const unsigned char *[1]"), ffi.new("int[1]"), ffi.new("void *[1]")
      local aoid, pty, pval = ffi.new("const void *[1]"), ffi.new("int[1]"), ffi.new("const void *[1]")
      local dec = ffi.cast("hp_pub_decode", function(pk, pub)
        if C.X509_PUBKEY_get0_param(nil, pkp, pkl, palg, pub) ~= 1 then return 0 end
        C.X509_ALGOR_get0(aoid, pty, pval, palg[0])
        if pty[0] ~= 6 or C.OBJ_obj2nid(pval[0]) ~= 415 then return orig(pk, pub) end
        local k = C.EC_KEY_new()
        if k == nil then return 0 end
        if C.EC_KEY_set_group(k, group) ~= 1 or C.EC_KEY_oct2key(k, pkp[0], pkl[0], nil) ~= 1 or C.EVP_PKEY_assign(pk, 408, k) ~= 1 then
          C.EC_KEY_free(k)
          return 0
        end
        return 1
      end)
      h.pub_decode = dec
      local amcb = ffi.cast("hp_asn1_meths", function(_, m, nids, nid)
        if m == nil then nids[0] = ecnid return 1 end
        if nid == 408 then m[0] = my return 1 end
        return 0
      end)
      if C.ENGINE_set_pkey_asn1_meths(e, amcb) ~= 1 then error("asn1 engine") end
      hp_tls_engine.am = { my = my, group = group, dec = dec, cb = amcb, refs = { pkp, pkl, palg, aoid, pty, pval } }
      am = true
    end)
    if not aok then ngx.log(ngx.NOTICE, "hostplane tls: P-256 certificates parsed with a group each: ", aerr) end
    local plain = x509
    x509 = function(d, len)
      if C.ENGINE_register_pkey_meths(e) ~= 1 then return plain(d, len) end
      local a = am and C.ENGINE_register_pkey_asn1_meths(e) == 1
      pp[0] = d
      local x = C.d2i_X509(nil, pp, len)
      C.ENGINE_unregister_pkey_meths(e)
      if a then C.ENGINE_unregister_pkey_asn1_meths(e) end
      return x
    end
    jit.off(x509) -- it calls back into Lua (cb), which compiled code may not
  end)
  if not ok then ngx.log(ngx.NOTICE, "hostplane tls: certificates parsed without the EC engine: ", err) end
  -- An EC key, built on its certificate's public key. OpenSSL 3.0 builds
  -- a new curve group (~13 us for P-256) for every key it decodes or
  -- converts, where a copy of one takes ~1 us: the private key is a copy of
  -- the leaf's parsed public key (group and point) given the file's private
  -- scalar, so it needs no group of its own, and it compares equal to the
  -- certificate's key without converting that to a provider key (as
  -- SSL_use_PrivateKey's check otherwise does). The file's own
  -- public point must be the certificate's: a key of another certificate
  -- is refused.
  -- tlv reads the DER element at d[o] (before lim): its tag, and the
  -- offset and length of its content.
  local function tlv(d, o, lim)
    if o + 2 > lim then return nil end
    local tag, l, c = d[o], d[o + 1], o + 2
    if l >= 0x80 then
      local nb = l - 0x80
      if nb < 1 or nb > 2 or c + nb > lim then return nil end
      l = 0
      for i = 0, nb - 1 do l = l * 256 + d[c + i] end
      c = c + nb
    end
    if c + l > lim then return nil end
    return tag, c, l
  end
  -- sec1 finds the private scalar and the public point (uncompressed) in
  -- a SEC 1 key (RFC 5915: SEQUENCE { 1, OCTET STRING, [0] curve, [1] BIT
  -- STRING }): their offsets and lengths (the point's are nil when the
  -- key has none).
  local function sec1(d, len)
    local t, c, l = tlv(d, 0, len)
    if t ~= 0x30 then return nil end
    local lim = c + l
    local tv, cv, lv = tlv(d, c, lim)
    if tv ~= 0x02 or lv ~= 1 or d[cv] ~= 1 then return nil end
    local tp, cp, lp = tlv(d, cv + lv, lim)
    if tp ~= 0x04 or lp == 0 then return nil end
    local o = cp + lp
    while o < lim do
      local tx, cx, lx = tlv(d, o, lim)
      if not tx then return nil end
      if tx == 0xa1 then
        local tb, cb, lb = tlv(d, cx, cx + lx)
        if tb ~= 0x03 or lb < 2 or d[cb] ~= 0 then return nil end
        return cp, lp, cb + 1, lb - 1
      end
      o = cx + lx
    end
    return cp, lp -- no public point
  end
  -- wrap returns an EVP_PKEY owning the legacy key k of type nid, or nil
  -- (k freed with free_k).
  local function wrap(k, nid, free_k)
    if k == nil then return nil end
    local pk = C.EVP_PKEY_new()
    if pk == nil or C.EVP_PKEY_assign(pk, nid, k) ~= 1 then
      free_k(k)
      if pk ~= nil then C.EVP_PKEY_free(pk) end
      return nil
    end
    return pk
  end
  local pub = ffi.new("unsigned char[133]")
  -- EC keys are marked as keys of their own method (a copy of libcrypto's
  -- default one, so the same code signs): OpenSSL 3.0 then signs with the
  -- key itself instead of converting it, at its first signature, to a
  -- provider key (a second copy of ~2.2 KiB, and a curve group built
  -- anew: ~10 us in C). Without the method, keys are converted as usual.
  local ecmeth = C.EC_KEY_METHOD_new(C.EC_KEY_OpenSSL())
  if ecmeth == nil then ngx.log(ngx.NOTICE, "hostplane tls: EC keys converted to provider keys (no EC key method)") end
  local function own(k)
    if k ~= nil and ecmeth ~= nil and C.EC_KEY_set_method(k, ecmeth) ~= 1 then
      C.EC_KEY_free(k)
      return nil
    end
    return k
  end
  local function eckey(leaf, d, len)
    local cp, lp, cq, lq = sec1(d, len)
    if not cp or leaf == nil then return nil end
    if not cq then -- parsed alone (a group of its own); SSL_use_PrivateKey checks it
      pp[0] = d
      return wrap(own(C.d2i_ECPrivateKey(nil, pp, len)), 408, C.EC_KEY_free) -- EVP_PKEY_EC
    end
    local ck = C.EVP_PKEY_get0_EC_KEY(C.X509_get0_pubkey(leaf))
    if ck == nil then return nil end
    local g, pt = C.EC_KEY_get0_group(ck), C.EC_KEY_get0_public_key(ck)
    if g == nil or pt == nil then return nil end
    local plen = C.EC_POINT_point2oct(g, pt, 4, pub, 133, nil) -- POINT_CONVERSION_UNCOMPRESSED
    if plen ~= lq or C.memcmp(pub, d + cq, lq) ~= 0 then return nil end -- not this certificate's key
    local bn = C.BN_secure_new()
    if bn == nil then return nil end
    local k = nil
    if C.BN_bin2bn(d + cp, lp, bn) ~= nil then k = C.EC_KEY_dup(ck) end
    if k ~= nil and C.EC_KEY_set_private_key(k, bn) ~= 1 then
      C.EC_KEY_free(k)
      k = nil
    end
    C.BN_clear_free(bn)
    return wrap(own(k), 408, C.EC_KEY_free)
  end
  -- key: an EVP_PKEY (not yet collected) from a key block's DER.
  local function key(leaf, kind, d, len)
    pp[0] = d
    if kind == "EC PRIVATE KEY" then
      return eckey(leaf, d, len)
    elseif kind == "RSA PRIVATE KEY" then
      return wrap(C.d2i_RSAPrivateKey(nil, pp, len), 6, C.RSA_free) -- EVP_PKEY_RSA
    elseif kind == "PRIVATE KEY" then -- PKCS #8 (Ed25519)
      return C.d2i_AutoPrivateKey(nil, pp, len)
    end
    return nil
  end
  -- Intermediates are shared by every entry that sends them (one parsed
  -- copy per worker, at most 32 distinct ones).
  local inter, ninter = {}, 0
  local bname, bhdr = ffi.new("char *[1]"), ffi.new("char *[1]")
  local bdata, blen = ffi.new("unsigned char *[1]"), ffi.new("long[1]")
  -- load reads path's PEM blocks with libcrypto (the file's text, and so
  -- its key, never becomes a Lua string; the key's DER is cleared when
  -- freed) and returns the chain and key, each freed when collected, or nil.
  -- The file is read whole with one read(2) into a buffer of the worker's
  -- (wiped once parsed) rather than through stdio line by line; a file
  -- that does not fit is read from the file.
  local fbuf, fmax = ffi.new("unsigned char[?]", 65536), 65536
  local function readbio(path)
    local fd = C.open(path, 0x80000) -- O_RDONLY | O_CLOEXEC
    if fd < 0 then return nil end
    local got = tonumber(C.read(fd, fbuf, fmax))
    C.close(fd)
    if got < 0 or got >= fmax then
      if got > 0 then C.OPENSSL_cleanse(fbuf, got) end
      return C.BIO_new_file(path, "rb"), 0
    end
    return C.BIO_new_mem_buf(fbuf, got), got
  end
  local function load(path)
    local bio, got = readbio(path)
    if bio == nil then
      if got and got > 0 then C.OPENSSL_cleanse(fbuf, got) end
      C.ERR_clear_error()
      return nil
    end
    local sk = C.OPENSSL_sk_new_null()
    if sk == nil then C.BIO_free(bio) return nil end
    sk = ffi.gc(sk, C.ngx_http_lua_ffi_free_cert)
    local n, pk, bad = 0, nil, false
    while not pk and not bad and C.PEM_read_bio(bio, bname, bhdr, bdata, blen) == 1 do
      local kind, d, len = ffi.string(bname[0]), bdata[0], tonumber(blen[0])
      C.CRYPTO_free(bname[0], nil, 0)
      C.CRYPTO_free(bhdr[0], nil, 0)
      if kind == "CERTIFICATE" then
        local x, der = nil, nil
        if n > 0 then
          der = ffi.string(d, len) -- an intermediate: public
          x = inter[der]
        end
        if x then
          C.X509_up_ref(x)
        else
          x = x509(d, len)
          if x ~= nil and der and ninter < 32 then
            C.X509_up_ref(x)
            inter[der], ninter = x, ninter + 1
          end
        end
        C.CRYPTO_free(d, nil, 0)
        if x == nil then
          bad = true
        elseif C.OPENSSL_sk_push(sk, x) == 0 then
          C.X509_free(x)
          bad = true
        else
          n = n + 1
        end
      else
        pk = n > 0 and key(C.OPENSSL_sk_value(sk, 0), kind, d, len) or nil
        C.CRYPTO_clear_free(d, len, nil, 0)
        bad = pk == nil
      end
    end
    C.BIO_free(bio)
    if got > 0 then C.OPENSSL_cleanse(fbuf, got) end
    C.ERR_clear_error() -- a bad file's errors, not to be taken for the handshake's
    if bad or n == 0 or not pk then
      if pk then C.EVP_PKEY_free(pk) end
      return nil
    end
    return sk, ffi.gc(pk, C.EVP_PKEY_free)
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
    local c, k = load(path)
    if not c then return nil end
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
  ssl_protocols {{.Protocols}};
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
		Regex, Default, Protocols string
	}{c, NameRegex, DefaultName, Protocols})
	return b.Bytes(), err
}
