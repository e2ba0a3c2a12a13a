// Package integrity authenticates a SquashFS image as a whole, which the
// per-file security.ima signatures cannot: on SquashFS there is no EVM, so
// modes (a setuid bit), owners, added unsigned files and swapped directory
// entries are covered by no file signature.
//
// Two mechanisms, both made by `imaforge build` (see docs/integrity.md):
//
//   - a detached CMS signature over the whole image file (IMAGE.cms), checked
//     in one pass before the image is used (update servers, RAUC-style);
//   - a dm-verity hash tree appended to the image (package verity) whose root
//     hash and parameters are written as a canonical Descriptor
//     (IMAGE.verity) with its own detached CMS signature (IMAGE.verity.cms),
//     so a device checks a few hundred bytes and lets the kernel check every
//     block as it is read; and IMAGE.roothash.p7s, a CMS signature over the
//     root hash in hex as the kernel's dm-verity root_hash_sig_key_desc
//     (veritysetup --root-hash-signature) expects.
//
// VerifyImage and VerifyVerity check those signatures against a trust store
// and, when the image does not match, say which parts of it changed
// (superblock, inode table, directory table, data...).
package integrity

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/imaforge/imaforge/integrity/cms"
	"github.com/imaforge/imaforge/integrity/verity"
	"github.com/imaforge/imaforge/pki"
	"github.com/imaforge/imaforge/squashfs"
)

// Errors matched with errors.Is.
var (
	// ErrTampered: the image is not the one that was signed.
	ErrTampered = errors.New("image does not match its signature")
	// ErrUntrusted: the signature's signer does not chain to the trust store
	// (or is expired, revoked, of the wrong key usage); wraps the pki error.
	ErrUntrusted = errors.New("image signer not trusted")
)

// Result is what a verification found. It is returned with ErrTampered too,
// describing the changes.
type Result struct {
	// Signer is the certificate that signed; Chain its checked chain.
	Signer *x509.Certificate
	Chain  *pki.Chain
	// Descriptor is the signed verity descriptor (VerifyVerity), else nil.
	Descriptor *Descriptor
	// SHA256 is the image file's digest (VerifyImage).
	SHA256 []byte
	// Changes lists the parts of the image found to differ from what was
	// signed; empty when it matches, or when a whole-image signature failed
	// on an image without a hash tree to tell where.
	Changes []Change
}

// Change is a changed byte range of the image and the SquashFS structures
// it overlaps.
type Change struct {
	Offset, Length int64
	Regions        []string
}

func (c Change) String() string {
	return fmt.Sprintf("bytes %d..%d (%s)", c.Offset, c.Offset+c.Length-1, strings.Join(c.Regions, ", "))
}

// TamperedError reports an image that does not match its signature.
type TamperedError struct {
	Reason  string
	Changes []Change
}

func (e *TamperedError) Error() string {
	var b strings.Builder
	b.WriteString(ErrTampered.Error() + ": " + e.Reason)
	for i, c := range e.Changes {
		if i == 8 {
			fmt.Fprintf(&b, "; and %d more", len(e.Changes)-i)
			break
		}
		b.WriteString("; changed " + c.String())
	}
	return b.String()
}

func (e *TamperedError) Unwrap() error { return ErrTampered }

