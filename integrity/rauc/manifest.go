// Package rauc writes and reads RAUC update bundles in the "verity" format
// (rauc docs/reference.rst "Bundle Formats", src/bundle.c create_verity,
// src/manifest.c), with an imaforge image as the one slot image:
//
//	SquashFS   manifest.raucm (without the verity keys) and the image,
//	           padded to 4 KiB (written with imaforge's squashfs.Writer)
//	hash tree  dm-verity format 1, sha256, 4 KiB blocks, 32-byte salt, no
//	           superblock, right after the SquashFS (verity-size bytes)
//	CMS        SignedData encapsulating manifest.raucm WITH the [bundle]
//	           verity-hash, verity-salt and verity-size keys
//	size       the CMS size, 8 bytes, big-endian
//
// A device's RAUC verifies the CMS against its keyring, reads the manifest
// from it and lets dm-verity check every block of the SquashFS.
package rauc

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrManifest: a manifest value RAUC's key file parser would misread, or
// a manifest that is not what this package writes.
var ErrManifest = errors.New("invalid RAUC manifest")

// Manifest is the content of manifest.raucm for a bundle with one image.
type Manifest struct {
	// [update]
	Compatible  string // required: must match the device's system.conf
	Version     string // optional
	Description string // optional
	Build       string // optional
	// [bundle] format=verity; the verity keys are set in the signed copy.
	VerityHash string // hex root hash
	VeritySalt string // hex salt
	VeritySize uint64 // bytes of hash tree
	// [image.<Slot>]
	Slot     string // slot class, e.g. "rootfs"
	Filename string // file in the bundle
	Size     int64
	SHA256   string // hex
}

// checkValue refuses what a GLib key file cannot hold verbatim.
func checkValue(key, v string, required bool) error {
	if v == "" {
		if required {
			return fmt.Errorf("%w: %s is required", ErrManifest, key)
		}
		return nil
	}
	if strings.TrimSpace(v) != v || strings.ContainsAny(v, "\\") {
		return fmt.Errorf("%w: %s %q: leading/trailing space or backslash", ErrManifest, key, v)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %s %q: control character", ErrManifest, key, v)
		}
	}
	return nil
}

// Check validates the manifest's values.
func (m *Manifest) Check() error {
	for _, kv := range []struct {
		k, v string
		req  bool
	}{
		{"compatible", m.Compatible, true}, {"version", m.Version, false}, {"description", m.Description, false},
		{"build", m.Build, false}, {"slot", m.Slot, true}, {"filename", m.Filename, true}, {"sha256", m.SHA256, true},
	} {
		if err := checkValue(kv.k, kv.v, kv.req); err != nil {
			return err
		}
	}
	if strings.ContainsAny(m.Slot, "[]/ ") || strings.ContainsAny(m.Filename, "/") || m.Filename == "manifest.raucm" {
		return fmt.Errorf("%w: slot %q or filename %q", ErrManifest, m.Slot, m.Filename)
	}
	return nil
}

// Marshal writes the manifest as RAUC's key file, groups and keys in the
// order RAUC's save_manifest writes them. With verity false the verity keys
// are left out (the copy inside the SquashFS).
func (m *Manifest) Marshal(verity bool) ([]byte, error) {
	if err := m.Check(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("[update]\n")
	fmt.Fprintf(&b, "compatible=%s\n", m.Compatible)
	for _, kv := range [][2]string{{"version", m.Version}, {"description", m.Description}, {"build", m.Build}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, "%s=%s\n", kv[0], kv[1])
		}
	}
	b.WriteString("\n[bundle]\nformat=verity\n")
	if verity {
		fmt.Fprintf(&b, "verity-hash=%s\nverity-salt=%s\nverity-size=%d\n", m.VerityHash, m.VeritySalt, m.VeritySize)
	}
	fmt.Fprintf(&b, "\n[image.%s]\nfilename=%s\nsize=%d\nsha256=%s\n", m.Slot, m.Filename, m.Size, m.SHA256)
	return b.Bytes(), nil
}

// ParseManifest reads a manifest in the form Marshal writes (with the
// verity keys), as VerifyBundle needs it.
func ParseManifest(b []byte) (*Manifest, error) {
	m := &Manifest{}
	group := ""
	seen := map[string]bool{}
	for i, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			group = line[1 : len(line)-1]
			if s, ok := strings.CutPrefix(group, "image."); ok {
				if m.Slot != "" {
					return nil, fmt.Errorf("%w: line %d: more than one image", ErrManifest, i+1)
				}
				m.Slot, group = s, "image"
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%w: line %d: %q", ErrManifest, i+1, line)
		}
		key := group + "." + k
		if seen[key] {
			return nil, fmt.Errorf("%w: line %d: %s twice", ErrManifest, i+1, key)
		}
		seen[key] = true
		var err error
		switch key {
		case "update.compatible":
			m.Compatible = v
		case "update.version":
			m.Version = v
		case "update.description":
			m.Description = v
		case "update.build":
			m.Build = v
		case "bundle.format":
			if v != "verity" {
				err = fmt.Errorf("format %q, not verity", v)
			}
		case "bundle.verity-hash":
			m.VerityHash = v
		case "bundle.verity-salt":
			m.VeritySalt = v
		case "bundle.verity-size":
			m.VeritySize, err = strconv.ParseUint(v, 10, 64)
		case "image.filename":
			m.Filename = v
		case "image.size":
			m.Size, err = strconv.ParseInt(v, 10, 64)
		case "image.sha256":
			m.SHA256 = v
		default:
			err = fmt.Errorf("unexpected key %s", key)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrManifest, i+1, err)
		}
	}
	if !seen["bundle.format"] {
		return nil, fmt.Errorf("%w: no [bundle] format=verity", ErrManifest)
	}
	return m, m.Check()
}
