package ipam

import (
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	ok4 := Pool{Name: "pub-v4", CIDR: "198.51.100.0/24", Gateway: "198.51.100.1"}
	ok6 := Pool{Name: "pub-v6", CIDR: "2001:db8::/48", Gateway: "fe80::1"}
	mod := func(p Pool, f func(*Pool)) Pool { f(&p); return p }
	cases := []struct {
		name  string
		pool  Pool
		field string // "" = valid
		msg   string
	}{
		{"v4 ok", ok4, "", ""},
		{"v6 ok", ok6, "", ""},
		{"v6 gateway inside", mod(ok6, func(p *Pool) { p.Gateway = "2001:db8::1" }), "", ""},
		{"v6 /56", mod(ok6, func(p *Pool) { p.PrefixLen = 56 }), "", ""},
		{"excludes and nodes", mod(ok4, func(p *Pool) {
			p.Exclude = []string{"198.51.100.10", "198.51.100.128/25"}
			p.Nodes = []string{"hv-01", "hv-02"}
		}), "", ""},
		{"bad name", mod(ok4, func(p *Pool) { p.Name = "Pub" }), "name", ""},
		{"empty name", mod(ok4, func(p *Pool) { p.Name = "" }), "name", ""},
		{"dash name", mod(ok4, func(p *Pool) { p.Name = "-x" }), "name", ""},
		{"long name", mod(ok4, func(p *Pool) { p.Name = strings.Repeat("a", 64) }), "name", ""},
		{"bad cidr", mod(ok4, func(p *Pool) { p.CIDR = "198.51.100.0/33" }), "cidr", "not a CIDR"},
		{"no cidr", mod(ok4, func(p *Pool) { p.CIDR = "" }), "cidr", "not a CIDR"},
		{"address not cidr", mod(ok4, func(p *Pool) { p.CIDR = "198.51.100.0" }), "cidr", "not a CIDR"},
		{"host bits", mod(ok4, func(p *Pool) { p.CIDR = "198.51.100.7/24" }), "cidr", "198.51.100.0/24"},
		{"v4 /31", mod(ok4, func(p *Pool) { p.CIDR = "198.51.100.0/31"; p.Gateway = "198.51.100.1" }), "cidr", "at most /30"},
		{"4in6", mod(ok4, func(p *Pool) { p.CIDR = "::ffff:198.51.100.0/120" }), "cidr", "IPv4-mapped"},
		{"gateway outside", mod(ok4, func(p *Pool) { p.Gateway = "198.51.101.1" }), "gateway", "outside"},
		{"gateway network", mod(ok4, func(p *Pool) { p.Gateway = "198.51.100.0" }), "gateway", "network"},
		{"gateway broadcast", mod(ok4, func(p *Pool) { p.Gateway = "198.51.100.255" }), "gateway", "broadcast"},
		{"gateway missing", mod(ok4, func(p *Pool) { p.Gateway = "" }), "gateway", "not an IP"},
		{"gateway family", mod(ok4, func(p *Pool) { p.Gateway = "fe80::1" }), "gateway", "family"},
		{"gateway zone", mod(ok6, func(p *Pool) { p.Gateway = "fe80::1%eth0" }), "gateway", "not an IP"},
		{"v6 gateway outside", mod(ok6, func(p *Pool) { p.Gateway = "2001:db9::1" }), "gateway", "outside"},
		{"exclude outside", mod(ok4, func(p *Pool) { p.Exclude = []string{"198.51.100.5", "198.51.100.6", "10.0.0.1"} }), "exclude[2]", "not inside"},
		{"exclude larger", mod(ok4, func(p *Pool) { p.Exclude = []string{"198.51.0.0/16"} }), "exclude[0]", "not inside"},
		{"exclude junk", mod(ok4, func(p *Pool) { p.Exclude = []string{"x"} }), "exclude[0]", "not an address"},
		{"exclude host bits", mod(ok4, func(p *Pool) { p.Exclude = []string{"198.51.100.9/30"} }), "exclude[0]", "host bits"},
		{"exclude family", mod(ok6, func(p *Pool) { p.Exclude = []string{"198.51.100.9"} }), "exclude[0]", "not inside"},
		{"node bad", mod(ok4, func(p *Pool) { p.Nodes = []string{"hv-01", "HV 2"} }), "nodes[1]", ""},
		{"node twice", mod(ok4, func(p *Pool) { p.Nodes = []string{"hv-01", "hv-01"} }), "nodes[1]", "twice"},
		{"v4 prefixLen", mod(ok4, func(p *Pool) { p.PrefixLen = 64 }), "prefixLen", "IPv6"},
		{"v6 prefixLen short", mod(ok6, func(p *Pool) { p.PrefixLen = 48 }), "prefixLen", ""},
		{"v6 prefixLen long", mod(ok6, func(p *Pool) { p.PrefixLen = 129 }), "prefixLen", ""},
		{"bridge and resolvers", mod(ok4, func(p *Pool) { p.Bridge = "br-pub0"; p.Resolvers = []string{"198.51.100.53", "2001:db8::53"} }), "", ""},
		{"bridge too long", mod(ok4, func(p *Pool) { p.Bridge = "br-0123456789abc" }), "bridge", "interface name"},
		{"bridge bad", mod(ok4, func(p *Pool) { p.Bridge = "br 0" }), "bridge", "interface name"},
		{"resolver bad", mod(ok4, func(p *Pool) { p.Resolvers = []string{"198.51.100.53", "dns.example"} }), "resolvers[1]", "not an IP"},
		{"resolver not canonical", mod(ok6, func(p *Pool) { p.Resolvers = []string{"2001:DB8::53"} }), "resolvers[0]", "canonical"},
		{"v6 too many", mod(ok6, func(p *Pool) { p.CIDR = "2001::/16"; p.Gateway = "fe80::1"; p.PrefixLen = 128 }), "prefixLen", "2^63"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.pool.Validate()
			if c.field == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("want a *FieldError on %s, got %v", c.field, err)
			}
			if fe.Field != c.field || !strings.Contains(fe.Message, c.msg) {
				t.Fatalf("want %s containing %q, got %v", c.field, c.msg, err)
			}
		})
	}
}

