// Package eppxml is the EPP wire format: the RFC 5734 frame (a 4-byte
// length prefix) and the XML of the RFC 5730 envelope with the RFC 5731
// domain and RFC 5733 contact mappings, shared by the client
// (coordinator/internal/registrar/epp) and the test registry (tests/eppd).
// RFC 5732 host objects are covered as far as check and create.
//
// Marshalled XML declares each object namespace as the default namespace of
// its element (<check xmlns="urn:ietf:params:xml:ns:domain-1.0">) rather
// than with a prefix (<domain:check xmlns:domain="…">); the two are the same
// document to a namespace-aware parser, which every EPP server and this
// package's decoder are. Decoding matches elements by namespace URI and local
// name, so prefixed documents (the RFC examples) decode too; the tests decode
// examples from the RFCs.
//
// WHOIS privacy has no RFC. It travels in an <extension> element of this
// project's namespace NSPrivacy (announced in the greeting's svcExtension):
//
//	<extension><create xmlns="urn:hostplane:params:xml:ns:privacy-1.0"><enabled>true</enabled></create></extension>
//
// on domain:create, <update> with the same body on domain:update, and
// <infData><enabled>…</enabled></infData> in a domain:info response.
package eppxml

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
)

// The namespaces used.
const (
	NSEPP     = "urn:ietf:params:xml:ns:epp-1.0"
	NSDomain  = "urn:ietf:params:xml:ns:domain-1.0"
	NSContact = "urn:ietf:params:xml:ns:contact-1.0"
	NSHost    = "urn:ietf:params:xml:ns:host-1.0"
	// NSPrivacy is hostplane's WHOIS privacy extension (see the package
	// documentation).
	NSPrivacy = "urn:hostplane:params:xml:ns:privacy-1.0"
)

// A host:check answer has domain:chkData's shape (cd, name avail, reason)
// and host:creData a subset of domain:creData's (name, crDate); the types
// are shared.

// MaxFrame is the largest frame either side accepts (1 MiB); RFC 5734 sets
// no limit, and EPP messages are a few kilobytes.
const MaxFrame = 1 << 20

// ErrFrame is returned for a frame whose length header is impossible.
var ErrFrame = errors.New("epp: bad frame length")

