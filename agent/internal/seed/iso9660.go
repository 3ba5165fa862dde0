package seed

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf16"
)

// A minimal ISO 9660 writer with a Joliet supplementary volume descriptor: one root
// directory with a handful of small files, which is all a NoCloud seed needs. Linux
// (and cloud-init) read the Joliet names, so files keep their lower-case names such as
// "meta-data"; the primary tree carries upper-case ISO 9660 names for old readers.

const sector = 2048

// File is one file in the image's root directory.
type File struct {
	Name string
	Data []byte
}

// WriteISO returns an ISO 9660 + Joliet image with the given volume label and files in
// its root directory. Names must be unique, 1–64 ASCII characters without '/' or ';'.
func WriteISO(label string, files []File, now time.Time) ([]byte, error) {
	if len(label) == 0 || len(label) > 16 {
		return nil, fmt.Errorf("iso9660: label must be 1-16 characters")
	}
	fs := append([]File(nil), files...)
	sort.Slice(fs, func(i, j int) bool { return fs[i].Name < fs[j].Name })
	seen := map[string]bool{}
	for _, f := range fs {
		if f.Name == "" || len(f.Name) > 64 || strings.ContainsAny(f.Name, "/;\x00") {
			return nil, fmt.Errorf("iso9660: bad file name %q", f.Name)
		}
		if seen[primaryName(f.Name)] {
			return nil, fmt.Errorf("iso9660: duplicate file name %q", f.Name)
		}
		seen[primaryName(f.Name)] = true
	}
	// Layout: 16 system sectors, PVD, SVD, terminator, 4 path tables, 2 root dirs, data.
	const (
		pvdLBA, svdLBA, termLBA    = 16, 17, 18
		lptLBA, mptLBA             = 19, 20
		jlptLBA, jmptLBA           = 21, 22
		rootLBA, jrootLBA, dataLBA = 23, 24, 25
	)
	lba := uint32(dataLBA)
	extents := make([]uint32, len(fs))
	for i, f := range fs {
		extents[i] = lba
		lba += uint32((len(f.Data) + sector - 1) / sector)
	}
	total := lba
	img := make([]byte, int(total)*sector)

	rootDir := func(joliet bool) []byte {
		var d bytes.Buffer
		self := uint32(rootLBA)
		if joliet {
			self = jrootLBA
		}
		d.Write(dirRecord([]byte{0}, self, sector, true, now))
		d.Write(dirRecord([]byte{1}, self, sector, true, now))
		type ent struct {
			id  []byte
			idx int
		}
		ents := make([]ent, len(fs))
		for i, f := range fs {
			if joliet {
				ents[i] = ent{ucs2(f.Name), i}
			} else {
				ents[i] = ent{[]byte(primaryName(f.Name) + ";1"), i}
			}
		}
		sort.Slice(ents, func(a, b int) bool { return bytes.Compare(ents[a].id, ents[b].id) < 0 })
		for _, e := range ents {
			d.Write(dirRecord(e.id, extents[e.idx], uint32(len(fs[e.idx].Data)), false, now))
		}
		return d.Bytes()
	}
	pdir, jdir := rootDir(false), rootDir(true)
	if len(pdir) > sector || len(jdir) > sector {
		return nil, fmt.Errorf("iso9660: too many files for one directory sector")
	}
	copy(img[rootLBA*sector:], pdir)
	copy(img[jrootLBA*sector:], jdir)

	pathTable := func(root uint32, bigEndian bool) []byte {
		b := make([]byte, 10)
		b[0] = 1 // length of directory identifier
		if bigEndian {
			binary.BigEndian.PutUint32(b[2:], root)
			binary.BigEndian.PutUint16(b[6:], 1)
		} else {
			binary.LittleEndian.PutUint32(b[2:], root)
			binary.LittleEndian.PutUint16(b[6:], 1)
		}
		return b
	}
	copy(img[lptLBA*sector:], pathTable(rootLBA, false))
	copy(img[mptLBA*sector:], pathTable(rootLBA, true))
	copy(img[jlptLBA*sector:], pathTable(jrootLBA, false))
	copy(img[jmptLBA*sector:], pathTable(jrootLBA, true))

	vd := func(joliet bool) []byte {
		v := make([]byte, sector)
		v[0] = 1
		if joliet {
			v[0] = 2
		}
		copy(v[1:], "CD001")
		v[6] = 1
		text := func(off, n int, s string) {
			if joliet {
				u := ucs2(s)
				for i := 0; i < n; i += 2 {
					v[off+i], v[off+i+1] = 0, ' '
				}
				copy(v[off:off+n], u)
				return
			}
			for i := range n {
				v[off+i] = ' '
			}
			copy(v[off:off+n], s)
		}
		text(8, 32, "LINUX")
		text(40, 32, label)
		bothU32(v[80:], total)
		if joliet {
			copy(v[88:], "%/E") // UCS-2 level 3
		}
		bothU16(v[120:], 1)
		bothU16(v[124:], 1)
		bothU16(v[128:], sector)
		bothU32(v[132:], 10)
		l, m, r := uint32(lptLBA), uint32(mptLBA), uint32(rootLBA)
		if joliet {
			l, m, r = jlptLBA, jmptLBA, jrootLBA
		}
		binary.LittleEndian.PutUint32(v[140:], l)
		binary.BigEndian.PutUint32(v[148:], m)
		copy(v[156:190], dirRecord([]byte{0}, r, sector, true, now))
		text(190, 128, "")
		text(318, 128, "")
		text(446, 128, "")
		text(574, 128, "HOSTPLANE")
		text(702, 37, "")
		text(739, 37, "")
		text(776, 37, "")
		ts := []byte(now.UTC().Format("20060102150405") + "00")
		copy(v[813:], ts)
		copy(v[830:], ts)
		copy(v[847:], "0000000000000000")
		copy(v[864:], "0000000000000000")
		v[881] = 1
		return v
	}
	copy(img[pvdLBA*sector:], vd(false))
	copy(img[svdLBA*sector:], vd(true))
	term := img[termLBA*sector:]
	term[0] = 255
	copy(term[1:], "CD001")
	term[6] = 1

	for i, f := range fs {
		copy(img[int(extents[i])*sector:], f.Data)
	}
	return img, nil
}

