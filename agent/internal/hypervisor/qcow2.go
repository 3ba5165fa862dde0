package hypervisor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Qcow2Snapshot is one entry of a qcow2 image's internal snapshot table.
type Qcow2Snapshot struct {
	ID          string
	Name        string
	DateSec     uint32
	VMStateSize uint64 // bytes of saved RAM/device state (0 for disk-only snapshots)
	DiskSize    uint64 // virtual disk size when taken (0 if not recorded)
}

const (
	qcow2Magic        = 0x514649fb
	maxQcow2Snapshots = 65536
	maxSnapTableBytes = 64 << 20
)

// ReadQcow2Snapshots reads the internal snapshot table of a qcow2 file. It only
// reads, so it works on an image a running QEMU has open.
func ReadQcow2Snapshots(path string) ([]Qcow2Snapshot, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read qcow2 snapshots %s: %w", path, err)
	}
	defer f.Close()
	snaps, err := ParseQcow2Snapshots(f)
	if err != nil {
		return nil, fmt.Errorf("read qcow2 snapshots %s: %w", path, err)
	}
	return snaps, nil
}

// ParseQcow2Snapshots decodes the snapshot table reachable through r.
func ParseQcow2Snapshots(r io.ReaderAt) ([]Qcow2Snapshot, error) {
	hdr := make([]byte, 72)
	if _, err := r.ReadAt(hdr, 0); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if binary.BigEndian.Uint32(hdr) != qcow2Magic {
		return nil, errors.New("not a qcow2 image")
	}
	n := binary.BigEndian.Uint32(hdr[60:])
	off := binary.BigEndian.Uint64(hdr[64:])
	if n == 0 {
		return nil, nil
	}
	if n > maxQcow2Snapshots {
		return nil, fmt.Errorf("implausible snapshot count %d", n)
	}
	var out []Qcow2Snapshot
	read := uint64(0)
	for i := uint32(0); i < n; i++ {
		fixed := make([]byte, 40)
		if _, err := r.ReadAt(fixed, int64(off)); err != nil {
			return nil, fmt.Errorf("snapshot %d: %w", i, err)
		}
		idLen := uint64(binary.BigEndian.Uint16(fixed[12:]))
		nameLen := uint64(binary.BigEndian.Uint16(fixed[14:]))
		extraLen := uint64(binary.BigEndian.Uint32(fixed[36:]))
		if extraLen > 1024 {
			return nil, fmt.Errorf("snapshot %d: implausible extra data size %d", i, extraLen)
		}
		s := Qcow2Snapshot{DateSec: binary.BigEndian.Uint32(fixed[16:]), VMStateSize: uint64(binary.BigEndian.Uint32(fixed[32:]))}
		rest := make([]byte, extraLen+idLen+nameLen)
		if _, err := r.ReadAt(rest, int64(off+40)); err != nil {
			return nil, fmt.Errorf("snapshot %d: %w", i, err)
		}
		if extraLen >= 8 {
			s.VMStateSize = binary.BigEndian.Uint64(rest[0:])
		}
		if extraLen >= 16 {
			s.DiskSize = binary.BigEndian.Uint64(rest[8:])
		}
		s.ID = string(rest[extraLen : extraLen+idLen])
		s.Name = string(rest[extraLen+idLen:])
		size := 40 + extraLen + idLen + nameLen
		size = (size + 7) &^ 7
		off += size
		read += size
		if read > maxSnapTableBytes {
			return nil, errors.New("snapshot table too large")
		}
		out = append(out, s)
	}
	return out, nil
}