// CheckSigner checks a CMS signature's signer against ts at now (zero:
// dates not checked) as pki.TrustStore.CheckSigner checks a signing key,
// and that the signer's scope (and its CAs') covers a whole image
// (pki.Chain.CheckWhole); errors match ErrUntrusted (and pki.ErrOutOfScope
// for a scoped signer). The CA certificates the message carries may
// complete the chain; they are added to a copy of ts, never to ts.
func CheckSigner(s *cms.Signature, ts *pki.TrustStore, now time.Time) (*pki.Chain, error) {
	if ts == nil {
		return nil, fmt.Errorf("%w: no trust store", ErrUntrusted)
	}
	roots, inter := ts.Roots(), ts.Intermediates()
	var crls []*x509.RevocationList
	for _, ca := range append(append([]*x509.Certificate(nil), roots...), inter...) {
		crls = append(crls, ts.CRLs(ca)...)
	}
	for _, c := range s.Certificates {
		if c.IsCA && !containsCert(roots, c) && !containsCert(inter, c) {
			inter = append(inter, c)
		}
	}
	ts2, err := pki.NewTrustStore(roots, inter, crls)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	if err := ts2.SetRevocation(ts.Revocation()); err != nil {
		return nil, err
	}
	ch, err := ts2.CheckSigner(s.Signer, nil, now)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	// The signature covers every file of the image: a key scoped to part
	// of it may not make one (errors.Is(err, pki.ErrOutOfScope)).
	if err := ch.CheckWhole(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	return ch, nil
}

func containsCert(list []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range list {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

// trustedSigner parses a CMS message to learn its signer and checks it
// against ts at now (CheckSigner) before anything is hashed, so an
// untrusted signature is refused first.
func trustedSigner(sig []byte, ts *pki.TrustStore, now time.Time) (*cms.Signature, *pki.Chain, error) {
	s, err := parseSigner(sig)
	if err != nil {
		return nil, nil, err
	}
	ch, err := CheckSigner(s, ts, now)
	if err != nil {
		return nil, nil, err
	}
	return s, ch, nil
}

// parseSigner parses a CMS message to learn its signer and certificates.
func parseSigner(sig []byte) (*cms.Signature, error) {
	psd, err := cms.Parse(sig)
	if err != nil {
		return nil, err
	}
	certs, err := psd.Content.Certificates.Parse()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", cms.ErrFormat, err)
	}
	cert, err := psd.Content.SignerInfos[0].FindCertificate(certs)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", cms.ErrFormat, err)
	}
	return &cms.Signature{Signer: cert, Certificates: certs}, nil
}

// VerifyImage checks sig, a detached CMS signature over the whole image
// file (IMAGE.cms), against ts at time now, then the image's SHA-256
// against it. An untrusted signer gives ErrUntrusted before the image is
// read; an image that does not match gives a *TamperedError (ErrTampered)
// and, when the image carries a dm-verity hash tree, the ranges whose
// blocks no longer match it, named by SquashFS structure.
func VerifyImage(r io.ReaderAt, size int64, sig []byte, ts *pki.TrustStore, now time.Time) (*Result, error) {
	s, ch, err := trustedSigner(sig, ts, now)
	if err != nil {
		return nil, err
	}
	res := &Result{Signer: s.Signer, Chain: ch}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, size)); err != nil {
		return res, fmt.Errorf("reading the image: %w", err)
	}
	res.SHA256 = h.Sum(nil)
	if _, err := cms.VerifyDetached(sig, res.SHA256); err != nil {
		if !errors.Is(err, cms.ErrInvalid) {
			return res, err
		}
		te := &TamperedError{Reason: "the image's SHA-256 is not the signed one"}
		te.Changes = locateByOwnTree(r, size)
		res.Changes = te.Changes
		return res, te
	}
	return res, nil
}

