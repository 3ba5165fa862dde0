package seed

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/kdomanski/iso9660"
)

// File is one file in the image's root directory.
type File struct {
	Name string
	Data []byte
}

// isoNameChars are the characters github.com/kdomanski/iso9660 keeps in a file
// name as they are (its "d1-characters" less '.' and ';', which it would split or
// mangle). A name outside them would be renamed silently, so WriteISO refuses it.
const isoNameChars = "abcdefghijklmnopqrstuvwxyz0123456789_-"

// maxISONameLen is the longest name the library writes unshortened: a 30-character
// file identifier less ";1".
const maxISONameLen = 28

// WriteISO returns an ISO 9660 image with the given volume label and files in its
// root directory, written by github.com/kdomanski/iso9660. The image has only the
// primary volume descriptor (no Joliet, no Rock Ridge); its file identifiers are the
// lower-case names with the version suffix ";1", which Linux's isofs (default
// map=normal) and blkid read as the plain names "meta-data", "user-data" and
// "network-config" that cloud-init's NoCloud source opens. Names must be unique,
// 1–28 characters of [a-z0-9_-].
func WriteISO(label string, files []File) ([]byte, error) {
	if len(label) == 0 || len(label) > 16 {
		return nil, fmt.Errorf("iso9660: label must be 1-16 characters")
	}
	if err := checkISONames(files); err != nil {
		return nil, err
	}
	w, err := iso9660.NewWriter()
	if err != nil {
		return nil, fmt.Errorf("iso9660: %w", err)
	}
	defer w.Cleanup() //nolint:errcheck // a staging dir left in TMPDIR is harmless
	for _, f := range files {
		if err := w.AddFile(bytes.NewReader(f.Data), f.Name); err != nil {
			return nil, fmt.Errorf("iso9660: add %s: %w", f.Name, err)
		}
	}
	var img bytes.Buffer
	if err := w.WriteTo(&img, label); err != nil {
		return nil, fmt.Errorf("iso9660: write: %w", err)
	}
	return img.Bytes(), nil
}

func checkISONames(files []File) error {
	seen := map[string]bool{}
	for _, f := range files {
		if f.Name == "" || len(f.Name) > maxISONameLen || strings.Trim(f.Name, isoNameChars) != "" {
			return fmt.Errorf("iso9660: bad file name %q (1-%d characters of %s)", f.Name, maxISONameLen, isoNameChars)
		}
		if seen[f.Name] {
			return fmt.Errorf("iso9660: duplicate file name %q", f.Name)
		}
		seen[f.Name] = true
	}
	return nil
}
