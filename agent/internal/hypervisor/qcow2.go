package hypervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
)

// Qcow2Snapshot is one entry of a qcow2 image's internal snapshot table, as
// `qemu-img info --output=json` reports it.
type Qcow2Snapshot struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	DateSec     uint32 `json:"date-sec"`
	VMStateSize uint64 `json:"vm-state-size"` // bytes of saved RAM/device state (0 for disk-only snapshots)
}

// ReadQcow2Snapshots lists the internal snapshots of a qcow2 file with
// `qemu-img info -U --output=json`. libvirt's snapshot XML carries no size of the
// saved VM state, so qemu-img (qemu-utils, installed with QEMU) is asked; -U
// (force-share) reads without taking the image lock, so it works on an image a
// running QEMU has open.
func ReadQcow2Snapshots(ctx context.Context, path string) ([]Qcow2Snapshot, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "qemu-img", "info", "-U", "-f", "qcow2", "--output=json", path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("read qcow2 snapshots %s: qemu-img info: %w: %s", path, err, bytes.TrimSpace(stderr.Bytes()))
	}
	snaps, err := ParseQemuImgSnapshots(out)
	if err != nil {
		return nil, fmt.Errorf("read qcow2 snapshots %s: %w", path, err)
	}
	return snaps, nil
}

// ParseQemuImgSnapshots decodes the snapshot list of `qemu-img info --output=json`.
func ParseQemuImgSnapshots(b []byte) ([]Qcow2Snapshot, error) {
	var info struct {
		Format    string          `json:"format"`
		Snapshots []Qcow2Snapshot `json:"snapshots"`
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("qemu-img info output: %w", err)
	}
	if info.Format != "qcow2" {
		return nil, fmt.Errorf("not a qcow2 image (format %q)", info.Format)
	}
	return info.Snapshots, nil
}
