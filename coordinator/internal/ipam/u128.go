package ipam

import "net/netip"

// u128 is an address as a 128-bit number (an IPv4 address in the low 32 bits).
type u128 struct{ hi, lo uint64 }

func fromAddr(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{lo: uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])}
	}
	b := a.As16()
	var u u128
	for i := 0; i < 8; i++ {
		u.hi = u.hi<<8 | uint64(b[i])
		u.lo = u.lo<<8 | uint64(b[8+i])
	}
	return u
}

func (u u128) addr(is4 bool) netip.Addr {
	if is4 {
		v := uint32(u.lo)
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	var b [16]byte
	for i := 0; i < 8; i++ {
		b[7-i] = byte(u.hi >> (8 * i))
		b[15-i] = byte(u.lo >> (8 * i))
	}
	return netip.AddrFrom16(b)
}

func (u u128) or(v u128) u128 { return u128{u.hi | v.hi, u.lo | v.lo} }
func (u u128) not() u128      { return u128{^u.hi, ^u.lo} }

// shr and shl shift by n bits, 0 to any count (128 or more gives zero). Go
// defines an unsigned shift by 64 or more as 0, and n-64 or 64-n wraps to a
// count that large when it would be negative, so each half takes the bits that
// stay in it and those that cross from the other half, without cases.
func (u u128) shr(n uint) u128 {
	return u128{u.hi >> n, u.lo>>n | u.hi<<(64-n) | u.hi>>(n-64)}
}

func (u u128) shl(n uint) u128 {
	return u128{u.hi<<n | u.lo>>(64-n) | u.lo<<(n-64), u.lo << n}
}