func TestOverlaps(t *testing.T) {
	p := func(name, cidr, gw string) Pool { return Pool{Name: name, CIDR: cidr, Gateway: gw} }
	a := p("a", "198.51.100.0/24", "198.51.100.1")
	cases := []struct {
		b    Pool
		want bool
	}{
		{p("b", "198.51.100.128/25", "198.51.100.129"), true},
		{p("b", "198.51.0.0/16", "198.51.0.1"), true},
		{p("b", "198.51.101.0/24", "198.51.101.1"), false},
		{p("b", "2001:db8::/48", "fe80::1"), false},
		{p("b", "junk", "fe80::1"), false},
	}
	for _, c := range cases {
		if got := Overlaps(a, c.b); got != c.want || Overlaps(c.b, a) != c.want {
			t.Errorf("Overlaps(%s, %s) = %v, want %v", a.CIDR, c.b.CIDR, got, c.want)
		}
	}

	existing := []Pool{a, p("v6", "2001:db8::/48", "fe80::1")}
	if err := CheckAdd(existing, p("c", "198.51.101.0/24", "198.51.101.1")); err != nil {
		t.Fatalf("disjoint pool refused: %v", err)
	}
	var fe *FieldError
	err := CheckAdd(existing, p("c", "2001:db8:0:100::/56", "fe80::1"))
	if !errors.As(err, &fe) || fe.Field != "cidr" || !strings.Contains(fe.Message, `"v6"`) {
		t.Fatalf("overlap: want cidr naming pool v6, got %v", err)
	}
	err = CheckAdd(existing, p("a", "203.0.113.0/24", "203.0.113.1"))
	if !errors.As(err, &fe) || fe.Field != "name" {
		t.Fatalf("duplicate name: want name, got %v", err)
	}
	err = CheckAdd(existing, p("c", "203.0.113.0/24", "203.0.114.1"))
	if !errors.As(err, &fe) || fe.Field != "gateway" {
		t.Fatalf("bad pool: want gateway, got %v", err)
	}
	err = CheckSet(append(existing, p("d", "198.51.100.0/26", "198.51.100.1")))
	if !errors.As(err, &fe) || fe.Field != "cidr" || !strings.Contains(err.Error(), `pool "d"`) || !strings.Contains(fe.Message, `"a"`) {
		t.Fatalf("CheckSet: want d's cidr overlapping a, got %v", err)
	}
	if err := CheckSet(existing); err != nil {
		t.Fatalf("CheckSet of good pools: %v", err)
	}
}

func TestDecodePool(t *testing.T) {
	p, err := DecodePool([]byte(`{"name":"v6","cidr":"2001:db8::/48","gateway":"fe80::1","prefixLen":56,"nodes":["hv-01"]}`))
	if err != nil || p.PrefixLen != 56 || p.Nodes[0] != "hv-01" {
		t.Fatalf("got %+v, %v", p, err)
	}
	for _, bad := range []string{
		``, `[]`, `{"name":"a","cidr":"198.51.100.0/24","gateway":"198.51.100.1","extra":1}`,
		`{"name":"a","cidr":"198.51.100.0/24","gateway":"198.51.100.1"} {}`,
		`{"name":"a","cidr":"198.51.100.0/24","gateway":"198.51.101.1"}`,
	} {
		if _, err := DecodePool([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzDecodePool: decoding and validating any input never panics, and a pool
// that validates gives an allocator whose first unit is inside the pool.
func FuzzDecodePool(f *testing.F) {
	for _, s := range []string{
		`{"name":"a","cidr":"198.51.100.0/24","gateway":"198.51.100.1","exclude":["198.51.100.2","198.51.100.128/25"]}`,
		`{"name":"v6","cidr":"2001:db8::/48","gateway":"fe80::1","prefixLen":64}`,
		`{"name":"v6","cidr":"2001:db8::/120","gateway":"2001:db8::1","prefixLen":128,"exclude":["2001:db8::/125"]}`,
		`{"name":"x","cidr":"0.0.0.0/0","gateway":"0.0.0.1"}`,
		`{"name":"x","cidr":"198.51.100.0/30","gateway":"198.51.100.2","exclude":["198.51.100.1"]}`,
		`{"name":"n","cidr":"::/1","gateway":"::1","prefixLen":64}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePool(data)
		if err != nil {
			return
		}
		a, err := New(p, State{})
		if err != nil {
			t.Fatalf("valid pool %+v: New: %v", p, err)
		}
		u, err := a.Allocate(t0)
		if errors.Is(err, ErrExhausted) {
			return
		}
		if err != nil {
			t.Fatalf("Allocate: %v", err)
		}
		if !a.l.prefix.Contains(u.Addr()) || u.Bits() != a.unitBits() {
			t.Fatalf("unit %s not a /%d inside %s", u, a.unitBits(), p.CIDR)
		}
		if _, err := New(p, a.State()); err != nil {
			t.Fatalf("state reload: %v", err)
		}
	})
}
