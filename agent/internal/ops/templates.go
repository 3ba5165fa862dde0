package ops

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hostplane/hostplane/agent/internal/journal"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

func templateVolName(name string) string { return "tpl-" + name + ".qcow2" }

func checkSourceFile(kind, p string) error {
	if p == "" || !filepath.IsAbs(p) || filepath.Clean(p) != p {
		return fmt.Errorf("%w: %s path %q must be absolute and clean", validate.ErrInvalid, kind, p)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("%w: %s %s: %v", validate.ErrInvalid, kind, p, errors.Unwrap(err))
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s %s is not a regular file", validate.ErrInvalid, kind, p)
	}
	return nil
}

// qcow2VirtualSize reads the virtual size from a qcow2 header.
func qcow2VirtualSize(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	hdr := make([]byte, 32)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return 0, fmt.Errorf("%s: not a qcow2 image", path)
	}
	if binary.BigEndian.Uint32(hdr) != 0x514649fb {
		return 0, fmt.Errorf("%s: not a qcow2 image", path)
	}
	if binary.BigEndian.Uint64(hdr[8:]) != 0 {
		return 0, fmt.Errorf("%s: a template base image must not have a backing file", path)
	}
	return binary.BigEndian.Uint64(hdr[24:]), nil
}

// ImportTemplate registers a template from local files, verifying the image checksum.
func (m *Manager) ImportTemplate(ctx context.Context, req api.NodeTemplateImportRequest) (*api.NodeOperation, error) {
	if err := validate.TemplateName(req.Name); err != nil {
		return nil, err
	}
	if req.OSFamily == "" {
		return nil, fmt.Errorf("%w: os family is required", validate.ErrInvalid)
	}
	if err := validate.Name("os family", req.OSFamily); err != nil {
		return nil, err
	}
	sum, err := validate.SHA256Hex(req.SHA256)
	if err != nil {
		return nil, err
	}
	req.SHA256 = sum
	if err := checkSourceFile("image", req.ImagePath); err != nil {
		return nil, err
	}
	if (req.KernelPath == "") != (req.InitrdPath == "") {
		return nil, fmt.Errorf("%w: kernel and initrd go together", validate.ErrInvalid)
	}
	if req.KernelPath != "" {
		if err := checkSourceFile("kernel", req.KernelPath); err != nil {
			return nil, err
		}
		if err := checkSourceFile("initrd", req.InitrdPath); err != nil {
			return nil, err
		}
	} else if req.Cmdline != "" {
		return nil, fmt.Errorf("%w: a kernel command line needs a kernel", validate.ErrInvalid)
	}
	if err := validate.Text("cmdline", req.Cmdline, 1024); err != nil {
		return nil, err
	}
	return m.do(ctx, spec{
		id: req.OpID, kind: api.NodeOpTemplateImport, target: req.Name, lock: "template/" + req.Name,
		input: req, stored: req,
		precheck: func(ctx context.Context) error {
			if _, err := m.j.GetTemplate(req.Name); err == nil {
				return apiErr(api.NodeErrAlreadyExists, "template %s already exists", req.Name)
			}
			fi, err := os.Stat(req.ImagePath)
			if err != nil {
				return fmt.Errorf("%w: image: %v", validate.ErrInvalid, err)
			}
			avail, err := m.hv.PoolAvailable(ctx)
			if err != nil {
				return err
			}
			if uint64(fi.Size())+m.cfg.MinFreeBytes > avail {
				return apiErr(api.NodeErrNoSpace, "template import %s: not enough space in the storage pool (%d bytes free, image is %d)", req.Name, avail, fi.Size())
			}
			return nil
		},
		exec: func(ctx context.Context, r *run) (*api.NodeOpResult, error) {
			return m.importTemplate(ctx, r, req)
		},
	})
}

