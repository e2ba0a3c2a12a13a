package pipeline

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/imaforge/imaforge/integrity"
	"github.com/imaforge/imaforge/integrity/rauc"
	"github.com/imaforge/imaforge/integrity/verity"
	"github.com/imaforge/imaforge/internal/atomicfile"
	"github.com/imaforge/imaforge/internal/publish"
	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/pki"
	"github.com/imaforge/imaforge/signer"
)

// imageIntegrity makes what image.verity and image.signature_key ask for
// (docs/integrity.md): while the image is written, the dm-verity digest of
// each 4 KiB block (verity.BlockHasher, no second pass); after the SquashFS
// writer finished, the hash tree appended to the image; once the image
// digest is known (the record), the detached CMS signatures.
type imageIntegrity struct {
	m      *manifest.Manifest
	file   verity.File
	out    string
	hasher *verity.BlockHasher // nil without image.verity
	tree   *verity.Tree
	signer *integrity.Signer // nil without image.signature_key
	keyID  [4]byte
}

// startIntegrity prepares the image file f for m's integrity options and,
// before any file is read, resolves the image signature key among keys.
func (opts *Options) startIntegrity(m *manifest.Manifest, f verity.File, out string, keys map[string]Key) (*imageIntegrity, error) {
	ii := &imageIntegrity{m: m, file: f, out: out}
	if name := m.Image.SignatureKey; name != "" {
		s, err := opts.integritySigner(m, name, keys[name])
		if err != nil {
			return nil, err
		}
		ii.signer, ii.keyID = s, keys[name].KeyID()
	}
	if m.Image.Verity {
		h, err := verity.NewBlockHasher(f, integrity.Salt(m.Digest[:]))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", out, err)
		}
		ii.hasher = h
	}
	return ii, nil
}

// writer is what the SquashFS writer writes the image through.
func (ii *imageIntegrity) writer() io.WriteSeeker {
	if ii.hasher != nil {
		return ii.hasher
	}
	return ii.file
}

// appendTree appends the hash tree after the finished SquashFS image (which
// the writer padded to 4 KiB, as dm-verity's data blocks need).
func (ii *imageIntegrity) appendTree() error {
	if ii.hasher == nil {
		return nil
	}
	sums, err := ii.hasher.Sum()
	if err != nil {
		return fmt.Errorf("%s: %w", ii.out, err)
	}
	size := ii.hasher.Size()
	salt := integrity.Salt(ii.m.Digest[:])
	p := verity.Params{DataBlocks: uint64(len(sums)), HashOffset: uint64(size), Salt: salt, UUID: integrity.UUID(salt)}
	t, err := verity.NewTree(p, sums)
	if err != nil {
		return fmt.Errorf("%s: %w", ii.out, err)
	}
	if _, err := ii.file.Seek(size, io.SeekStart); err != nil {
		return fmt.Errorf("%s: %w", ii.out, err)
	}
	if _, err := t.WriteTo(ii.file); err != nil {
		return fmt.Errorf("write %s: %w", ii.out, err)
	}
	ii.tree = t
	return nil
}