// ReadFrame reads one RFC 5734 data unit: a 32-bit big-endian total length
// (header included) followed by the XML.
func ReadFrame(r io.Reader, max int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 4 || int64(n)-4 > int64(max) {
		return nil, fmt.Errorf("%w: %d", ErrFrame, n)
	}
	b := make([]byte, n-4)
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

// WriteFrame writes b as one data unit in a single Write.
func WriteFrame(w io.Writer, b []byte) error {
	buf := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(buf, uint32(4+len(b)))
	copy(buf[4:], b)
	_, err := w.Write(buf)
	return err
}

// EPP is the root element; exactly one of its fields is set.
type EPP struct {
	XMLName  xml.Name  `xml:"urn:ietf:params:xml:ns:epp-1.0 epp"`
	Hello    *Empty    `xml:"hello"`
	Greeting *Greeting `xml:"greeting"`
	Command  *Command  `xml:"command"`
	Response *Response `xml:"response"`
}

// Empty is an element without content (<hello/>, <logout/>).
type Empty struct{}

// Greeting is the server's greeting (RFC 5730 2.4).
type Greeting struct {
	SvID    string  `xml:"svID"`
	SvDate  string  `xml:"svDate"`
	SvcMenu SvcMenu `xml:"svcMenu"`
	DCP     DCP     `xml:"dcp"`
}

// SvcMenu lists the versions, languages, objects and extensions a server
// offers.
type SvcMenu struct {
	Version      []string      `xml:"version"`
	Lang         []string      `xml:"lang"`
	ObjURI       []string      `xml:"objURI"`
	SvcExtension *SvcExtension `xml:"svcExtension"`
}

// SvcExtension lists extension namespaces.
type SvcExtension struct {
	ExtURI []string `xml:"extURI"`
}

// DCP is the data collection policy, kept as raw XML.
type DCP struct {
	Inner string `xml:",innerxml"`
}

// Command is a client command (RFC 5730 2.5); exactly one verb is set.
type Command struct {
	Login     *Login       `xml:"login"`
	Logout    *Empty       `xml:"logout"`
	Check     *CheckCmd    `xml:"check"`
	Info      *InfoCmd     `xml:"info"`
	Poll      *Poll        `xml:"poll"`
	Transfer  *TransferCmd `xml:"transfer"`
	Create    *CreateCmd   `xml:"create"`
	Delete    *DeleteCmd   `xml:"delete"`
	Renew     *RenewCmd    `xml:"renew"`
	Update    *UpdateCmd   `xml:"update"`
	Extension *Extension   `xml:"extension"`
	ClTRID    string       `xml:"clTRID,omitempty"`
}

// Login opens a session.
type Login struct {
	ClID    string   `xml:"clID"`
	PW      string   `xml:"pw"`
	NewPW   string   `xml:"newPW,omitempty"`
	Options Options  `xml:"options"`
	Svcs    LoginSvc `xml:"svcs"`
}

// Options are the login's protocol version and language.
type Options struct {
	Version string `xml:"version"`
	Lang    string `xml:"lang"`
}

// LoginSvc lists the objects and extensions the client will use.
type LoginSvc struct {
	ObjURI       []string      `xml:"objURI"`
	SvcExtension *SvcExtension `xml:"svcExtension"`
}

// Poll is <poll op="req"/> or <poll op="ack" msgID="…"/>.
type Poll struct {
	Op    string `xml:"op,attr"`
	MsgID string `xml:"msgID,attr,omitempty"`
}

// CheckCmd is <check>.
type CheckCmd struct {
	Domain  *DomainNames `xml:"urn:ietf:params:xml:ns:domain-1.0 check"`
	Contact *ContactIDs  `xml:"urn:ietf:params:xml:ns:contact-1.0 check"`
	Host    *DomainNames `xml:"urn:ietf:params:xml:ns:host-1.0 check"`
}

// InfoCmd is <info>.
type InfoCmd struct {
	Domain  *DomainInfo `xml:"urn:ietf:params:xml:ns:domain-1.0 info"`
	Contact *ContactRef `xml:"urn:ietf:params:xml:ns:contact-1.0 info"`
	Host    *DomainName `xml:"urn:ietf:params:xml:ns:host-1.0 info"`
}

// TransferCmd is <transfer op="…">.
type TransferCmd struct {
	Op     string          `xml:"op,attr"`
	Domain *DomainTransfer `xml:"urn:ietf:params:xml:ns:domain-1.0 transfer"`
}

// CreateCmd is <create>.
type CreateCmd struct {
	Domain  *DomainCreate  `xml:"urn:ietf:params:xml:ns:domain-1.0 create"`
	Contact *ContactCreate `xml:"urn:ietf:params:xml:ns:contact-1.0 create"`
	Host    *HostCreate    `xml:"urn:ietf:params:xml:ns:host-1.0 create"`
}

// HostCreate is host:create (RFC 5732): a name server object, with glue
// addresses when it is under a domain of the registry.
type HostCreate struct {
	Name string     `xml:"name"`
	Addr []HostAddr `xml:"addr"`
}

// DeleteCmd is <delete>.
type DeleteCmd struct {
	Domain  *DomainName `xml:"urn:ietf:params:xml:ns:domain-1.0 delete"`
	Contact *ContactRef `xml:"urn:ietf:params:xml:ns:contact-1.0 delete"`
	Host    *DomainName `xml:"urn:ietf:params:xml:ns:host-1.0 delete"`
}

// RenewCmd is <renew>.
type RenewCmd struct {
	Domain *DomainRenew `xml:"urn:ietf:params:xml:ns:domain-1.0 renew"`
}

// UpdateCmd is <update>.
type UpdateCmd struct {
	Domain  *DomainUpdate  `xml:"urn:ietf:params:xml:ns:domain-1.0 update"`
	Contact *ContactUpdate `xml:"urn:ietf:params:xml:ns:contact-1.0 update"`
	Host    *HostUpdate    `xml:"urn:ietf:params:xml:ns:host-1.0 update"`
}

// HostUpdate is host:update (RFC 5732): glue addresses (and statuses)
// added and removed, and a new name (<host:chg>; hostplane sends none).
type HostUpdate struct {
	Name string      `xml:"name"`
	Add  *HostAddRem `xml:"add"`
	Rem  *HostAddRem `xml:"rem"`
	Chg  *HostChg    `xml:"chg"`
}

// HostChg is host:chg: the host's new name.
type HostChg struct {
	Name string `xml:"name"`
}

// HostAddRem is host:add or host:rem.
type HostAddRem struct {
	Addr   []HostAddr `xml:"addr"`
	Status []Status   `xml:"status"`
}

// Extension carries hostplane's privacy extension; other extensions are
// ignored.
type Extension struct {
	PrivacyCreate *Privacy `xml:"urn:hostplane:params:xml:ns:privacy-1.0 create"`
	PrivacyUpdate *Privacy `xml:"urn:hostplane:params:xml:ns:privacy-1.0 update"`
	PrivacyInfo   *Privacy `xml:"urn:hostplane:params:xml:ns:privacy-1.0 infData"`
}

// Privacy is the body of the privacy extension's elements.
type Privacy struct {
	Enabled bool `xml:"enabled"`
}

// DomainNames is a list of names (domain:check).
type DomainNames struct {
	Names []string `xml:"name"`
}

// DomainName is one name (domain:delete).
type DomainName struct {
	Name string `xml:"name"`
}

// DomainInfo is domain:info.
type DomainInfo struct {
	Name     HostsName `xml:"name"`
	AuthInfo *AuthInfo `xml:"authInfo"`
}

// HostsName is <domain:name hosts="all">.
type HostsName struct {
	Hosts string `xml:"hosts,attr,omitempty"`
	Name  string `xml:",chardata"`
}

// AuthInfo holds an auth code (password).
type AuthInfo struct {
	PW string `xml:"pw"`
}

// Period is a registration period.
type Period struct {
	Unit  string `xml:"unit,attr"`
	Value int    `xml:",chardata"`
}

// NS is a domain's delegation: host objects (hostObj) or attributes
// (hostAttr); hostplane's client sends hostAttr.
type NS struct {
	HostObj  []string   `xml:"hostObj"`
	HostAttr []HostAttr `xml:"hostAttr"`
}

// HostAttr is one name server given by name (and glue addresses).
type HostAttr struct {
	HostName string     `xml:"hostName"`
	HostAddr []HostAddr `xml:"hostAddr"`
}

// HostAddr is a glue address.
type HostAddr struct {
	IP   string `xml:"ip,attr,omitempty"`
	Addr string `xml:",chardata"`
}

// Names returns the name server host names of ns.
func (ns *NS) Names() []string {
	if ns == nil {
		return nil
	}
	out := append([]string(nil), ns.HostObj...)
	for _, h := range ns.HostAttr {
		out = append(out, h.HostName)
	}
	return out
}

// HostAttrs is the delegation to names as host attributes (nil for none).
func HostAttrs(names []string) *NS {
	if len(names) == 0 {
		return nil
	}
	out := &NS{}
	for _, h := range names {
		out.HostAttr = append(out.HostAttr, HostAttr{HostName: h})
	}
	return out
}

// DomainContact is <domain:contact type="admin">id</domain:contact>.
type DomainContact struct {
	Type string `xml:"type,attr"`
	ID   string `xml:",chardata"`
}

// Status is <domain:status s="…"/>.
type Status struct {
	S    string `xml:"s,attr"`
	Lang string `xml:"lang,attr,omitempty"`
	Text string `xml:",chardata"`
}

// DomainCreate is domain:create.
type DomainCreate struct {
	Name       string          `xml:"name"`
	Period     *Period         `xml:"period"`
	NS         *NS             `xml:"ns"`
	Registrant string          `xml:"registrant,omitempty"`
	Contacts   []DomainContact `xml:"contact"`
	AuthInfo   AuthInfo        `xml:"authInfo"`
}

// DomainRenew is domain:renew.
type DomainRenew struct {
	Name       string  `xml:"name"`
	CurExpDate string  `xml:"curExpDate"`
	Period     *Period `xml:"period"`
}

// DomainTransfer is domain:transfer.
type DomainTransfer struct {
	Name     string    `xml:"name"`
	Period   *Period   `xml:"period"`
	AuthInfo *AuthInfo `xml:"authInfo"`
}

// DomainUpdate is domain:update.
type DomainUpdate struct {
	Name string        `xml:"name"`
	Add  *DomainAddRem `xml:"add"`
	Rem  *DomainAddRem `xml:"rem"`
	Chg  *DomainChg    `xml:"chg"`
}

// DomainAddRem is the add or rem part of domain:update.
type DomainAddRem struct {
	NS       *NS             `xml:"ns"`
	Contacts []DomainContact `xml:"contact"`
	Status   []Status        `xml:"status"`
}

// DomainChg is the chg part of domain:update.
type DomainChg struct {
	Registrant *string   `xml:"registrant"`
	AuthInfo   *AuthInfo `xml:"authInfo"`
}

// ContactIDs is a list of contact ids (contact:check).
type ContactIDs struct {
	IDs []string `xml:"id"`
}

// ContactRef is contact:info or contact:delete.
type ContactRef struct {
	ID       string    `xml:"id"`
	AuthInfo *AuthInfo `xml:"authInfo"`
}

// PostalInfo is a contact's postal information.
type PostalInfo struct {
	Type string `xml:"type,attr"`
	Name string `xml:"name"`
	Org  string `xml:"org,omitempty"`
	Addr Addr   `xml:"addr"`
}

// Addr is a postal address.
type Addr struct {
	Street []string `xml:"street"`
	City   string   `xml:"city"`
	SP     string   `xml:"sp,omitempty"`
	PC     string   `xml:"pc,omitempty"`
	CC     string   `xml:"cc"`
}

// ContactCreate is contact:create.
type ContactCreate struct {
	ID         string       `xml:"id"`
	PostalInfo []PostalInfo `xml:"postalInfo"`
	Voice      string       `xml:"voice,omitempty"`
	Email      string       `xml:"email"`
	AuthInfo   AuthInfo     `xml:"authInfo"`
}

// ContactUpdate is contact:update (only chg is used).
type ContactUpdate struct {
	ID  string      `xml:"id"`
	Chg *ContactChg `xml:"chg"`
}

// ContactChg is the chg part of contact:update.
type ContactChg struct {
	PostalInfo []PostalInfo `xml:"postalInfo"`
	Voice      *string      `xml:"voice"`
	Email      *string      `xml:"email"`
}

// Response is a server response (RFC 5730 2.6).
type Response struct {
	Results   []Result   `xml:"result"`
	MsgQ      *MsgQ      `xml:"msgQ"`
	ResData   *ResData   `xml:"resData"`
	Extension *Extension `xml:"extension"`
	TrID      TrID       `xml:"trID"`
}

// Result is one result code with its message.
type Result struct {
	Code     int        `xml:"code,attr"`
	Msg      string     `xml:"msg"`
	ExtValue []ExtValue `xml:"extValue"`
}

// ExtValue explains a result: the offending element and a reason.
type ExtValue struct {
	Value  RawXML `xml:"value"`
	Reason string `xml:"reason"`
}

// RawXML keeps an element's content as XML.
type RawXML struct {
	Inner string `xml:",innerxml"`
}

// MsgQ describes the poll queue.
type MsgQ struct {
	Count int    `xml:"count,attr"`
	ID    string `xml:"id,attr"`
	QDate string `xml:"qDate,omitempty"`
	Msg   string `xml:"msg,omitempty"`
}

// TrID is the transaction identifier pair.
type TrID struct {
	ClTRID string `xml:"clTRID,omitempty"`
	SvTRID string `xml:"svTRID"`
}

// ResData holds the object-specific response data.
type ResData struct {
	DomainChk  *DomainChkData  `xml:"urn:ietf:params:xml:ns:domain-1.0 chkData"`
	DomainInf  *DomainInfData  `xml:"urn:ietf:params:xml:ns:domain-1.0 infData"`
	DomainCre  *DomainCreData  `xml:"urn:ietf:params:xml:ns:domain-1.0 creData"`
	DomainRen  *DomainRenData  `xml:"urn:ietf:params:xml:ns:domain-1.0 renData"`
	DomainTrn  *DomainTrnData  `xml:"urn:ietf:params:xml:ns:domain-1.0 trnData"`
	ContactChk *ContactChkData `xml:"urn:ietf:params:xml:ns:contact-1.0 chkData"`
	ContactInf *ContactInfData `xml:"urn:ietf:params:xml:ns:contact-1.0 infData"`
	ContactCre *ContactCreData `xml:"urn:ietf:params:xml:ns:contact-1.0 creData"`
	HostChk    *DomainChkData  `xml:"urn:ietf:params:xml:ns:host-1.0 chkData"`
	HostCre    *DomainCreData  `xml:"urn:ietf:params:xml:ns:host-1.0 creData"`
	HostInf    *HostInfData    `xml:"urn:ietf:params:xml:ns:host-1.0 infData"`
}

// HostInfData is host:infData: a host object and its glue addresses.
type HostInfData struct {
	Name   string     `xml:"name"`
	ROID   string     `xml:"roid"`
	Status []Status   `xml:"status"`
	Addr   []HostAddr `xml:"addr"`
	ClID   string     `xml:"clID"`
	CrDate string     `xml:"crDate,omitempty"`
	UpDate string     `xml:"upDate,omitempty"`
}

// DomainChkData is domain:chkData.
type DomainChkData struct {
	CD []DomainCD `xml:"cd"`
}

// DomainCD is one name's availability.
type DomainCD struct {
	Name   CheckName `xml:"name"`
	Reason string    `xml:"reason,omitempty"`
}

// CheckName is <domain:name avail="1">…</domain:name> (also contact:id).
type CheckName struct {
	Avail bool   `xml:"avail,attr"`
	Name  string `xml:",chardata"`
}

// DomainInfData is domain:infData.
type DomainInfData struct {
	Name       string          `xml:"name"`
	ROID       string          `xml:"roid"`
	Status     []Status        `xml:"status"`
	Registrant string          `xml:"registrant,omitempty"`
	Contacts   []DomainContact `xml:"contact"`
	NS         *NS             `xml:"ns"`
	Host       []string        `xml:"host"`
	ClID       string          `xml:"clID"`
	CrID       string          `xml:"crID,omitempty"`
	CrDate     string          `xml:"crDate,omitempty"`
	UpID       string          `xml:"upID,omitempty"`
	UpDate     string          `xml:"upDate,omitempty"`
	ExDate     string          `xml:"exDate,omitempty"`
	TrDate     string          `xml:"trDate,omitempty"`
	AuthInfo   *AuthInfo       `xml:"authInfo"`
}

// DomainCreData is domain:creData.
type DomainCreData struct {
	Name   string `xml:"name"`
	CrDate string `xml:"crDate"`
	ExDate string `xml:"exDate,omitempty"`
}

// DomainRenData is domain:renData.
type DomainRenData struct {
	Name   string `xml:"name"`
	ExDate string `xml:"exDate,omitempty"`
}

// DomainTrnData is domain:trnData.
type DomainTrnData struct {
	Name     string `xml:"name"`
	TrStatus string `xml:"trStatus"`
	ReID     string `xml:"reID"`
	ReDate   string `xml:"reDate"`
	AcID     string `xml:"acID"`
	AcDate   string `xml:"acDate"`
	ExDate   string `xml:"exDate,omitempty"`
}

// ContactChkData is contact:chkData.
type ContactChkData struct {
	CD []ContactCD `xml:"cd"`
}

// ContactCD is one contact id's availability.
type ContactCD struct {
	ID     CheckName `xml:"id"`
	Reason string    `xml:"reason,omitempty"`
}

// ContactInfData is contact:infData.
type ContactInfData struct {
	ID         string       `xml:"id"`
	ROID       string       `xml:"roid"`
	Status     []Status     `xml:"status"`
	PostalInfo []PostalInfo `xml:"postalInfo"`
	Voice      string       `xml:"voice,omitempty"`
	Email      string       `xml:"email"`
	ClID       string       `xml:"clID"`
	CrID       string       `xml:"crID,omitempty"`
	CrDate     string       `xml:"crDate,omitempty"`
	UpDate     string       `xml:"upDate,omitempty"`
	AuthInfo   *AuthInfo    `xml:"authInfo"`
}

// ContactCreData is contact:creData.
type ContactCreData struct {
	ID     string `xml:"id"`
	CrDate string `xml:"crDate"`
}

// Marshal encodes e as a complete XML document.
func Marshal(e *EPP) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	if err := xml.NewEncoder(&b).Encode(e); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Unmarshal decodes one EPP document and checks that exactly one of
// hello, greeting, command and response is present, and, for a command,
// exactly one verb.
func Unmarshal(b []byte) (*EPP, error) {
	var e EPP
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	if err := d.Decode(&e); err != nil {
		return nil, fmt.Errorf("epp: xml: %w", err)
	}
	n := 0
	for _, set := range []bool{e.Hello != nil, e.Greeting != nil, e.Command != nil, e.Response != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("epp: document must hold exactly one of hello, greeting, command, response (has %d)", n)
	}
	if c := e.Command; c != nil {
		if v := c.Verbs(); v != 1 {
			return nil, fmt.Errorf("epp: command must hold exactly one verb (has %d)", v)
		}
	}
	return &e, nil
}

// Verbs counts the command verbs set in c.
func (c *Command) Verbs() int {
	n := 0
	for _, set := range []bool{c.Login != nil, c.Logout != nil, c.Check != nil, c.Info != nil, c.Poll != nil,
		c.Transfer != nil, c.Create != nil, c.Delete != nil, c.Renew != nil, c.Update != nil} {
		if set {
			n++
		}
	}
	return n
}
