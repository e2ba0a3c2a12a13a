package rauc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"time"

	"github.com/imaforge/imaforge/integrity"
	"github.com/imaforge/imaforge/integrity/cms"
	"github.com/imaforge/imaforge/integrity/verity"
	"github.com/imaforge/imaforge/pki"
	"github.com/imaforge/imaforge/squashfs"
)

// ManifestName is the manifest's name in the bundle's SquashFS.
const ManifestName = "manifest.raucm"

// MaxSignatureSize is RAUC's default max-bundle-signature-size (64 KiB);
// a bigger CMS is refused by RAUC, so Write refuses to make one.
const MaxSignatureSize = 64 << 10

// ErrBundle: not a verity bundle this package reads, or one that does not
// verify.
var ErrBundle = errors.New("invalid RAUC bundle")

// Options describe a bundle to write.
type Options struct {
	// Manifest holds the [update] values, the slot class and the image's
	// file name in the bundle; Size, SHA256 and the verity keys are set by
	// Write.
	Manifest Manifest
	// Image is the slot image, ImageSize bytes, whose SHA-256 is
	// ImageSHA256 (from the build record: the image is not hashed again).
	Image       io.ReaderAt
	ImageSize   int64
	ImageSHA256 []byte
	// Signer signs the manifest; its certificates go into the CMS.
	Signer *integrity.Signer
	// ModTime is the time of the bundle's SquashFS and its entries.
	ModTime int64
	// Workers bounds the SquashFS writer's goroutines (0: GOMAXPROCS).
	Workers int
}

// Bundle describes a bundle that was written or verified.
type Bundle struct {
	// Manifest is the signed manifest (with the verity keys).
	Manifest *Manifest
	// PayloadSize is the SquashFS size, HashSize the hash tree's, both
	// multiples of 4 KiB; SignatureSize the CMS's. The bundle's size is
	// their sum plus 8.
	PayloadSize, HashSize, SignatureSize int64
	// Signer is the certificate that signed the manifest.
	Signer *pki.Chain
}

// saltDomain separates the bundle's salt from other uses of its manifest.
const saltDomain = "imaforge rauc verity salt v1\x00"

// Write writes a verity bundle to f (from offset 0): the SquashFS with the
// manifest and the image, hashed while written; the hash tree; the CMS
// over the full manifest; its size. The salt is derived from the internal
// manifest (which names the image's SHA-256), so the same image and
// options give the same bundle.
func Write(ctx context.Context, f verity.File, opts Options) (*Bundle, error) {
	if opts.Signer == nil {
		return nil, errors.New("rauc: no signer")
	}
	mf := opts.Manifest
	mf.Size, mf.SHA256 = opts.ImageSize, hex.EncodeToString(opts.ImageSHA256)
	mf.VerityHash, mf.VeritySalt, mf.VeritySize = "", "", 0
	inner, err := mf.Marshal(false)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append([]byte(saltDomain), inner...))
	salt := sum[:]

	bh, err := verity.NewBlockHasher(f, salt)
	if err != nil {
		return nil, err
	}
	w, err := squashfs.NewWriter(bh, squashfs.Options{Compression: squashfs.CompNone, ModTime: opts.ModTime, Workers: opts.Workers})
	if err != nil {
		return nil, err
	}
	img := opts.Image
	entries := []squashfs.Entry{
		{Path: "/", Mode: fs.ModeDir | 0o755, ModTime: opts.ModTime},
		{Path: "/" + ManifestName, Mode: 0o644, ModTime: opts.ModTime, Size: int64(len(inner)),
			Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(inner)), nil }},
		{Path: "/" + mf.Filename, Mode: 0o644, ModTime: opts.ModTime, Size: opts.ImageSize,
			Open: func() (io.ReadCloser, error) {
				return &checkedReader{r: io.NewSectionReader(img, 0, opts.ImageSize), h: sha256.New(), want: opts.ImageSHA256}, nil
			}},
	}
	for _, e := range entries {
		if err := w.Add(e); err != nil {
			return nil, err
		}
	}
	if err := w.WriteData(ctx); err != nil {
		return nil, err
	}
	if _, err := w.Finish(); err != nil {
		return nil, err
	}
	sums, err := bh.Sum()
	if err != nil {
		return nil, err
	}
	payload := bh.Size()
	if payload <= verity.BlockSize {
		return nil, fmt.Errorf("rauc: SquashFS of %d bytes; RAUC needs more than 4096", payload)
	}
	p := verity.Params{DataBlocks: uint64(len(sums)), HashOffset: uint64(payload), Salt: salt, NoSuperblock: true}
	tree, err := verity.NewTree(p, sums)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(payload, io.SeekStart); err != nil {
		return nil, err
	}
	if _, err := tree.WriteTo(f); err != nil {
		return nil, fmt.Errorf("rauc: writing the hash tree: %w", err)
	}
	mf.VerityHash, mf.VeritySalt, mf.VeritySize = tree.RootHex(), hex.EncodeToString(salt), uint64(tree.Size())
	full, err := mf.Marshal(true)
	if err != nil {
		return nil, err
	}
	sig, err := cms.SignAttached(full, opts.Signer.Key, opts.Signer.Certs)
	if err != nil {
		return nil, err
	}
	if len(sig) > MaxSignatureSize {
		return nil, fmt.Errorf("rauc: CMS of %d bytes exceeds RAUC's max-bundle-signature-size %d", len(sig), MaxSignatureSize)
	}
	if _, err := f.Write(binary.BigEndian.AppendUint64(sig, uint64(len(sig)))); err != nil {
		return nil, fmt.Errorf("rauc: writing the signature: %w", err)
	}
	return &Bundle{Manifest: &mf, PayloadSize: payload, HashSize: tree.Size(), SignatureSize: int64(len(sig))}, nil
}