// finishIntegrity adds the verity parameters to rec and returns the
// signatures, published with the image.
func (opts *Options) finishIntegrity(ii *imageIntegrity, rec *Record) ([]sidecar, error) {
	m := ii.m
	if t := ii.tree; t != nil {
		p := t.Params
		rec.Verity = &RecordVerity{
			Hash: verity.HashName, DataBlockSize: verity.BlockSize, HashBlockSize: verity.BlockSize,
			DataBlocks: p.DataBlocks, DataSize: p.DataBlocks * verity.BlockSize,
			HashOffset: p.HashOffset, HashSize: uint64(t.Size()),
			Salt: hex.EncodeToString(p.Salt), UUID: verity.FormatUUID(p.UUID), RootHash: t.RootHex(),
		}
	}
	name, s := m.Image.SignatureKey, ii.signer
	if s == nil {
		return nil, nil
	}
	digest, err := hex.DecodeString(rec.Image.SHA256)
	if err != nil {
		return nil, err
	}
	outputs := map[string][]byte{}
	if outputs[integrity.SuffixImageSig], err = s.SignImage(digest); err != nil {
		return nil, m.Errorf(m.Image.Pos, err, "image.signature_key %q", name)
	}
	if t := ii.tree; t != nil {
		d := &integrity.Descriptor{DataBlocks: t.Params.DataBlocks, HashOffset: t.Params.HashOffset, Salt: t.Params.Salt, RootHash: t.Root()}
		desc, sig, err := s.SignDescriptor(d)
		if err != nil {
			return nil, m.Errorf(m.Image.Pos, err, "image.signature_key %q", name)
		}
		outputs[integrity.SuffixDescriptor], outputs[integrity.SuffixDescriptorSig] = desc, sig
		if outputs[integrity.SuffixRootHashSig], err = s.SignRootHash(t.Root()); err != nil {
			return nil, m.Errorf(m.Image.Pos, err, "image.signature_key %q", name)
		}
	}
	rec.Signature = &RecordSignature{Key: name, KeyID: hex.EncodeToString(ii.keyID[:])}
	var files []sidecar
	for _, suf := range integrity.Suffixes {
		data, ok := outputs[suf]
		if !ok {
			continue
		}
		files = append(files, sidecar{suffix: suf, data: data})
		rec.Signature.Files = append(rec.Signature.Files, filepath.Base(ii.out+suf))
	}
	return files, nil
}

// sidecar is an output beside the image: IMAGE+suffix.
type sidecar struct {
	suffix string
	data   []byte
}

// integritySigner returns the CMS signer for the manifest key name: the
// crypto.Signer behind the pipeline's Key (file and token keys alike), or,
// for a Key that only relays signatures made elsewhere (a signature cache),
// the key loaded again; with the certificate chain from the trust store
// (signer and intermediates, not the root).
func (opts *Options) integritySigner(m *manifest.Manifest, name string, k Key) (*integrity.Signer, error) {
	if k == nil {
		return nil, m.Errorf(m.Image.Pos, fmt.Errorf("key %q was not loaded", name), "image.signature_key")
	}
	var priv crypto.Signer
	if cs, ok := k.(interface{ CryptoSigner() crypto.Signer }); ok {
		priv = cs.CryptoSigner()
	} else if _, given := opts.Keys[name]; !given {
		mk := m.Keys[name]
		lk, err := loadKey(mk, opts.keyOptions(mk))
		if err != nil {
			return nil, m.Errorf(mk.Pos, err, "key %q", name)
		}
		if cs, ok := lk.(interface{ CryptoSigner() crypto.Signer }); ok {
			priv = cs.CryptoSigner()
		}
	}
	if priv == nil {
		return nil, m.Errorf(m.Image.Pos, fmt.Errorf("key %q has no private key here (signatures made elsewhere cannot sign the image)", name), "image.signature_key")
	}
	certs := []*x509.Certificate{k.Cert()}
	// A whole-image signature covers every file: a key scoped to part of
	// the image may not make one, with or without a trust store.
	if err := pki.CheckWholeScope(k.Cert()); err != nil {
		return nil, keyError(m, name, fmt.Errorf("image signature: %w", err))
	}
	if m.Trust != nil {
		ts, err := pki.LoadTrustStore(pki.TrustConfig{Roots: m.Trust.Roots, Intermediates: m.Trust.Intermediates, CRLs: m.Trust.CRLs, Revocation: m.Trust.Revocation}, m.Dir)
		if err != nil {
			return nil, m.Errorf(m.Trust.Pos, err, "trust")
		}
		now := time.Now()
		if opts.Now != nil {
			now = opts.Now()
		}
		ch, err := ts.CheckSigner(k.Cert(), nil, now)
		if err == nil {
			err = ch.CheckWhole()
		}
		if err != nil {
			return nil, keyError(m, name, err)
		}
		for _, c := range ch.Certs[1:] {
			if !c.Equal(ch.Root()) {
				certs = append(certs, c)
			}
		}
	}
	return &integrity.Signer{Key: priv, Certs: certs}, nil
}