// VerifyVerity checks sig, a detached CMS signature over desc (IMAGE.verity
// and IMAGE.verity.cms), against ts at now, then every block of the image
// against the descriptor's root hash. A mismatch gives a *TamperedError
// naming the changed ranges.
func VerifyVerity(r io.ReaderAt, size int64, desc, sig []byte, ts *pki.TrustStore, now time.Time) (*Result, error) {
	s, ch, err := trustedSigner(sig, ts, now)
	if err != nil {
		return nil, err
	}
	d := sha256.Sum256(desc)
	if _, err := cms.VerifyDetached(sig, d[:]); err != nil {
		return nil, fmt.Errorf("verity descriptor: %w", err)
	}
	dd, err := ParseDescriptor(desc)
	if err != nil {
		return nil, err
	}
	res := &Result{Signer: s.Signer, Chain: ch, Descriptor: dd}
	p := dd.Params()
	area, err := p.HashAreaSize()
	if err != nil {
		return res, err
	}
	if want := int64(p.HashOffset + area); size < want {
		te := &TamperedError{Reason: fmt.Sprintf("image of %d bytes, the signed hash tree ends at %d", size, want)}
		return res, te
	}
	// veritysetup open reads the superblock: it must say what was signed
	// (its UUID aside), or the device would refuse or misread the image.
	sbBuf := make([]byte, verity.SuperblockSize)
	var sbChange []Change
	if _, err := r.ReadAt(sbBuf, int64(p.HashOffset)); err != nil {
		return res, fmt.Errorf("reading the verity superblock: %w", err)
	}
	if sb, err := verity.ParseSuperblock(sbBuf); err != nil || !sameSuperblock(sb, p) {
		sbChange = []Change{{Offset: int64(p.HashOffset), Length: verity.BlockSize, Regions: []string{"dm-verity superblock"}}}
	}
	err = verity.Verify(r, p, dd.RootHash)
	if err == nil && sbChange != nil {
		te := &TamperedError{Reason: "the verity superblock does not carry the signed parameters", Changes: sbChange}
		res.Changes = te.Changes
		return res, te
	}
	var me *verity.MismatchError
	if errors.As(err, &me) {
		te := &TamperedError{Reason: "blocks do not match the signed root hash " + fmt.Sprintf("%x", dd.RootHash)}
		te.Changes = blockChanges(r, int64(p.DataBlocks)*verity.BlockSize, me.DataBlocks)
		te.Changes = append(te.Changes, sbChange...)
		if me.HashArea {
			te.Changes = append(te.Changes, Change{Offset: int64(p.HashOffset), Length: int64(area), Regions: []string{"dm-verity hash tree"}})
		}
		res.Changes = te.Changes
		return res, te
	}
	if err != nil {
		return res, err
	}
	return res, nil
}

// sameSuperblock reports whether sb describes the tree of p.
func sameSuperblock(sb *verity.Superblock, p verity.Params) bool {
	return sb.HashType == 1 && sb.Algorithm == verity.HashName && sb.DataBlockSize == verity.BlockSize &&
		sb.HashBlockSize == verity.BlockSize && sb.DataBlocks == p.DataBlocks && string(sb.Salt) == string(p.Salt)
}

// locateByOwnTree finds, in an image that carries a dm-verity hash tree
// after its SquashFS part, the blocks that no longer match that tree. It
// returns nil when there is no tree to compare with or it does not help
// (an attacker who rewrites the tree too is caught by the signature, but
// cannot be located).
func locateByOwnTree(r io.ReaderAt, size int64) []Change {
	p, ok := FindTree(r, size)
	if !ok {
		return nil
	}
	dataSize := int64(p.HashOffset)
	var me *verity.MismatchError
	if err := verity.Verify(r, p, make([]byte, verity.DigestSize)); !errors.As(err, &me) {
		return nil
	}
	changes := blockChanges(r, dataSize, me.DataBlocks)
	if me.HashArea && len(me.DataBlocks) == 0 {
		area, _ := p.HashAreaSize()
		changes = append(changes, Change{Offset: dataSize, Length: int64(area), Regions: []string{"dm-verity hash tree"}})
	}
	return changes
}

// FindTree finds the dm-verity hash tree imaforge appends to an image from
// the image itself, whatever its file is called: a veritysetup superblock
// right after the SquashFS part (bytes_used padded to 4 KiB) describing
// exactly that many 4 KiB data blocks with sha256. It returns the tree's
// parameters (not its root hash, which only the signed descriptor gives).
func FindTree(r io.ReaderAt, size int64) (verity.Params, bool) {
	_, dataSize, ok := readSquashfsSuperblock(r, size)
	if !ok || dataSize+verity.SuperblockSize > size {
		return verity.Params{}, false
	}
	buf := make([]byte, verity.SuperblockSize)
	if _, err := r.ReadAt(buf, dataSize); err != nil {
		return verity.Params{}, false
	}
	vsb, err := verity.ParseSuperblock(buf)
	if err != nil || vsb.DataBlocks*verity.BlockSize != uint64(dataSize) || vsb.Algorithm != verity.HashName ||
		vsb.DataBlockSize != verity.BlockSize || vsb.HashBlockSize != verity.BlockSize || vsb.HashType != 1 {
		return verity.Params{}, false
	}
	return verity.Params{DataBlocks: vsb.DataBlocks, HashOffset: uint64(dataSize), Salt: vsb.Salt, UUID: vsb.UUID}, true
}