// ErrImageChanged: the image read into the bundle is not the one whose
// digest the manifest names.
var ErrImageChanged = errors.New("image changed: its SHA-256 is not the recorded one")

// checkedReader hashes the image as the SquashFS writer copies it and
// fails at Close if the digest is not the expected one, so the manifest
// never names a digest the bundled image does not have, without a second
// pass over the image.
type checkedReader struct {
	r    io.Reader
	h    hash.Hash
	want []byte
}

func (c *checkedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	return n, err
}

func (c *checkedReader) Close() error {
	if got := c.h.Sum(nil); !bytes.Equal(got, c.want) {
		return fmt.Errorf("%w: read %x, manifest names %x", ErrImageChanged, got, c.want)
	}
	return nil
}

// Verify checks a verity bundle as RAUC does before installing it: the CMS
// (at most MaxSignatureSize bytes) against ts at now, the signed manifest's
// verity keys, and every payload block against the root hash. It returns
// the signed manifest. Errors match ErrBundle, integrity.ErrUntrusted or
// verity.ErrMismatch.
func Verify(r io.ReaderAt, size int64, ts *pki.TrustStore, now time.Time) (*Bundle, error) {
	if size < 8 {
		return nil, fmt.Errorf("%w: %d bytes", ErrBundle, size)
	}
	var tail [8]byte
	if _, err := r.ReadAt(tail[:], size-8); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint64(tail[:])
	if n == 0 || n > MaxSignatureSize || n > uint64(size-8) {
		return nil, fmt.Errorf("%w: signature size %d", ErrBundle, n)
	}
	sig := make([]byte, n)
	sigOff := size - 8 - int64(n)
	if _, err := r.ReadAt(sig, sigOff); err != nil {
		return nil, err
	}
	s, err := cms.VerifyAttached(sig)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBundle, err)
	}
	ch, err := integrity.CheckSigner(s, ts, now)
	if err != nil {
		return nil, err
	}
	mf, err := ParseManifest(s.Content)
	if err != nil {
		return nil, err
	}
	root, err1 := hex.DecodeString(mf.VerityHash)
	salt, err2 := hex.DecodeString(mf.VeritySalt)
	if err1 != nil || err2 != nil || len(root) != 32 || len(salt) != 32 || mf.VeritySize == 0 || mf.VeritySize%verity.BlockSize != 0 ||
		int64(mf.VeritySize) > sigOff || sigOff%verity.BlockSize != 0 {
		return nil, fmt.Errorf("%w: verity keys hash=%q salt=%q size=%d for a payload+tree of %d bytes", ErrBundle, mf.VerityHash, mf.VeritySalt, mf.VeritySize, sigOff)
	}
	payload := sigOff - int64(mf.VeritySize)
	p := verity.Params{DataBlocks: uint64(payload / verity.BlockSize), HashOffset: uint64(payload), Salt: salt, NoSuperblock: true}
	if hs, err := p.HashAreaSize(); err != nil || hs != mf.VeritySize {
		return nil, fmt.Errorf("%w: verity-size %d, a tree over %d bytes needs %d", ErrBundle, mf.VeritySize, payload, hs)
	}
	if err := verity.Verify(r, p, root); err != nil {
		return nil, fmt.Errorf("%w: payload: %w", ErrBundle, err)
	}
	return &Bundle{Manifest: mf, PayloadSize: payload, HashSize: int64(mf.VeritySize), SignatureSize: int64(n), Signer: ch}, nil
}
