package verify

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/parallel"
	"github.com/imaforge/imaforge/pki"
	"github.com/imaforge/imaforge/policy"
	"github.com/imaforge/imaforge/squashfs"
	"github.com/imaforge/imaforge/tarimage"
)

// Options configure Image.
type Options struct {
	// Trust holds the roots, intermediates (owner CAs), the IMA signing
	// certificates that key ids resolve to, and the CRLs. nil makes every
	// signature's key unknown.
	Trust *pki.TrustStore
	// At is the time certificates must be valid at; the zero time skips
	// date checks (for images signed in the past: the kernel never checks
	// dates).
	At time.Time
	// Policies are IMA policy files in force on the device besides the
	// fragments in the image; their rules come first, in this order.
	Policies []PolicyFile
	// PolicyPaths are image paths to treat as policy fragments in addition
	// to the default ones (IsPolicyPath), e.g. a manifest's policy: paths.
	PolicyPaths []string
	// Kernel is the kernel series policies are parsed and linted for
	// (zero: policy.DefaultVersion).
	Kernel policy.Version
	// RequireSignatures fails every regular file without a valid signature,
	// whatever the policy says.
	RequireSignatures bool
	// Workers bounds the files read and hashed at once (0: GOMAXPROCS).
	Workers int
	// ImagePath is recorded in the report (Image does not open it).
	ImagePath string
	// ImageSignature is the whole-image signature to check before the
	// files (nil: none given).
	ImageSignature *ImageSignatureInput
	// RequireImageSignature fails an image without a whole-image
	// signature (ReasonMissing): set it when the manifest the image was
	// built from asks for one (image.signature_key), so that a renamed copy
	// or one whose signature files were deleted does not pass.
	RequireImageSignature bool
	// RequireVerityTree fails an image that carries no appended dm-verity
	// hash tree (ReasonMissing): set it when the manifest sets image.verity.
	RequireVerityTree bool
	// EVMXattrs is the target kernel's list of EVM-protected xattrs that
	// portable security.evm signatures are checked with (nil:
	// imasig.EVMXattrsDebian61).
	EVMXattrs imasig.EVMXattrs
	// Record is the image's build record to compare the image with: every
	// path, type, mode, owner and regular file's digest (nil: none; then
	// setuid and setgid files are listed in Report.Setuid as unchecked).
	Record *Expected
	// TempDir holds the decompressed copy of a tar.gz or tar.zst archive
	// (empty: os.TempDir).
	TempDir string
}

// PolicyFile is a policy given outside the image.
type PolicyFile struct {
	Name string // used in diagnostics
	Data []byte
}

// MaxPolicySize bounds the size of a policy fragment read for linting.
const MaxPolicySize = 4 << 20

// ImageError is a failure to read the image itself (an I/O error, or a
// malformed image: errors.Is(err, squashfs.ErrFormat)). Path is the image
// path of the file being read, empty for the image's tables.
type ImageError struct {
	Path string
	Err  error
}

func (e *ImageError) Error() string {
	if e.Path == "" {
		return "read image: " + e.Err.Error()
	}
	return "read image: " + e.Path + ": " + e.Err.Error()
}

func (e *ImageError) Unwrap() error { return e.Err }

// File verifies the image file at path (see Image).
func File(ctx context.Context, path string, opts Options) (*Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &ImageError{Err: err}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, &ImageError{Err: err}
	}
	if opts.ImagePath == "" {
		opts.ImagePath = path
	}
	return Image(ctx, f, st.Size(), opts)
}

