package eppd

import (
	"cmp"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"

	"github.com/hostplane/hostplane/internal/eppxml"
	bolt "go.etcd.io/bbolt"
)

// Host objects (RFC 5732), as far as a registrar needs them to delegate
// with <domain:hostObj>: check, create, info, update of the glue addresses
// (add/rem addr; a new name is refused) and delete (refused while a domain
// delegates to the host, 2305). A host under a domain of this
// registry needs glue addresses; one outside it must have none. A host
// attribute (<domain:hostAttr>) inside a domain of this registry, or inside
// the domain being created or updated, needs its <domain:hostAddr> glue
// alike (2003), and so does a host object inside the domain being created
// (made before the domain existed, so without addresses), as real
// registries refuse them.

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
	if err := checkAddrs(h.Addr); err != nil {
		return answer{}, err
	}
	if err := glueRule(tx, name, len(h.Addr), "glue addresses are required"); err != nil {
		return answer{}, err
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

// glueRule is the registry's rule for a host object's glue: one under a
// domain of this registry needs an address (2003, missing says why), one
// outside takes none (2306).
func glueRule(tx *bolt.Tx, name string, addrs int, missing string) error {
	sup := superordinate(tx, name)
	switch {
	case sup != "" && addrs == 0:
		return refuse(eppxml.CodeParamMissing, "host %s is under %s, a domain of this registry: %s", name, sup, missing)
	case sup == "" && addrs > 0:
		return refuse(eppxml.CodePolicy, "host %s is outside this registry: no addresses", name)
	}
	return nil
}

// checkAddrs refuses an address that does not parse as its ip attribute
// says.
func checkAddrs(addrs []eppxml.HostAddr) error {
	for _, a := range addrs {
		ip, err := netip.ParseAddr(strings.TrimSpace(a.Addr))
		if err != nil || (a.IP == "v6") != ip.Is6() || (a.IP != "" && a.IP != "v4" && a.IP != "v6") {
			return refuse(eppxml.CodeValueSyntax, "host address %q (ip=%q)", a.Addr, a.IP)
		}
	}
	return nil
}

// sponsoredHost loads a host object this session's registrar sponsors.
func (ss *session) sponsoredHost(tx *bolt.Tx, name string) (hostRec, error) {
	var rec hostRec
	found, err := getJSON(tx, bucketHosts, name, &rec)
	switch {
	case err != nil:
		return rec, err
	case !found:
		return rec, refuse(eppxml.CodeNotExist, "host %s does not exist", name)
	case rec.ClID != ss.clID:
		return rec, refuse(eppxml.CodeAuthorization, "host %s is sponsored by another registrar", name)
	}
	return rec, nil
}

// linkedBy is a domain that delegates to host, or "".
func linkedBy(tx *bolt.Tx, host string) (string, error) {
	by := ""
	err := tx.Bucket(bucketDomains).ForEach(func(k, v []byte) error {
		var d domainRec
		if err := json.Unmarshal(v, &d); err != nil {
			return err
		}
		if by == "" && d.HostObj && slices.Contains(d.NS, host) {
			by = string(k)
		}
		return nil
	})
	return by, err
}

func (ss *session) hostInfo(tx *bolt.Tx, name string) (answer, error) {
	var rec hostRec
	found, err := getJSON(tx, bucketHosts, name, &rec)
	if err != nil {
		return answer{}, err
	}
	if !found {
		return answer{}, refuse(eppxml.CodeNotExist, "host %s does not exist", name)
	}
	st := []eppxml.Status{{S: "ok"}}
	if by, err := linkedBy(tx, name); err != nil {
		return answer{}, err
	} else if by != "" {
		st = append(st, eppxml.Status{S: "linked"})
	}
	return answer{resData: &eppxml.ResData{HostInf: &eppxml.HostInfData{Name: rec.Name, ROID: rec.ROID, Status: st, Addr: rec.Addrs,
		ClID: rec.ClID, CrDate: fmtTime(rec.CrDate)}}}, nil
}

// hostUpdate adds and removes glue addresses. A host under a domain of this
// registry keeps at least one (2003 otherwise); one outside takes none
// (2306); an address added twice, or removed that the host does not have,
// is a 2306 as real registries answer.
func (ss *session) hostUpdate(tx *bolt.Tx, u *eppxml.HostUpdate) (answer, error) {
	name := lower(u.Name)
	rec, err := ss.sponsoredHost(tx, name)
	if err != nil {
		return answer{}, err
	}
	if u.Chg != nil || u.Add != nil && len(u.Add.Status) > 0 || u.Rem != nil && len(u.Rem.Status) > 0 {
		return answer{}, refuse(eppxml.CodeUnimplOption, "host:update takes addresses only: a new name (host:chg) or a status is not implemented")
	}
	key := func(a eppxml.HostAddr) string {
		ip, _ := netip.ParseAddr(strings.TrimSpace(a.Addr))
		return ip.String()
	}
	if u.Rem != nil {
		if err := checkAddrs(u.Rem.Addr); err != nil {
			return answer{}, err
		}
		for _, a := range u.Rem.Addr {
			i := slices.IndexFunc(rec.Addrs, func(h eppxml.HostAddr) bool { return key(h) == key(a) })
			if i < 0 {
				return answer{}, refuse(eppxml.CodePolicy, "host %s has no address %s to remove", name, a.Addr)
			}
			rec.Addrs = slices.Delete(rec.Addrs, i, i+1)
		}
	}
	if u.Add != nil {
		if err := checkAddrs(u.Add.Addr); err != nil {
			return answer{}, err
		}
		for _, a := range u.Add.Addr {
			if slices.ContainsFunc(rec.Addrs, func(h eppxml.HostAddr) bool { return key(h) == key(a) }) {
				return answer{}, refuse(eppxml.CodePolicy, "host %s has the address %s already", name, a.Addr)
			}
			rec.Addrs = append(rec.Addrs, eppxml.HostAddr{IP: a.IP, Addr: key(a)})
		}
	}
	if err := glueRule(tx, name, len(rec.Addrs), "it keeps at least one glue address"); err != nil {
		return answer{}, err
	}
	return answer{}, putJSON(tx, bucketHosts, name, rec)
}

// hostDelete deletes a host object no domain delegates to.
func (ss *session) hostDelete(tx *bolt.Tx, name string) (answer, error) {
	if _, err := ss.sponsoredHost(tx, name); err != nil {
		return answer{}, err
	}
	if by, err := linkedBy(tx, name); err != nil {
		return answer{}, err
	} else if by != "" {
		return answer{}, refuse(eppxml.CodeAssocProhibits, "host %s is a name server of %s: remove it from the delegation first", name, by)
	}
	return answer{}, tx.Bucket(bucketHosts).Delete([]byte(name))
}

// subordinates are the host objects under domain (it is their
// superordinate domain, RFC 5731 §1.1), by name.
func subordinates(tx *bolt.Tx, domain string) ([]hostRec, error) {
	var out []hostRec
	c := tx.Bucket(bucketHosts).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		name := string(k)
		if !strings.HasSuffix(name, "."+domain) || superordinate(tx, name) != domain {
			continue
		}
		var rec hostRec
		if err := json.Unmarshal(v, &rec); err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
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

// checkGlue refuses a host attribute inside domain (the domain being
// created or updated) or inside another domain of this registry without
// glue addresses, and glue given for one outside them (an address must
// parse as its ip attribute says); and a host object inside domain that
// has no addresses.
func checkGlue(tx *bolt.Tx, domain string, ns *eppxml.NS) error {
	if ns == nil {
		return nil
	}
	for _, h := range ns.HostObj {
		name := lower(h)
		if name != domain && !strings.HasSuffix(name, "."+domain) {
			continue
		}
		var rec hostRec
		found, err := getJSON(tx, bucketHosts, name, &rec)
		if err != nil {
			return err
		}
		if found && len(rec.Addrs) == 0 {
			return refuse(eppxml.CodeParamMissing, "host object %s is inside %s but has no glue addresses: create %s first, then the host with its addresses", name, domain, domain)
		}
	}
	for _, h := range ns.HostAttr {
		name := lower(h.HostName)
		for _, a := range h.HostAddr {
			ip, err := netip.ParseAddr(strings.TrimSpace(a.Addr))
			if err != nil || (a.IP == "v6") != ip.Is6() || (a.IP != "" && a.IP != "v4" && a.IP != "v6") {
				return refuse(eppxml.CodeValueSyntax, "host address %q (ip=%q) of %s", a.Addr, a.IP, name)
			}
		}
		sup := superordinate(tx, name)
		if name == domain || strings.HasSuffix(name, "."+domain) {
			sup = domain
		}
		switch {
		case sup != "" && len(h.HostAddr) == 0:
			return refuse(eppxml.CodeParamMissing, "name server %s is inside %s: glue addresses (hostAddr) are required", name, sup)
		case sup == "" && len(h.HostAddr) > 0:
			return refuse(eppxml.CodePolicy, "name server %s is outside this registry's domains: no addresses", name)
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