// primaryName maps a file name to ISO 9660 d-characters (A-Z 0-9 _) with one dot.
func primaryName(name string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(name) {
		if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String() + "."
}

func dirRecord(id []byte, extent, size uint32, dir bool, t time.Time) []byte {
	n := 33 + len(id)
	if n%2 == 1 {
		n++
	}
	r := make([]byte, n)
	r[0] = byte(n)
	bothU32(r[2:], extent)
	bothU32(r[10:], size)
	t = t.UTC()
	r[18], r[19], r[20] = byte(t.Year()-1900), byte(t.Month()), byte(t.Day())
	r[21], r[22], r[23] = byte(t.Hour()), byte(t.Minute()), byte(t.Second())
	if dir {
		r[25] = 2
	}
	bothU16(r[28:], 1)
	r[32] = byte(len(id))
	copy(r[33:], id)
	return r
}

func bothU32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[4:], v)
}

func bothU16(b []byte, v uint16) {
	binary.LittleEndian.PutUint16(b, v)
	binary.BigEndian.PutUint16(b[2:], v)
}

func ucs2(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.BigEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// ErrNotISO is returned by ReadISO for data that is not an image WriteISO could produce.
var ErrNotISO = errors.New("not an iso9660 image")

// ReadISO reads back the volume label and root files of an ISO 9660 image, preferring
// the Joliet tree as Linux does. It reads only the root directory.
func ReadISO(img []byte) (label string, files map[string][]byte, err error) {
	var pvd, svd []byte
	for lba := 16; ; lba++ {
		if (lba+1)*sector > len(img) || lba > 64 {
			return "", nil, fmt.Errorf("%w: no volume descriptor terminator", ErrNotISO)
		}
		v := img[lba*sector : (lba+1)*sector]
		if string(v[1:6]) != "CD001" {
			return "", nil, fmt.Errorf("%w: bad descriptor at sector %d", ErrNotISO, lba)
		}
		if v[0] == 255 {
			break
		}
		switch {
		case v[0] == 1 && pvd == nil:
			pvd = v
		case v[0] == 2 && string(v[88:91]) == "%/E":
			svd = v
		}
	}
	if pvd == nil {
		return "", nil, fmt.Errorf("%w: no primary volume descriptor", ErrNotISO)
	}
	vd, joliet := pvd, false
	if svd != nil {
		vd, joliet = svd, true
	}
	decode := func(b []byte) string {
		if !joliet {
			return string(b)
		}
		u := make([]uint16, len(b)/2)
		for i := range u {
			u[i] = binary.BigEndian.Uint16(b[2*i:])
		}
		return string(utf16.Decode(u))
	}
	label = strings.TrimRight(decode(vd[40:72]), " \x00")
	root := vd[156:190]
	ext, size := binary.LittleEndian.Uint32(root[2:]), binary.LittleEndian.Uint32(root[10:])
	if uint64(ext)*sector+uint64(size) > uint64(len(img)) {
		return "", nil, fmt.Errorf("%w: root directory out of range", ErrNotISO)
	}
	dir := img[int(ext)*sector : int(ext)*sector+int(size)]
	files = map[string][]byte{}
	for off := 0; off < len(dir); {
		n := int(dir[off])
		if n == 0 {
			off = (off/sector + 1) * sector // records do not cross sectors
			continue
		}
		if n < 34 || off+n > len(dir) {
			return "", nil, fmt.Errorf("%w: bad directory record", ErrNotISO)
		}
		r := dir[off : off+n]
		off += n
		idLen := int(r[32])
		if 33+idLen > len(r) {
			return "", nil, fmt.Errorf("%w: bad identifier length", ErrNotISO)
		}
		id := r[33 : 33+idLen]
		if r[25]&2 != 0 {
			continue // "." and ".." (and any subdirectory)
		}
		fext, fsize := binary.LittleEndian.Uint32(r[2:]), binary.LittleEndian.Uint32(r[10:])
		if uint64(fext)*sector+uint64(fsize) > uint64(len(img)) {
			return "", nil, fmt.Errorf("%w: file extent out of range", ErrNotISO)
		}
		name := strings.TrimSuffix(decode(id), ";1")
		if !joliet {
			name = strings.TrimSuffix(strings.ToLower(name), ".")
		}
		files[name] = img[int(fext)*sector : int(fext)*sector+int(fsize)]
	}
	return label, files, nil
}