// Image verifies the SquashFS image held in r (size bytes): every regular
// file's security.ima against its content and the trust store, the policy
// fragments, and the coverage of the policy rules (see the package doc).
// Problems with files (a content block that does not read or decompress
// too: ReasonUnreadable) and with the whole-image signature are reported in
// the Report; the error is for an image whose superblock or tables cannot
// be read (*ImageError) or a cancelled ctx.
func Image(ctx context.Context, r io.ReaderAt, size int64, opts Options) (*Report, error) {
	if tarimage.Sniff(r) {
		return tarArchive(ctx, r, size, opts)
	}
	z, err := squashfs.NewReader(r, size)
	if err != nil {
		return nil, &ImageError{Err: err}
	}
	if opts.Kernel == 0 {
		opts.Kernel = policy.DefaultVersion
	}
	if !opts.Kernel.Valid() {
		return nil, fmt.Errorf("verify: invalid kernel series %d", opts.Kernel)
	}
	sb := z.Superblock()
	rep := &Report{
		Format: ReportFormat,
		Image: ImageInfo{
			Path:        opts.ImagePath,
			Size:        size,
			Compression: sb.Compression.String(),
			BlockSize:   sb.BlockSize,
			Inodes:      sb.Inodes,
		},
		Kernel: opts.Kernel.String(),
	}
	if !opts.At.IsZero() {
		t := opts.At.UTC().Truncate(time.Second)
		rep.CheckedAt = &t
	}
	// The whole-image signature first: it covers what no security.ima
	// does (modes, owners, unsigned files). Its failure is reported, and
	// the files are checked all the same.
	rep.ImageSignature = checkImageSignature(r, size, opts)
	v := &verifier{opts: opts, z: z, keys: map[[4]byte]*keyState{}, policyData: map[*FileResult][]byte{}}
	extra := map[string]bool{}
	for _, p := range opts.PolicyPaths {
		extra[cleanPath(p)] = true
	}

	// The walk reads only metadata; names are fs.FS names, results carry
	// absolute paths.
	var names []string
	err = z.Walk(".", func(name string, info fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		ii, _ := info.Sys().(*squashfs.InodeInfo)
		if opts.Record != nil && ii != nil {
			p := "/" + name
			if name == "." {
				p = "/"
			}
			e := entryOf(p, info.Mode(), ii.UID, ii.GID)
			e.Target, e.Major, e.Minor = ii.Target, ii.Major, ii.Minor
			if info.Mode().IsRegular() {
				e.Size = info.Size()
			}
			v.entries = append(v.entries, e)
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		f := &FileResult{
			Path: "/" + name,
			Size: info.Size(),
			Mode: squashfs.ModeString(info.Mode()),
			exec: info.Mode().Perm()&0o111 != 0,
			perm: unixMode(info.Mode()) & 0o7777,
		}
		if ii != nil {
			f.UID, f.GID, f.inode = ii.UID, ii.GID, ii.InodeNumber
			xs := make(map[string][]byte, len(ii.Xattrs))
			for _, x := range ii.Xattrs {
				xs[x.Name] = x.Value
			}
			f.setXattrs(xs, unixMode(info.Mode()))
		}
		f.Policy = extra[f.Path] || IsPolicyPath(f.Path)
		rep.Files = append(rep.Files, f)
		names = append(names, name)
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &ImageError{Err: err}
	}

	return v.finish(ctx, rep, names)
}

// finish checks the files found in an image or archive and completes the
// report.
func (v *verifier) finish(ctx context.Context, rep *Report, names []string) (*Report, error) {
	if err := v.checkFiles(ctx, rep.Files, names); err != nil {
		return nil, err
	}
	v.matchCopies(rep.Files)
	v.compareRecord(rep, v.entries)
	rules := v.policies(rep)
	v.coverage(rep.Files, rules)
	rep.Summary.Rules = len(rules)
	rep.Signers = v.signers(rep.Files)
	rep.finish()
	return rep, nil
}

// IsPolicyPath reports whether an image path is taken for an IMA policy
// fragment by default: a file under /etc/ima/policy.d/, or under /etc/ima/
// named *.policy or ima-policy (where systemd and the IMA documentation put
// the policy loaded at boot).
func IsPolicyPath(p string) bool {
	const dir = "/etc/ima/"
	if len(p) <= len(dir) || p[:len(dir)] != dir {
		return false
	}
	rest := p[len(dir):]
	if len(rest) > len("policy.d/") && rest[:len("policy.d/")] == "policy.d/" {
		return true
	}
	base := rest
	for i := len(rest) - 1; i >= 0; i-- {
		if rest[i] == '/' {
			base = rest[i+1:]
			break
		}
	}
	return base == "ima-policy" || (len(base) > len(".policy") && base[len(base)-len(".policy"):] == ".policy")
}

func cleanPath(p string) string {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	return p
}

// verifier holds the state shared by the workers.
type verifier struct {
	opts Options
	z    imageFiles

	mu         sync.Mutex
	keys       map[[4]byte]*keyState
	policyData map[*FileResult][]byte
	entries    []Entry // every entry of the image, when Options.Record is set
}

// keyState is what the trust store says about one key id, computed once.
type keyState struct {
	once     sync.Once
	cert     *x509.Certificate
	subject  string     // cert's subject, shared by every file it signs
	chain    *pki.Chain // without date checks when dates are the only problem
	chainErr error
}

func (v *verifier) key(id [4]byte) *keyState {
	v.mu.Lock()
	ks, ok := v.keys[id]
	if !ok {
		ks = &keyState{}
		v.keys[id] = ks
	}
	v.mu.Unlock()
	ks.once.Do(func() {
		if v.opts.Trust == nil {
			return
		}
		cert, err := v.opts.Trust.ResolveKeyID(id)
		if err != nil || cert == nil {
			return
		}
		ks.cert, ks.subject = cert, cert.Subject.String()
		ks.chain, ks.chainErr = v.opts.Trust.CheckSigner(cert, nil, v.opts.At)
		if ks.chainErr != nil && (errors.Is(ks.chainErr, pki.ErrExpired) || errors.Is(ks.chainErr, pki.ErrNotYetValid) || errors.Is(ks.chainErr, pki.ErrRevocationUnknown)) {
			// keep the chain for the scope check
			ks.chain, _ = v.opts.Trust.CheckSigner(cert, nil, time.Time{})
		}
	})
	return ks
}

// imageFiles is what the checks read from an image: the content of a
// regular file by fs.FS name (*squashfs.Reader, *tarimage.Archive).
type imageFiles interface {
	Open(name string) (fs.File, error)
	ReadFile(name string) ([]byte, error)
}

// checkFiles hashes and checks every file with a pool of workers.
func (v *verifier) checkFiles(ctx context.Context, files []*FileResult, names []string) error {
	return parallel.ForEach(ctx, len(files), v.opts.Workers, func(ctx context.Context, i int) error {
		if err := v.checkFile(ctx, files[i], names[i]); err != nil {
			return err
		}
		if v.opts.Record != nil {
			if err := v.recordDigest(ctx, files[i], names[i]); err != nil {
				return err
			}
		}
		v.checkEVM(files[i])
		return nil
	})
}

// checkFile checks one file's security.ima value against its content and
// the trust store. Its error is about reading the image only.
func (v *verifier) checkFile(ctx context.Context, f *FileResult, name string) error {
	var data []byte // a policy fragment's content
	if f.Policy {
		if f.Size > MaxPolicySize {
			f.add(ReasonPolicyLint, fmt.Sprintf("policy fragment of %d bytes, more than the %d read for linting", f.Size, MaxPolicySize))
		} else {
			b, err := v.z.ReadFile(name)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				f.add(ReasonUnreadable, err.Error())
				return nil
			}
			data = b
			v.mu.Lock()
			v.policyData[f] = data
			v.mu.Unlock()
		}
	}
	if f.value == nil {
		f.Status = StatusUnsigned
		if v.opts.RequireSignatures {
			f.add(ReasonUnsigned, "no security.ima signature")
		}
		return nil
	}
	val, err := imasig.Parse(f.value)
	if err != nil {
		f.add(ReasonBadFormat, err.Error())
		return nil
	}
	f.Type = typeName(val.Type())
	var h imasig.Hash
	switch val := val.(type) {
	case *imasig.Signature:
		f.keyID = val.KeyID
		f.KeyID = hex.EncodeToString(val.KeyID[:])
		f.Hash = val.Hash.String()
		if val.Type() != imasig.TypeSignature {
			f.add(ReasonBadFormat, fmt.Sprintf("a %s value, which IMA file appraisal on SquashFS cannot use", f.Type))
			return nil
		}
		h = val.Hash
	case *imasig.DigestNG:
		h = val.Hash
		f.Hash = h.String()
	case *imasig.Digest:
		h = imasig.SHA1
		f.Hash = h.String()
	default:
		f.add(ReasonBadFormat, fmt.Sprintf("a %s value belongs in security.evm, not security.ima", f.Type))
		return nil
	}
	if !h.Available() {
		f.add(ReasonUnsupportedHash, fmt.Sprintf("hash algorithm %s is not available here", h))
		return nil
	}
	f.hash = uint8(h)
	digest, err := v.digest(ctx, h, name, data)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// A block that does not read or decompress fails this file; the
		// other files are still checked.
		f.value = nil
		f.add(ReasonUnreadable, err.Error())
		return nil
	}
	f.Digest = hex.EncodeToString(digest)

	// Keep the value only where matchCopies needs it: memory per file
	// stays at the result's fields for images of a million files.
	defer func() {
		if !f.needScan {
			f.value = nil
		}
	}()
	switch val := val.(type) {
	case *imasig.DigestNG:
		v.checkDigest(f, val.Digest, digest)
	case *imasig.Digest:
		v.checkDigest(f, val.SHA1[:], digest)
	case *imasig.Signature:
		v.checkSignature(f, val, digest)
	}
	return nil
}

