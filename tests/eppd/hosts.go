package eppd

import (
	"cmp"
	"net/netip"
	"strings"

	"github.com/hostplane/hostplane/internal/eppxml"
	bolt "go.etcd.io/bbolt"
)

// Host objects (RFC 5732), as far as a registrar needs them to delegate
// with <domain:hostObj>: check and create. A host under a domain of this
// registry needs glue addresses; one outside it must have none.

func (ss *session) hostCheck(tx *bolt.Tx, names []string) (answer, error) {
	cd, err := checkNames(tx, bucketHosts, names, func(n string) string {
		if r := checkHostName(n); r != "" || !strings.Contains(n, ".") {
			return cmp.Or(r, "not a host name")
		}
		return ""
	})
	return answer{resData: &eppxml.ResData{HostChk: cd}}, err
}

// superordinate is the registry's domain a host name is under, or "".
func superordinate(tx *bolt.Tx, host string) string {
	for i := strings.IndexByte(host, '.'); i >= 0; i = strings.IndexByte(host, '.') {
		host = host[i+1:]
		if tx.Bucket(bucketDomains).Get([]byte(host)) != nil {
			return host
		}
	}
	return ""
}

func (ss *session) hostCreate(tx *bolt.Tx, h *eppxml.HostCreate) (answer, error) {
	name := lower(h.Name)
	if r := checkHostName(name); r != "" || !strings.Contains(name, ".") {
		return answer{}, refuse(eppxml.CodeValueSyntax, "host name %q: %s", h.Name, cmp.Or(r, "not a host name"))
	}
	if tx.Bucket(bucketHosts).Get([]byte(name)) != nil {
		return answer{}, refuse(eppxml.CodeExists, "host %s exists", name)
	}
	for _, a := range h.Addr {
		ip, err := netip.ParseAddr(strings.TrimSpace(a.Addr))
		if err != nil || (a.IP == "v6") != ip.Is6() || (a.IP != "" && a.IP != "v4" && a.IP != "v6") {
			return answer{}, refuse(eppxml.CodeValueSyntax, "host address %q (ip=%q)", a.Addr, a.IP)
		}
	}
	sup := superordinate(tx, name)
	switch {
	case sup != "" && len(h.Addr) == 0:
		return answer{}, refuse(eppxml.CodeParamMissing, "host %s is under %s, a domain of this registry: glue addresses are required", name, sup)
	case sup == "" && len(h.Addr) > 0:
		return answer{}, refuse(eppxml.CodePolicy, "host %s is outside this registry: no addresses", name)
	}
	roid, err := newROID(tx, "H")
	if err != nil {
		return answer{}, err
	}
	now := ss.srv.nowSec()
	rec := hostRec{Name: name, ROID: roid, Addrs: h.Addr, ClID: ss.clID, CrDate: now}
	if err := putJSON(tx, bucketHosts, name, rec); err != nil {
		return answer{}, err
	}
	return answer{resData: &eppxml.ResData{HostCre: &eppxml.DomainCreData{Name: name, CrDate: fmtTime(now)}}}, nil
}

// checkHostObjs refuses host objects that do not exist.
func checkHostObjs(tx *bolt.Tx, ns *eppxml.NS) error {
	if ns == nil {
		return nil
	}
	for _, h := range ns.HostObj {
		if tx.Bucket(bucketHosts).Get([]byte(lower(h))) == nil {
			return refuse(eppxml.CodeNotExist, "host object %s does not exist (create it first, or send hostAttr)", lower(h))
		}
	}
	return nil
}

// nsOut is a domain's delegation in the form it was given.
func nsOut(d *domainRec) *eppxml.NS {
	if d.HostObj && len(d.NS) > 0 {
		return &eppxml.NS{HostObj: d.NS}
	}
	return eppxml.HostAttrs(d.NS)
}