func (m *Manager) importTemplate(ctx context.Context, r *run, req api.NodeTemplateImportRequest) (res *api.NodeOpResult, err error) {
	u := &undo{log: r.log}
	defer func() {
		if err != nil {
			u.run(ctx)
		}
	}()
	vol := templateVolName(req.Name)
	final := filepath.Join(m.hv.PoolPath(), vol)
	tmp := filepath.Join(m.hv.PoolPath(), ".import-"+gen(r.rec.ID))
	u.add(func(context.Context) error { return removeIfExists(tmp) })
	n, got, err := copyHashed(req.ImagePath, tmp)
	if err != nil {
		return nil, fmt.Errorf("template import %s: copy image: %w", req.Name, err)
	}
	if got != req.SHA256 {
		return nil, apiErr(api.NodeErrChecksumFailed, "template import %s: image checksum %s does not match the expected %s", req.Name, got, req.SHA256)
	}
	size, err := qcow2VirtualSize(tmp)
	if err != nil {
		return nil, apiErr(api.NodeErrInvalid, "template import %s: %v", req.Name, err)
	}
	if err := r.step("image-copied"); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return nil, fmt.Errorf("template import %s: %w", req.Name, err)
	}
	u.add(func(ctx context.Context) error { return m.hv.DeleteVolume(ctx, vol) })
	t := journal.Template{NodeTemplate: api.NodeTemplate{
		Name: req.Name, OSFamily: req.OSFamily, SizeBytes: size, FileBytes: uint64(n), SHA256: got, Volume: vol,
		Cmdline: req.Cmdline, GuestAgent: req.GuestAgent, ImportedAt: m.clock.Now().UTC(),
	}, BasePath: final}
	if req.KernelPath != "" {
		dir := m.templateDir(req.Name)
		u.add(func(context.Context) error { return os.RemoveAll(dir) })
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("template import %s: %w", req.Name, err)
		}
		t.Kernel, t.Initrd = filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd.img")
		if _, _, err := copyHashed(req.KernelPath, t.Kernel); err != nil {
			return nil, fmt.Errorf("template import %s: kernel: %w", req.Name, err)
		}
		if _, _, err := copyHashed(req.InitrdPath, t.Initrd); err != nil {
			return nil, fmt.Errorf("template import %s: initrd: %w", req.Name, err)
		}
	}
	if err := m.hv.RefreshPool(ctx); err != nil {
		return nil, err
	}
	if err := m.j.PutTemplate(t); err != nil {
		return nil, fmt.Errorf("template import %s: %w", req.Name, err)
	}
	tt := t.NodeTemplate
	return &api.NodeOpResult{Template: &tt}, nil
}

// RemoveTemplate deletes a template that no VM uses.
func (m *Manager) RemoveTemplate(ctx context.Context, name string, req api.NodeOpRequest) (*api.NodeOperation, error) {
	if err := validate.TemplateName(name); err != nil {
		return nil, err
	}
	return m.do(ctx, spec{
		id: req.OpID, kind: api.NodeOpTemplateRemove, target: name, lock: "template/" + name, input: req, stored: req,
		precheck: func(ctx context.Context) error {
			if _, err := m.j.GetTemplate(name); err != nil {
				return apiErr(api.NodeErrNotFound, "template %s not found", name)
			}
			users, err := m.j.TemplateInUse(name)
			if err != nil {
				return err
			}
			if len(users) > 0 {
				return apiErr(api.NodeErrConflict, "template %s is in use by %s", name, strings.Join(users, ", "))
			}
			return nil
		},
		exec: func(ctx context.Context, r *run) (*api.NodeOpResult, error) {
			t, err := m.j.GetTemplate(name)
			if err != nil {
				return nil, err
			}
			if err := m.hv.DeleteVolume(ctx, t.Volume); err != nil {
				return nil, err
			}
			if err := os.RemoveAll(m.templateDir(name)); err != nil {
				return nil, fmt.Errorf("template remove %s: %w", name, err)
			}
			if err := m.j.DeleteTemplate(name); err != nil {
				return nil, err
			}
			return &api.NodeOpResult{Template: &t.NodeTemplate, Message: "template removed"}, nil
		},
	})
}

// Templates lists registered templates.
func (m *Manager) Templates() ([]api.NodeTemplate, error) {
	ts, err := m.j.Templates()
	if err != nil {
		return nil, err
	}
	out := make([]api.NodeTemplate, len(ts))
	for i, t := range ts {
		out[i] = t.NodeTemplate
	}
	return out, nil
}

func copyHashed(src, dst string) (int64, string, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, "", err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

func removeIfExists(p string) error {
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}