func typeName(t imasig.Type) string {
	switch t {
	case imasig.TypeDigest:
		return "digest"
	case imasig.TypeHMAC:
		return "evm-hmac"
	case imasig.TypeSignature:
		return "signature"
	case imasig.TypeDigestNG:
		return "digest-ng"
	case imasig.TypePortableSignature:
		return "evm-portable-signature"
	case imasig.TypeVeritySignature:
		return "verity-signature"
	}
	return fmt.Sprintf("type-%#02x", uint8(t))
}

// digest hashes a file's content with h, streaming it (data, when not nil,
// is the content already read).
func (v *verifier) digest(ctx context.Context, h imasig.Hash, name string, data []byte) ([]byte, error) {
	hh, err := h.New()
	if err != nil {
		return nil, err
	}
	if data != nil {
		hh.Write(data)
		return hh.Sum(nil), nil
	}
	rf, err := v.z.Open(name)
	if err != nil {
		return nil, err
	}
	defer rf.Close()
	// io.Copy hands the hash to File.WriteTo, which decompresses the
	// file's blocks on all cores; ctxWriter stops it when ctx ends.
	if _, err := io.Copy(ctxWriter{ctx, hh}, rf); err != nil {
		return nil, err
	}
	return hh.Sum(nil), nil
}

