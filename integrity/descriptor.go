package integrity

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/imaforge/imaforge/integrity/verity"
)

// DescriptorMagic is the first line of a verity descriptor.
const DescriptorMagic = "imaforge-verity-descriptor v1"

// ErrDescriptor: a verity descriptor that is not in the canonical form.
var ErrDescriptor = errors.New("malformed verity descriptor")

// Descriptor is the signed payload of a dm-verity image: everything a device
// needs to set up the verity target, and nothing else. Its encoding
// (IMAGE.verity, signed by IMAGE.verity.cms) is canonical text, one
// "key=value" line each, LF-terminated, in exactly this order:
//
//	imaforge-verity-descriptor v1
//	hash=sha256
//	data-block-size=4096
//	hash-block-size=4096
//	data-blocks=<decimal>         data blocks (the image's SquashFS part / 4096)
//	hash-offset=<decimal>         byte offset of the hash area (superblock) in the image
//	superblock=yes                the hash area starts with veritysetup's superblock
//	salt=<lower-case hex>
//	root-hash=<lower-case hex>
//
// so that Parse accepts only what Marshal writes and a signature over it
// covers one meaning. The values map to `veritysetup open IMAGE NAME IMAGE
// ROOT-HASH --hash-offset=HASH-OFFSET` (the other parameters are in the
// superblock) and to the kernel's table `1 DEV DEV 4096 4096 DATA-BLOCKS
// HASH-OFFSET/4096+1 sha256 ROOT-HASH SALT`.
type Descriptor struct {
	DataBlocks uint64
	HashOffset uint64
	Salt       []byte
	RootHash   []byte
}

// descriptorKeys are the keys in their order.
var descriptorKeys = []string{"hash", "data-block-size", "hash-block-size", "data-blocks", "hash-offset", "superblock", "salt", "root-hash"}

// Marshal encodes d canonically.
func (d *Descriptor) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(DescriptorMagic + "\n")
	for i, v := range []string{
		verity.HashName, strconv.Itoa(verity.BlockSize), strconv.Itoa(verity.BlockSize),
		strconv.FormatUint(d.DataBlocks, 10), strconv.FormatUint(d.HashOffset, 10), "yes",
		hex.EncodeToString(d.Salt), hex.EncodeToString(d.RootHash),
	} {
		fmt.Fprintf(&b, "%s=%s\n", descriptorKeys[i], v)
	}
	return b.Bytes()
}

// Params returns the hash tree parameters d describes (UUID aside: it is
// in the superblock and not covered by the root hash).
func (d *Descriptor) Params() verity.Params {
	return verity.Params{DataBlocks: d.DataBlocks, HashOffset: d.HashOffset, Salt: d.Salt}
}

// ParseDescriptor decodes a descriptor in exactly the form Marshal writes.
func ParseDescriptor(b []byte) (*Descriptor, error) {
	s := string(b)
	if !strings.HasSuffix(s, "\n") {
		return nil, fmt.Errorf("%w: no final newline", ErrDescriptor)
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) != len(descriptorKeys)+1 || lines[0] != DescriptorMagic {
		return nil, fmt.Errorf("%w: want %q and %d lines", ErrDescriptor, DescriptorMagic, len(descriptorKeys))
	}
	vals := make([]string, len(descriptorKeys))
	for i, k := range descriptorKeys {
		v, ok := strings.CutPrefix(lines[i+1], k+"=")
		if !ok {
			return nil, fmt.Errorf("%w: line %d: want %s=", ErrDescriptor, i+2, k)
		}
		vals[i] = v
	}
	d := &Descriptor{}
	var err error
	for i, want := range []string{verity.HashName, strconv.Itoa(verity.BlockSize), strconv.Itoa(verity.BlockSize)} {
		if vals[i] != want {
			return nil, fmt.Errorf("%w: %s=%s (only %s)", ErrDescriptor, descriptorKeys[i], vals[i], want)
		}
	}
	if d.DataBlocks, err = parseDecimal(vals[3]); err != nil {
		return nil, fmt.Errorf("%w: data-blocks: %w", ErrDescriptor, err)
	}
	if d.HashOffset, err = parseDecimal(vals[4]); err != nil {
		return nil, fmt.Errorf("%w: hash-offset: %w", ErrDescriptor, err)
	}
	if vals[5] != "yes" {
		return nil, fmt.Errorf("%w: superblock=%s", ErrDescriptor, vals[5])
	}
	if d.Salt, err = parseHex(vals[6], 0, verity.MaxSaltSize); err != nil {
		return nil, fmt.Errorf("%w: salt: %w", ErrDescriptor, err)
	}
	if d.RootHash, err = parseHex(vals[7], verity.DigestSize, verity.DigestSize); err != nil {
		return nil, fmt.Errorf("%w: root-hash: %w", ErrDescriptor, err)
	}
	p := d.Params()
	if err := p.Check(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDescriptor, err)
	}
	if d.HashOffset < d.DataBlocks*verity.BlockSize {
		return nil, fmt.Errorf("%w: hash offset %d inside the %d data blocks", ErrDescriptor, d.HashOffset, d.DataBlocks)
	}
	return d, nil
}

// parseDecimal accepts canonical decimal only (no sign, no leading zero).
func parseDecimal(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != s {
		return 0, fmt.Errorf("%q is not a canonical decimal", s)
	}
	return n, nil
}

// parseHex accepts lower-case hex of min..max bytes.
func parseHex(s string, minLen, maxLen int) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || hex.EncodeToString(b) != s {
		return nil, fmt.Errorf("%q is not lower-case hex", s)
	}
	if len(b) < minLen || len(b) > maxLen {
		return nil, fmt.Errorf("%d bytes", len(b))
	}
	return b, nil
}

// DMTable returns the device-mapper table line that maps the image's data
// through dm-verity (kernel Documentation/admin-guide/device-mapper/
// verity.rst), for `dmsetup create NAME --readonly --table LINE` or the
// DM_TABLE_LOAD ioctl, with the image's block device as both data and hash
// device:
//
//	0 SECTORS verity 1 DEV DEV 4096 4096 DATA-BLOCKS HASH-START sha256 ROOT SALT
//
// HASH-START is in 4 KiB blocks and skips the superblock (the kernel reads
// none), so it is hash-offset/4096 + 1.
func (d *Descriptor) DMTable(dataDev, hashDev string) string {
	salt := hex.EncodeToString(d.Salt)
	if salt == "" {
		salt = "-"
	}
	return fmt.Sprintf("0 %d verity 1 %s %s %d %d %d %d %s %s %s",
		d.DataBlocks*verity.BlockSize/512, dataDev, hashDev, verity.BlockSize, verity.BlockSize,
		d.DataBlocks, d.HashOffset/verity.BlockSize+1, verity.HashName, hex.EncodeToString(d.RootHash), salt)
}