// RAUCOptions configure WriteRAUCBundle.
type RAUCOptions struct {
	// Manifest is the manifest the image was built from; the image and its
	// record are read from image.output.
	Manifest *manifest.Manifest
	// Out is the bundle's path (.raucb).
	Out string
	// Compatible (required), Version, Description and Build fill the RAUC
	// manifest's [update] section.
	Compatible, Version, Description, Build string
	// Slot is the slot class (default "rootfs"), Filename the image's name
	// in the bundle (default "rootfs.img").
	Slot, Filename string
	// Key names the manifest key that signs the bundle (default
	// image.signature_key).
	Key string
	// Keys, KeyOptions, Now, Workers as in Options.
	Keys       map[string]Key
	KeyOptions func(k *manifest.Key) *signer.KeyOptions
	Now        func() time.Time
	Workers    int
	Logf       func(format string, args ...any)
}

// WriteRAUCBundle writes a RAUC bundle in the verity format (package
// integrity/rauc) with the built image as the slot image: its size and
// SHA-256 come from the build record beside it (the image is hashed again
// as it is copied into the bundle, and a mismatch fails), the signing key's
// certificate is checked against the manifest's trust store as for a build,
// and the bundle is written to a temporary file and renamed.
func WriteRAUCBundle(ctx context.Context, ro RAUCOptions) (*rauc.Bundle, error) {
	m := ro.Manifest
	if m == nil {
		return nil, errors.New("pipeline: no manifest")
	}
	name := ro.Key
	if name == "" {
		name = m.Image.SignatureKey
	}
	if name == "" {
		return nil, m.Errorf(m.Image.Pos, errors.New("no key: set image.signature_key or name one"), "rauc bundle")
	}
	mk, ok := m.Keys[name]
	if !ok {
		return nil, m.Errorf(m.Image.Pos, fmt.Errorf("no key %q in keys", name), "rauc bundle")
	}
	img := OutputPath(m)
	if err := publish.Interrupted(img); err != nil {
		return nil, err
	}
	recData, err := os.ReadFile(img + SuffixRecord)
	if err != nil {
		return nil, fmt.Errorf("build record: %w", err)
	}
	rec, err := ParseRecord(recData)
	if err != nil {
		return nil, fmt.Errorf("%s.record.json: %w", img, err)
	}
	if rec.Manifest.SHA256 != hex.EncodeToString(m.Digest[:]) {
		return nil, fmt.Errorf("%s.record.json: not a record of this manifest (format %q, manifest %s): build the image first", img, rec.Format, rec.Manifest.SHA256)
	}
	digest, err := hex.DecodeString(rec.Image.SHA256)
	if err != nil {
		return nil, fmt.Errorf("%s.record.json: image sha256: %w", img, err)
	}
	f, err := os.Open(img)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return nil, err
	} else if st.Size() != rec.Image.Size {
		return nil, fmt.Errorf("%s: %d bytes, the record says %d: %w", img, st.Size(), rec.Image.Size, rauc.ErrImageChanged)
	}

	opts := &Options{Manifest: m, Keys: ro.Keys, KeyOptions: ro.KeyOptions, Now: ro.Now, Logf: ro.Logf}
	k, ok := ro.Keys[name]
	if !ok {
		if k, err = loadKey(mk, opts.keyOptions(mk)); err != nil {
			return nil, m.Errorf(mk.Pos, err, "key %q", name)
		}
	}
	s, err := opts.integritySigner(m, name, k)
	if err != nil {
		return nil, err
	}
	slot, fname := ro.Slot, ro.Filename
	if slot == "" {
		slot = "rootfs"
	}
	if fname == "" {
		fname = "rootfs.img"
	}
	if err := os.MkdirAll(filepath.Dir(ro.Out), 0o755); err != nil {
		return nil, err
	}
	out, err := atomicfile.Create(ro.Out, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Abort()
	b, err := rauc.Write(ctx, out.File, rauc.Options{
		Manifest: rauc.Manifest{Compatible: ro.Compatible, Version: ro.Version, Description: ro.Description, Build: ro.Build,
			Slot: slot, Filename: fname},
		Image: f, ImageSize: rec.Image.Size, ImageSHA256: digest,
		Signer: s, ModTime: m.Image.Epoch, Workers: ro.Workers,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ro.Out, err)
	}
	if err := out.Commit(); err != nil {
		return nil, err
	}
	return b, nil
}