// ctxWriter fails writes once its context is done.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

func (v *verifier) checkDigest(f *FileResult, stored, digest []byte) {
	if !bytes.Equal(stored, digest) {
		f.add(ReasonDigestMismatch, fmt.Sprintf("the stored %s digest %x does not match the content's %x", f.Hash, stored, digest))
		return
	}
	f.Status = StatusDigest
	if v.opts.RequireSignatures {
		f.add(ReasonUnsigned, "a digest-only security.ima value, no signature")
	}
}

func (v *verifier) checkSignature(f *FileResult, sig *imasig.Signature, digest []byte) {
	ks := v.key(sig.KeyID)
	if ks.cert == nil {
		f.add(ReasonUnknownKey, fmt.Sprintf("no certificate in the trust material has key id %s", f.KeyID))
		return
	}
	f.Signer = ks.subject
	if err := imasig.Verify(f.value, digest, ks.cert); err != nil {
		switch {
		case errors.Is(err, imasig.ErrBadSignature):
			if pub, ok := ks.cert.PublicKey.(*rsa.PublicKey); ok {
				if d := rsaSignedDigest(pub, sig.Sig); d != nil {
					f.rsaSaw = d
					f.add(ReasonDigestMismatch, fmt.Sprintf("the signature by %s is valid over %s:%x, not over the content's %s:%x: the file changed after signing",
						f.KeyID, f.Hash, d, f.Hash, digest))
					return
				}
			} else {
				f.needScan = true
			}
			f.add(ReasonBadSignature, fmt.Sprintf("the signature does not verify with key %s (%s) over the content's %s digest", f.KeyID, f.Signer, f.Hash))
		case errors.Is(err, imasig.ErrUnsupportedHash), errors.Is(err, imasig.ErrUnsupportedKey):
			f.add(ReasonUnsupportedHash, err.Error())
		default:
			f.add(ReasonBadFormat, err.Error())
		}
		return
	}
	if ks.chainErr != nil {
		f.add(chainReason(ks.chainErr), fmt.Sprintf("key %s (%s): %v", f.KeyID, f.Signer, ks.chainErr))
	}
	if ks.chain != nil {
		if err := ks.chain.CheckPath(f.Path); err != nil {
			f.add(ReasonOutOfScope, fmt.Sprintf("key %s (%s) may not sign %s: %v", f.KeyID, f.Signer, f.Path, err))
		}
	}
	if !f.Failed() {
		f.Status = StatusOK
	}
}