// readSquashfsSuperblock decodes the table starts of the image's SquashFS
// superblock (offsets as in squashfs.Superblock) and the size of its
// SquashFS part (bytes_used padded to 4 KiB). Only the superblock is read,
// so changed tables do not hide where they are.
func readSquashfsSuperblock(r io.ReaderAt, size int64) (squashfs.Superblock, int64, bool) {
	b := make([]byte, squashfs.SuperblockSize)
	if _, err := r.ReadAt(b, 0); err != nil {
		return squashfs.Superblock{}, 0, false
	}
	le := binary.LittleEndian
	sb := squashfs.Superblock{
		Magic: le.Uint32(b[0:]), BytesUsed: le.Uint64(b[40:]), IDTableStart: le.Uint64(b[48:]),
		XattrIDTableStart: le.Uint64(b[56:]), InodeTableStart: le.Uint64(b[64:]), DirectoryTableStart: le.Uint64(b[72:]),
		FragmentTableStart: le.Uint64(b[80:]), ExportTableStart: le.Uint64(b[88:]),
	}
	if sb.Magic != squashfs.Magic || sb.BytesUsed > uint64(size) || sb.InodeTableStart > sb.DirectoryTableStart ||
		sb.DirectoryTableStart > sb.BytesUsed {
		return sb, 0, false
	}
	data := int64((sb.BytesUsed + verity.BlockSize - 1) / verity.BlockSize * verity.BlockSize)
	if data > size {
		return sb, 0, false
	}
	return sb, data, true
}

// blockChanges turns changed 4 KiB data blocks into ranges named by the
// SquashFS structures they overlap.
func blockChanges(r io.ReaderAt, dataSize int64, blocks []uint64) []Change {
	sb, _, ok := readSquashfsSuperblock(r, dataSize)
	regs := regions(sb, ok)
	var out []Change
	for _, b := range blocks {
		off := int64(b) * verity.BlockSize
		c := Change{Offset: off, Length: verity.BlockSize}
		for _, rg := range regs {
			if off < rg.end && off+verity.BlockSize > rg.start {
				c.Regions = append(c.Regions, rg.name)
			}
		}
		if len(c.Regions) == 0 {
			c.Regions = []string{"SquashFS image"}
		}
		out = append(out, c)
	}
	return out
}

type region struct {
	start, end int64
	name       string
}

// regions splits a SquashFS image by the table starts its superblock
// records (the order mksquashfs and imaforge write them in: data and
// fragments, inode table, directory table, then the fragment, export, id
// and xattr tables with their lookup arrays). A superblock that cannot be
// read (it was changed itself) gives one region for the first block.
func regions(sb squashfs.Superblock, ok bool) []region {
	if !ok {
		return []region{{0, squashfs.SuperblockSize, "SquashFS superblock (unreadable)"}}
	}
	type mark struct {
		at   uint64
		name string
	}
	marks := []mark{
		{0, "SquashFS superblock"},
		{squashfs.SuperblockSize, "file data and fragments"},
		{sb.InodeTableStart, "inode table (modes, owners, sizes, block lists)"},
		{sb.DirectoryTableStart, "directory table (names)"},
	}
	const invalid = ^uint64(0)
	var tables []uint64
	for _, s := range []uint64{sb.FragmentTableStart, sb.ExportTableStart, sb.IDTableStart, sb.XattrIDTableStart} {
		if s != invalid && s > sb.DirectoryTableStart {
			tables = append(tables, s)
		}
	}
	sort.Slice(tables, func(i, j int) bool { return tables[i] < tables[j] })
	if len(tables) > 0 {
		// Between the directory table and the first lookup array lie the
		// fragment, export, id and xattr metadata blocks.
		marks = append(marks, mark{tables[0], "fragment/export/id/xattr tables"})
	}
	marks = append(marks, mark{sb.BytesUsed, "padding"})
	sort.SliceStable(marks, func(i, j int) bool { return marks[i].at < marks[j].at })
	var out []region
	for i, m := range marks {
		end := int64(^uint64(0) >> 1)
		if i+1 < len(marks) {
			end = int64(marks[i+1].at)
		}
		if int64(m.at) < end {
			out = append(out, region{int64(m.at), end, m.name})
		}
	}
	return out
}