// chainReason maps pki's reason for refusing a certificate (pki.ReasonOf)
// to a Reason: the five reasons both vocabularies share keep their name,
// every other refusal is an untrusted chain.
func chainReason(err error) Reason {
	switch r := Reason(pki.ReasonOf(err)); r {
	case ReasonRevoked, ReasonRevocationUnknown, ReasonExpired, ReasonNotYetValid, ReasonOutOfScope:
		return r
	}
	return ReasonUntrustedChain
}

// maxScan bounds the signature checks spent looking for the file a failed
// ECDSA signature was copied from.
const maxScan = 4096

// matchCopies names the file a mismatched signature was made for when that
// file is in the image: a swapped or copied signature. RSA signatures give
// the signed digest back (rsaSignedDigest); ECDSA ones are tried against the
// digests of the other files with the same key id and hash.
func (v *verifier) matchCopies(files []*FileResult) {
	type dkey struct {
		hash   uint8
		digest string
	}
	byDigest := map[dkey]*FileResult{}
	for _, f := range files {
		if f.Digest != "" {
			k := dkey{f.hash, f.Digest}
			if _, ok := byDigest[k]; !ok {
				byDigest[k] = f
			}
		}
	}
	budget := maxScan
	for _, f := range files {
		var from *FileResult
		switch {
		case f.rsaSaw != nil:
			from = byDigest[dkey{f.hash, hex.EncodeToString(f.rsaSaw)}]
		case f.needScan:
			ks := v.key(f.keyID)
			for _, g := range files {
				if budget <= 0 {
					break
				}
				if g == f || g.hash != f.hash || g.keyID != f.keyID || g.Digest == "" || g.Digest == f.Digest {
					continue
				}
				budget--
				d, _ := hex.DecodeString(g.Digest)
				if imasig.Verify(f.value, d, ks.cert) == nil {
					from = g
					break
				}
			}
		}
		if from == nil || from == f {
			continue
		}
		for i, p := range f.Problems {
			if p.Reason == ReasonDigestMismatch || p.Reason == ReasonBadSignature {
				f.Problems[i] = Problem{Reason: ReasonDigestMismatch, Message: fmt.Sprintf(
					"the signature by %s is valid over the content of %s, not of this file: a copied or swapped signature", f.KeyID, from.Path)}
				break
			}
		}
	}
}

// signers summarizes the files by key id.
func (v *verifier) signers(files []*FileResult) []SignerSummary {
	by := map[[4]byte]*SignerSummary{}
	for _, f := range files {
		if f.KeyID == "" {
			continue
		}
		s, ok := by[f.keyID]
		if !ok {
			s = &SignerSummary{KeyID: f.KeyID}
			ks := v.key(f.keyID)
			if ks.cert != nil {
				s.Subject = ks.cert.Subject.String()
				s.Issuer = ks.cert.Issuer.String()
				s.Trusted = ks.chainErr == nil
				if ks.chainErr != nil {
					s.Error = ks.chainErr.Error()
				}
				if ks.chain != nil {
					s.Warnings = ks.chain.Warnings
				}
			} else {
				s.Error = "no certificate with this key id"
			}
			by[f.keyID] = s
		}
		s.Files++
		if f.Failed() {
			s.Failed++
		}
	}
	out := make([]SignerSummary, 0, len(by))
	for _, s := range by {
		out = append(out, *s)
	}
	return out
}
