// Package pipeline turns a manifest into a signed, reproducible SquashFS
// image: it walks the sources into one sorted tree, reads every regular file
// exactly once (the bytes that are hashed are the bytes compressed into the
// image), signs each unique (key, digest) pair once while later files are
// still being compressed, attaches the security.ima values and writes the
// image, then a build record beside it. Outputs are written to temporary
// files and renamed, so a failed build leaves nothing behind.
//
// The steps and outputs are documented in docs/build.md: the image
// (SquashFS 4.0, package squashfs), IMAGE.record.json (Record, section "The
// build record"), the detached policy signatures in IMAGE.policy/ and, with
// image.verity or image.signature_key, the whole-image signatures of
// docs/integrity.md. MakePlan and the signature sources (ceremony
// responses, the signature cache) serve the offline ceremony of
// docs/ceremony.md.
package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/integrity"
	"github.com/imaforge/imaforge/internal/atomicfile"
	"github.com/imaforge/imaforge/internal/publish"
	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/rootfs"
	"github.com/imaforge/imaforge/service"
	"github.com/imaforge/imaforge/signer"
	"github.com/imaforge/imaforge/squashfs"
)

// Options configure Build.
type Options struct {
	// Manifest is the loaded manifest (manifest.Load), with
	// SOURCE_DATE_EPOCH already applied by the caller if wanted.
	Manifest *manifest.Manifest
	// ToolVersion is written into the build record.
	ToolVersion string
	// Workers bounds the goroutines reading, compressing and signing
	// (0: GOMAXPROCS). It never changes the output.
	Workers int
	// Strict turns walk warnings (an override matching nothing) into errors.
	Strict bool
	// Keys, when not nil, supplies signing keys by manifest key name instead
	// of loading them from the manifest: HSM sessions, signatures from an
	// offline ceremony, a signature cache, tests.
	Keys map[string]Key
	// KeyOptions are used to load file keys (passphrase, warnings).
	KeyOptions func(k *manifest.Key) *signer.KeyOptions
	// BlockCache, when not nil, keeps the compressed blocks of a SquashFS
	// image between builds (internal/blockcache). It never changes the
	// image; tar images do not use it.
	BlockCache squashfs.BlockCache
	// Progress, if not nil, is told about files as they are read.
	Progress Progress
	// Logf, if not nil, receives notes (overlapping sources, warnings).
	Logf func(format string, args ...any)
	// MaxSpool bounds the bytes of tarball member data spooled to
	// $TMPDIR (rootfs.Options.MaxSpool; 0: the file system's space).
	MaxSpool int64
	// AllowKeyInSource turns the error for a source directory that would
	// pack a private key file the manifest names into a warning.
	AllowKeyInSource bool
	// Now is the time certificates must be valid at: the real clock (nil:
	// time.Now), never the image's reproducible epoch.
	Now func() time.Time
}

// Progress receives the build's progress. Calls may come from several
// goroutines.
type Progress interface {
	Start(files int, bytes int64)
	Add(files int, bytes int64)
	Done()
}

// Result describes a finished build.
type Result struct {
	ImagePath  string
	RecordPath string
	Record     *Record
	// Files counts regular files, Signed those with a signature, Signatures
	// the unique (key, digest) pairs signed.
	Files, Signed, Signatures int
	// Bytes is the total size of the regular files' content.
	Bytes int64
	Stats squashfs.Stats
	// Overlaps and Warnings come from walking the sources.
	Overlaps []rootfs.Overlap
	Warnings []error
}

// Key signs file digests for one manifest key. *signer.Signer is one; a
// source of signatures made elsewhere (an offline ceremony's response, a
// cache) is another.
type Key interface {
	// SignDigest returns the complete security.ima value for digest.
	SignDigest(h imasig.Hash, digest []byte) ([]byte, error)
	KeyID() [4]byte
	Cert() *x509.Certificate
	// Deterministic reports whether the same digest always gives the same
	// value, which a reproducible image needs.
	Deterministic() bool
}

// fileState is what the build learns about one regular file while it is
// read. A build holds one per file to its end (12 bytes, in one slice, with
// no pointer: the collector never scans the slice): what only some files
// need is elsewhere (a hard link's primary in layout.primary, the EVM
// signature in the xattrs it was made for), what a rule decides for all its
// files is one fileRule they share, the digest is in the layout's
// digestStore, and the file's signature is found in the sign pool by its
// key and digest when the file is sealed (signPool.lookup).
type fileState struct {
	entry entryRef // layout.at
	rule  uint32   // in layout.rules
	read  bool     // the digest is in layout.digests (the content was read)
}

// fileRule is what a rule or policy fragment decides for its files: their
// key and EVM key. Every file a rule decides shares one fileRule.
type fileRule struct {
	pos      *manifest.Pos // the rule or policy fragment
	key      string        // empty: unsigned
	evmKey   string        // empty: no security.evm
	fragment bool          // a policy fragment's (its result is not released: fragment.sig)
}

// digestStore holds every regular file's digest, by file index, in one
// array of bytes: the digest size is the build's hash's, the same for every
// file, so a file's digest is at a place its index gives, and the store
// holds no pointer for the collector to follow (a string a file was 16
// bytes of pointer and length to scan and a 32-byte object to mark).
type digestStore struct {
	size int
	b    []byte
}

// newDigests makes room for the digests of every file of l, of hash h.
func (l *layout) newDigests(h imasig.Hash) { l.digests = newDigestStore(len(l.files), h) }

// newDigestStore makes room for n digests of hash h.
func newDigestStore(n int, h imasig.Hash) digestStore {
	return digestStore{size: h.Size(), b: make([]byte, n*h.Size())}
}

// slot is where file i's digest goes (written once, by the file's reader:
// the strings get returns are not copies).
func (d *digestStore) slot(i int32) []byte {
	at := int(i) * d.size
	return d.b[at : at+d.size : at+d.size]
}

// get returns file i's digest as a string that refers to the store's bytes
// (the sign pool's results refer to it, not to a copy). Only for a slot
// already written: its bytes never change afterwards.
func (d *digestStore) get(i int32) string {
	return unsafe.String(&d.b[int(i)*d.size], d.size)
}

// sealer completes a regular file's xattrs once its content has been read:
// its security.ima and, where a rule asks, its portable security.evm over
// the declared owner, mode and protected xattrs (imasig.EVMDigest).
type sealer struct {
	lay      *layout // files by the index ImageEntry.File gives
	h        imasig.Hash
	evm      imasig.EVMXattrs
	pool     *signPool
	progress Progress
	// readAhead is the size from which a file is read ahead (readAhead.go);
	// 0: none.
	readAhead int64
	// ready, when not nil, is told the index of each signed file once
	// its digest is submitted (if there is room), so the SquashFS image
	// seals it while later files are read (sealEarly; a file with an EVM
	// key begun first, begin).
	ready chan int32
	// hashes holds the hash.Hash values of files closed (hashingReader),
	// reset, for the next files to open: a build of small files made one
	// a file (112 bytes for SHA-256).
	hashes sync.Pool
	// evmDigests holds the EVM digest of each file sealed with an EVM
	// key, by file index (empty when no rule asks for EVM): the sign
	// pool's results refer to it, and its count of unique pairs reads
	// it for the EVM results it released (signPool.lateKey).
	evmDigests digestStore
}

// newSealer returns the sealer of lay's files, whose IMA digests pool
// signs; with an EVM key, a file's security.evm over the xattrs in evm.
// Each EVM key is a late key of pool (signPool.lateKey): its results are
// released once sealed, like the files' IMA results.
func newSealer(lay *layout, h imasig.Hash, evm imasig.EVMXattrs, pool *signPool) *sealer {
	s := &sealer{lay: lay, h: h, evm: evm, pool: pool}
	for _, r := range lay.rules {
		if r.evmKey == "" {
			continue
		}
		if s.evmDigests.size == 0 {
			s.evmDigests = newDigestStore(len(lay.files), h)
		}
		pool.lateKey(evmPoolKey(r.evmKey), s.evmDigests.get)
	}
	return s
}

// evmPoolKey names a key's EVM signatures in the sign pool; manifest key
// names have no ':'.
func evmPoolKey(name string) string { return "evm:" + name }

// Seal waits for the signatures of file i (s.lay.files) and returns its
// complete xattrs, sorted by name. The file's sign-pool result is released
// (a SquashFS image keeps the value in its xattr table until Close; the
// record counts signatures from the pool, signPool.uniqueOf), except a
// policy fragment's, whose value is also written beside the image
// (fragment.sig).
func (s *sealer) Seal(i int) (manifest.Xattrs, error) { return s.sealAppend(nil, i) }

// sealAppend is Seal appending to dst[:0]: sealEarly reuses one slice
// instead of a new one a file.
func (s *sealer) sealAppend(dst manifest.Xattrs, i int) (manifest.Xattrs, error) {
	return s.sealBegun(dst, i, nil)
}

// sealBegun is sealAppend for a file whose EVM signature begin asked for:
// evm is the result begin returned (nil: not asked for yet).
func (s *sealer) sealBegun(dst manifest.Xattrs, i int, evm *sigResult) (manifest.Xattrs, error) {
	fs := &s.lay.files[i]
	r, err := s.imaResult(i)
	if err != nil {
		return nil, err
	}
	xs, err := s.seal(dst[:0], int32(i), r, evm)
	if err != nil {
		return xs, err
	}
	if f := s.lay.fragment(fs); f != nil {
		f.sig = r.value
	} else {
		s.pool.release(r, int32(i))
	}
	return xs, nil
}

// imaResult returns the sign-pool result of file i's security.ima
// (signPool.lookup).
func (s *sealer) imaResult(i int) (*sigResult, error) {
	fs := &s.lay.files[i]
	if !fs.read {
		return nil, fmt.Errorf("%s: internal: sealed before its content was read", s.lay.entry(fs).Path)
	}
	fr := s.lay.rule(fs)
	r, err := s.pool.lookup(fr.key, s.lay.digest(int32(i)))
	if err == nil && r == nil {
		err = errors.New("internal: no signature was asked for")
	}
	if err != nil {
		return nil, fmt.Errorf("sign %s with key %q: %w", s.lay.entry(fs).Path, fr.key, err)
	}
	return r, nil
}

// begin asks for the EVM signature of file i, once its security.ima is
// signed, without waiting for it, and returns its result (nil: the file
// has no EVM key) for sealBegun; buf is scratch space, returned for
// reuse. So sealEarly seals files with EVM a window at a time, instead of
// waiting for each EVM signature in turn, or leaving them all to Close with
// their IMA results held (200,000 files, RSA-2048: 150 MiB of
// live heap at the start of Close).
func (s *sealer) begin(buf manifest.Xattrs, i int) (*sigResult, manifest.Xattrs, error) {
	if s.lay.rule(&s.lay.files[i]).evmKey == "" {
		return nil, buf, nil
	}
	r, err := s.imaResult(i)
	if err != nil {
		return nil, buf, err
	}
	xs, err := s.imaXattrs(buf[:0], int32(i), r)
	if err != nil {
		return nil, xs, err
	}
	evm, err := s.submitEVM(int32(i), xs)
	return evm, xs, err
}

// readyQueue is the most files sealer.ready holds (4 bytes each): a file
// that finds it full is sealed when the image is closed. Reading runs far
// ahead of signing, so with 4,096 a build of 50,000 small files (RSA-2048)
// left about 4,000 to Close, spread over the tree: the SquashFS writer,
// which builds the xattr table in inode order as files are sealed, stopped
// at the first and built most of it after the last signature. As many as
// squashfs builds ahead (2^18) leave none below that.
const readyQueue = 1 << 18

// readyToSeal returns the channel sealEarly reads (nil: none).
func (s *sealer) readyToSeal() <-chan int32 { return s.ready }

// Path returns the image path of file i (s.lay.files).
func (s *sealer) Path(i int) string { return s.lay.entry(&s.lay.files[i]).Path }

// seal waits for the signature of file i, sig (signPool.lookup), and
// returns its complete xattrs, sorted by name; with an EVM key, evm is
// the result begin gave (nil: seal asks for it). The EVM signature's
// result is released once its value is in them (the image copies it:
// SquashFS into its xattr store, tar into the member's PAX records).
func (s *sealer) seal(dst manifest.Xattrs, i int32, sig, evm *sigResult) (manifest.Xattrs, error) {
	fs := &s.lay.files[i]
	e, fr := s.lay.entry(fs), s.lay.rule(fs)
	xs, err := s.imaXattrs(dst, i, sig)
	if err != nil {
		return nil, err
	}
	if fr.evmKey != "" {
		if evm == nil {
			if evm, err = s.submitEVM(i, xs); err != nil {
				return nil, err
			}
		}
		if err := s.pool.wait(evm); err != nil {
			return nil, fmt.Errorf("EVM-sign %s with key %q: %w", e.Path, fr.evmKey, err)
		}
		xs = append(xs, manifest.Xattr{Name: imasig.EVMXattrName, Value: evm.value})
		s.pool.release(evm, i)
	}
	slices.SortFunc(xs, func(a, b manifest.Xattr) int { return strings.Compare(a.Name, b.Name) })
	return xs, nil
}

// imaXattrs waits for the signature of file i, sig, and returns its
// xattrs but security.evm, not sorted, appended to dst.
func (s *sealer) imaXattrs(dst manifest.Xattrs, i int32, sig *sigResult) (manifest.Xattrs, error) {
	fs := &s.lay.files[i]
	e, fr := s.lay.entry(fs), s.lay.rule(fs)
	if err := s.pool.wait(sig); err != nil {
		return nil, fmt.Errorf("sign %s with key %q: %w", e.Path, fr.key, err)
	}
	xs := slices.DeleteFunc(append(dst, e.Xattrs()...), func(x manifest.Xattr) bool {
		return fr.evmKey != "" && x.Name == imasig.EVMXattrName
	})
	return append(xs, manifest.Xattr{Name: imasig.XattrName, Value: sig.value}), nil
}

// submitEVM asks for the EVM signature of file i, whose other xattrs are
// xs, and returns its result.
func (s *sealer) submitEVM(i int32, xs manifest.Xattrs) (*sigResult, error) {
	fs := &s.lay.files[i]
	e, fr := s.lay.entry(fs), s.lay.rule(fs)
	meta := imasig.EVMMeta{UID: e.UID, GID: e.GID, Mode: unixMode(e), Xattrs: make(map[string][]byte, len(xs))}
	for _, x := range xs {
		meta.Xattrs[x.Name] = x.Value
	}
	d, err := imasig.EVMDigest(s.h, s.evm, meta)
	if err != nil {
		return nil, fmt.Errorf("EVM signature of %s: %w", e.Path, err)
	}
	// the store's slot, not a copy a file: the pool's result and its
	// count of unique pairs refer to it (newSealer). Written once: a file
	// sealed again by Close after its early EVM signature failed has the
	// same digest, which the pool may still be reading.
	slot := s.evmDigests.slot(i)
	if len(d) != len(slot) {
		return nil, fmt.Errorf("EVM signature of %s: internal: a %d-byte digest, want %d", e.Path, len(d), len(slot))
	}
	if !bytes.Equal(slot, d) {
		copy(slot, d)
	}
	return s.pool.submit(evmPoolKey(fr.evmKey), e.Path, s.evmDigests.get(i)), nil
}

// unixMode is an entry's st_mode: file type and permission bits.
func unixMode(e *rootfs.Entry) uint32 {
	t := map[rootfs.Type]uint32{
		rootfs.TypeReg: unix.S_IFREG, rootfs.TypeDir: unix.S_IFDIR, rootfs.TypeSymlink: unix.S_IFLNK,
		rootfs.TypeBlock: unix.S_IFBLK, rootfs.TypeChar: unix.S_IFCHR, rootfs.TypeFifo: unix.S_IFIFO,
		rootfs.TypeSocket: unix.S_IFSOCK,
	}[e.Type]
	return t | e.Mode&0o7777
}

// Build runs the pipeline for opts.Manifest. Its stages run in this order,
// each a method of buildRun below:
//
//  1. lockOutput: check the output path, take the publish lock;
//  2. layOut: walk the sources and decide every entry and key;
//  3. openSigners: load and check the keys the layout uses;
//  4. writeImage: the concurrent stage: the image writer reads, hashes and
//     compresses the files while the sign pool signs their digests;
//  5. record (over the finished image) and the integrity sidecars;
//  6. publishOutputs: the image, sidecars, policy files and record as one
//     set.
func Build(ctx context.Context, opts Options) (*Result, error) {
	b := &buildRun{opts: &opts, m: opts.Manifest}
	if b.m == nil {
		return nil, errors.New("pipeline: no manifest")
	}
	b.out = OutputPath(b.m)
	pub, err := b.lockOutput()
	if err != nil {
		return nil, err
	}
	defer pub.Unlock()
	if err := b.layOut(ctx); err != nil {
		return nil, err
	}
	defer b.tree.Close()
	if err := b.openSigners(); err != nil {
		return nil, err
	}

	img, err := atomicfile.Create(b.out, 0o644)
	if err != nil {
		return nil, err
	}
	defer img.Abort()
	// The image goes to the disk while it is written (WriteBehind): the
	// sync below then has little left to write.
	integ, err := opts.startIntegrity(b.m, img.WriteBehind(), b.out, b.signers)
	if err != nil {
		return nil, err
	}
	res, err := b.writeImage(ctx, integ.writer())
	if err != nil {
		return nil, err
	}
	if err := integ.appendTree(); err != nil {
		return nil, err
	}

	// The image's hash (the record's image.sha256) is the build's last
	// pass over it, on one core: the record is written meanwhile, with the
	// hash's place held and filled in once it is known
	// (Record.writePending), while the image's pages go to the disk (the
	// commit's sync then finds nothing left to write). Only a CMS
	// signature beside the image (image.signature_key) needs the hash
	// before the record can be written.
	size, err := fileSize(img.File)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.out, err)
	}
	hashed := hashImage(img.File)
	synced := make(chan error, 1)
	go func() { synced <- img.File.Sync() }()
	rec, err := opts.record(b.m, b.lay, b.signers, b.uniqueSigs, b.h, size, b.out)
	var sidecars []sidecar
	var recFile *atomicfile.File
	hashAt := int64(-1)
	if err == nil && integ.signer == nil {
		if sidecars, err = opts.finishIntegrity(integ, rec); err == nil {
			recFile, hashAt, err = writeRecordFile(b.out+SuffixRecord, rec, true)
		}
	}
	if recFile != nil {
		defer recFile.Abort()
	}
	ih := <-hashed
	if serr := <-synced; err == nil && serr != nil {
		err = fmt.Errorf("sync %s: %w", b.out, serr)
	}
	if err == nil {
		err = ih.check(b.out, size)
	}
	if err != nil {
		return nil, err
	}
	rec.Image.SHA256 = hex.EncodeToString(ih.sum[:])
	if recFile != nil {
		err = fillImageSHA256(recFile.File, hashAt, rec.Image.SHA256)
	} else {
		if sidecars, err = opts.finishIntegrity(integ, rec); err == nil {
			recFile, _, err = writeRecordFile(b.out+SuffixRecord, rec, false)
		}
		if recFile != nil {
			defer recFile.Abort()
		}
	}
	if err != nil {
		return nil, err
	}
	res.Record = rec
	if err := b.publishOutputs(ctx, pub, img, sidecars, recFile); err != nil {
		return nil, err
	}
	res.RecordPath = b.out + SuffixRecord
	return res, nil
}

// buildRun is one run of Build: what its stages share, filled in stage order.
type buildRun struct {
	opts *Options
	m    *manifest.Manifest
	out  string // the image's path

	// set by layOut
	h    imasig.Hash
	tree *rootfs.Tree
	lay  *layout
	// set by openSigners: every key used, by manifest name
	signers map[string]Key
	// set by writeImage: the unique digests each key signed (files and
	// policy fragments)
	uniqueSigs map[string]int
}

// lockOutput checks the output path against the manifest's inputs, creates
// its directory and takes the publish lock. The lock is held from before the
// walk to the end of the publish: a second build of this output is refused
// at once, naming this one. The caller unlocks.
func (b *buildRun) lockOutput() (*publish.Output, error) {
	if err := checkOutputs(b.m, b.out); err != nil {
		return nil, err
	}
	if err := keysInSources(b.m, b.opts.AllowKeyInSource, b.opts.logf); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(b.out), 0o755); err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	return publish.Lock(b.out, SuffixRecord, OutputSuffixes)
}

// layOut walks the sources, logs what the walk noticed, lays the image out
// (layout.go) and checks the manifest's intent (intent.go), all before any
// file is read. On success the caller closes b.tree.
func (b *buildRun) layOut(ctx context.Context) error {
	h, tree, err := walkManifest(ctx, b.m, b.opts.Strict, b.opts.MaxSpool)
	if err != nil {
		return err
	}
	for _, o := range tree.Overlaps {
		b.opts.logf("note: %s", o)
	}
	for _, w := range tree.Warnings {
		b.opts.logf("warning: %v", w)
	}
	for _, p := range tree.Skipped {
		b.opts.logf("note: %s is an output of this build: not packed", p)
	}
	lay, err := layOut(b.m, tree, b.opts.logf)
	if err == nil {
		err = checkIntent(b.m, lay, b.opts.Strict, b.opts.logf)
	}
	if err != nil {
		tree.Close()
		return err
	}
	b.h, b.tree, b.lay = h, tree, lay
	return nil
}

// openSigners loads every key the layout uses and the image's CMS key
// (integrity.go), checks them against the trust section, and then, for a
// tar image, what tar can carry.
func (b *buildRun) openSigners() error {
	if k := b.m.Image.SignatureKey; k != "" {
		b.lay.used[k] = true
	}
	signers, err := b.opts.loadKeys(b.m, b.lay.used)
	if err != nil {
		return err
	}
	if err := b.opts.checkKeys(b.m, signers, b.lay); err != nil {
		return err
	}
	if b.m.Image.Format.IsTar() {
		if err := checkTarEntries(b.m, b.lay); err != nil {
			return err
		}
	}
	b.signers = signers
	return nil
}

// PathKey is a Key that signs a file's digest only with its image path: a
// signing service's key (service.RemoteKey), which checks the path against
// the key's scope on the server. Keys wrapping others (the signature
// cache) implement it by passing the path on.
type PathKey interface {
	Key
	SignPath(h imasig.Hash, path string, digest []byte) ([]byte, error)
}

// signWith signs digest of the file at path with s: by path when s is a
// PathKey that needs it.
func signWith(s Key, h imasig.Hash, path string, digest []byte) ([]byte, error) {
	if pk, ok := s.(PathKey); ok && needsPath(s) {
		return pk.SignPath(h, path, digest)
	}
	return s.SignDigest(h, digest)
}

// needsPath reports whether s, or the key it wraps, is a remote key.
func needsPath(s Key) bool {
	if np, ok := s.(interface{ NeedsPath() bool }); ok {
		return np.NeedsPath()
	}
	_, ok := s.(PathKey)
	return ok
}

// remoteWorkers is the sign pool's size when a key signs through a
// service: the workers only wait for answers, and the key sends what they
// ask at once as a few large streamed batches.
const remoteWorkers = service.DefaultInFlight

// signFuncs are the sign pool's functions: each key's security.ima values
// under its name, its EVM values under evmPoolKey(name).
func signFuncs(h imasig.Hash, signers map[string]Key) map[string]signFunc {
	fns := make(map[string]signFunc, 2*len(signers))
	for name, s := range signers {
		fns[name] = func(p string, d []byte) ([]byte, error) { return signWith(s, h, p, d) }
		fns[evmPoolKey(name)] = func(p string, d []byte) ([]byte, error) {
			v, err := signWith(s, h, p, d)
			if err != nil {
				return nil, err
			}
			return imasig.EVMValue(v)
		}
	}
	return fns
}

// batchKey is a Key that signs several digests in one call
// (signer.Signer: libcrypto RSA in one cgo call per batch).
type batchKey interface {
	SignDigests(h imasig.Hash, digests [][]byte) ([][]byte, error)
}

// batchFuncs are the sign pool's batch functions, for the keys that are
// batchKeys and sign by digest, under the names signFuncs gives.
func batchFuncs(h imasig.Hash, signers map[string]Key) map[string]batchFunc {
	fns := make(map[string]batchFunc)
	for name, s := range signers {
		bk, ok := s.(batchKey)
		if !ok || needsPath(s) {
			continue
		}
		fns[name] = func(ds [][]byte) ([][]byte, error) { return bk.SignDigests(h, ds) }
		fns[evmPoolKey(name)] = func(ds [][]byte) ([][]byte, error) {
			vs, err := bk.SignDigests(h, ds)
			if err != nil {
				return nil, err
			}
			for i, v := range vs {
				if vs[i], err = imasig.EVMValue(v); err != nil {
					return nil, err
				}
			}
			return vs, nil
		}
	}
	return fns
}

// writeImage writes the image to out. It is the build's concurrent stage:
// the image writer's workers read, hash (hashingReader) and compress the
// files; each file's digest goes to the sign pool as its reader closes; the
// writer's Close waits in every Seal for the signatures. When writeImage
// returns, the pool is closed and every signature made.
func (b *buildRun) writeImage(ctx context.Context, out io.WriteSeeker) (*Result, error) {
	workers := b.opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	w, err := newImageWriter(b.m, out, workers, b.opts.BlockCache)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.out, err)
	}
	poolWorkers := workers
	for _, s := range b.signers {
		if needsPath(s) {
			poolWorkers = max(workers, remoteWorkers)
		}
	}
	maxBatch := queuedBatch
	if b.m.Image.Format.IsTar() {
		maxBatch = waitedBatch
	}
	pool := newSignPool(ctx, signFuncs(b.h, b.signers), batchFuncs(b.h, b.signers), poolWorkers, maxBatch)
	defer pool.close()
	b.lay.newDigests(b.h)
	pool.digestOf = b.lay.digest
	if b.opts.Progress != nil {
		b.opts.Progress.Start(b.lay.toRead, b.lay.total)
	}
	evmList := b.m.Image.EVMXattrs.Names
	if len(evmList) == 0 {
		evmList = imasig.EVMXattrsDebian61
	}
	seal := newSealer(b.lay, b.h, evmList, pool)
	seal.progress = b.opts.Progress
	if !b.m.Image.Format.IsTar() && workers > 1 {
		// SquashFS reads one file at a time in image order. A large
		// file hashed with SHA-256 is hashed by the writer beside its
		// reads (squashfs.SHA256Taker); with another hash the reading
		// goroutine hashes it, and reading ahead moves the reads beside
		// it. The tar writer reads several large files at once already
		// (into spool files), and one core has nothing beside.
		seal.readAhead = readAheadMin
	}
	if !b.m.Image.Format.IsTar() {
		seal.ready = make(chan int32, min(len(b.lay.files), readyQueue))
	}
	res := &Result{ImagePath: b.out, Overlaps: b.tree.Overlaps, Warnings: b.tree.Warnings, Bytes: b.lay.total}
	next := 0 // b.lay.files[next] is the next regular file's state
	for _, ref := range b.lay.entries {
		e := b.lay.at(ref)
		fi := -1
		if e.Type == rootfs.TypeReg {
			fi = next
			next++
		}
		if err := w.Add(b.imageEntry(e, fi, seal, res)); err != nil {
			return nil, err
		}
	}
	if err := w.WriteData(ctx); err != nil {
		return nil, err
	}
	// Every file digest has been submitted: only EVM digests (SquashFS
	// seals, in Close) are still to come, and a million results need not
	// stay findable while the tables are written.
	pool.forget()
	stats, err := w.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.out, err)
	}
	pool.close()
	if b.opts.Progress != nil {
		b.opts.Progress.Done()
	}
	b.lay.shareLinkedState()
	res.Signatures = pool.unique
	b.uniqueSigs = make(map[string]int)
	for k := range b.lay.used {
		b.uniqueSigs[k] = pool.uniqueOf(k)
	}
	if stats.Squashfs != nil {
		res.Stats = *stats.Squashfs
	}
	return res, nil
}

// imageEntry is e as the image writer takes it. A regular file's Open
// hashes its content and submits the digest for signing (opener); its Seal
// waits for the signatures. A hard link other than its group's primary
// points at the primary. It counts regular and signed files in res. fi is
// a regular file's index in b.lay.files (-1 for other entries).
func (b *buildRun) imageEntry(e *rootfs.Entry, fi int, seal *sealer, res *Result) ImageEntry {
	ie := ImageEntry{
		Path:    e.Path,
		Mode:    e.FileMode(),
		UID:     e.UID,
		GID:     e.GID,
		ModTime: b.m.Image.Epoch,
		Size:    e.Size,
		Target:  e.Target(),
		Xattrs:  e.Xattrs(),
	}
	switch e.Type {
	case rootfs.TypeBlock, rootfs.TypeChar:
		ie.Major, ie.Minor = e.Major(), e.Minor()
	case rootfs.TypeReg:
		key := b.lay.rule(&b.lay.files[fi]).key
		res.Files++
		if key != "" {
			res.Signed++
		}
		if p, ok := b.lay.primary[e.Link()]; e.Link() != 0 && ok && int(p) != fi {
			// Hard links share their primary's inode, digest and
			// signatures.
			return ImageEntry{Path: e.Path, LinkTo: b.lay.entry(&b.lay.files[p]).Path, ModTime: b.m.Image.Epoch}
		}
		ie.Opener, ie.File = seal, fi
		if key != "" {
			ie.Seal = seal
		}
	}
	return ie
}

// shareLinkedState gives every hard link, once the image is written, its
// primary's digest (the record lists each path).
func (l *layout) shareLinkedState() {
	for i := range l.files {
		fs := &l.files[i]
		link := l.entry(fs).Link()
		if p, ok := l.primary[link]; link != 0 && ok && int(p) != i && l.files[p].read {
			copy(l.digests.slot(int32(i)), l.digests.slot(p))
			fs.read = true
		}
	}
}

// publishOutputs publishes the image, its sidecars, the policy files and
// the record (last: it names the image digest), written to recFile, as one
// set (docs/build.md, "Outputs").
func (b *buildRun) publishOutputs(ctx context.Context, pub *publish.Output, img *atomicfile.File, sidecars []sidecar, recFile *atomicfile.File) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	set, err := pub.Stage()
	if err != nil {
		return err
	}
	defer set.Abort()
	if err := set.AddFile("", img); err != nil {
		return err
	}
	for _, sc := range sidecars {
		if err := set.AddBytes(sc.suffix, sc.data); err != nil {
			return err
		}
	}
	if pf := policyFiles(b.lay.frags); pf != nil {
		if err := set.AddDir(SuffixPolicy, pf); err != nil {
			return err
		}
	}
	if err := set.AddFile(SuffixRecord, recFile); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return set.Publish()
}

// Suffixes of a build's outputs beside the image (IMAGE+suffix).
const (
	SuffixRecord = ".record.json"
	SuffixPolicy = ".policy"
)

// OutputSuffixes is every name a build may write beside its image: a
// build removes those of the previous build that it does not write itself.
var OutputSuffixes = append([]string{"", SuffixRecord, SuffixPolicy}, integrity.Suffixes...)

// OutputPath is the image's path: image.output, relative to the manifest's
// directory.
func OutputPath(m *manifest.Manifest) string {
	out := m.Image.Output
	if !filepath.IsAbs(out) {
		out = filepath.Join(m.Dir, out)
	}
	return out
}

// OpenFile opens the content of file fi (s.lay.files), wrapped so that the
// bytes the image writer reads are hashed on the way, and the signature is
// requested as soon as the last byte has been read (when the writer closes
// the reader). The writer holds s and an index for every file until it is
// read (ImageEntry.Opener), not a function each.
func (s *sealer) OpenFile(fi int32) (io.ReadCloser, error) {
	e := s.lay.entry(&s.lay.files[fi])
	rc, err := e.Content.Open()
	if err != nil {
		return nil, err
	}
	hh, _ := s.hashes.Get().(hash.Hash)
	if hh == nil {
		if hh, err = s.h.New(); err != nil {
			rc.Close()
			return nil, err
		}
	}
	return &hashingReader{rc: rc, h: hh, hashes: &s.hashes, sha256: s.h == imasig.SHA256, ahead: s.readAhead > 0 && e.Size >= s.readAhead,
		s: s, fi: fi}, nil
}

// hashingReader is a file's content as the image writer reads it: it hashes
// every byte it returns, and at Close puts the file's digest in the
// layout's digest store and submits it for signing. With SHA-256 it is a
// squashfs.ContentSHA256: the SquashFS writer takes the digest (SumSHA256)
// to find duplicate files instead of hashing the content again; and a
// squashfs.SHA256Taker: the writer may hash a large file itself, beside its
// reads, from the blocks it reads into (TakeSHA256), and give the digest
// back (SetSHA256) before Close.
type hashingReader struct {
	rc io.ReadCloser
	h  hash.Hash
	// hashes, when not nil, takes h back, reset, once Close has the
	// digest (sealer.hashes); h is nil from then on.
	hashes *sync.Pool
	sha256 bool // h is SHA-256
	// sum is the SHA-256 of the first sumN bytes (summed: SumSHA256 made
	// it or SetSHA256 gave it), for Close.
	sum    [sha256.Size]byte
	sumN   int64
	summed bool
	n      int64
	// ahead: the first Read wraps rc in a readAhead, unless the writer
	// took the hash (its reads then go straight into its blocks).
	ahead  bool
	taken  bool // TakeSHA256 returned true: Read does not hash
	given  bool // SetSHA256 was called
	s      *sealer
	fi     int32 // the file's index in s.lay.files
	closed atomic.Bool
}

// HashesSHA256 reports whether the file is hashed with SHA-256.
func (r *hashingReader) HashesSHA256() bool { return r.sha256 }

// SumSHA256 is the SHA-256 of the bytes read so far (HashesSHA256 true).
func (r *hashingReader) SumSHA256() [sha256.Size]byte {
	if r.taken || r.h == nil {
		return r.sum
	}
	r.h.Sum(r.sum[:0])
	r.sumN, r.summed = r.n, true
	return r.sum
}

// TakeSHA256 hands the hashing to the image writer (squashfs.SHA256Taker):
// with SHA-256, before the first Read.
func (r *hashingReader) TakeSHA256() bool {
	if !r.sha256 || r.n != 0 || r.taken {
		return false
	}
	r.taken = true
	return true
}

// SetSHA256 is the digest of the first n bytes read, made by the image
// writer after TakeSHA256. Close refuses a digest of fewer bytes than were
// read, or none.
func (r *hashingReader) SetSHA256(sum [sha256.Size]byte, n int64) {
	r.sum, r.sumN, r.summed, r.given = sum, n, true, true
}

func (r *hashingReader) Read(p []byte) (int, error) {
	if r.h == nil {
		return 0, os.ErrClosed // h went back to the pool (Close)
	}
	if r.ahead {
		r.ahead = false
		if !r.taken {
			r.rc = newReadAhead(r.rc)
		}
	}
	n, err := r.rc.Read(p)
	if !r.taken {
		r.h.Write(p[:n])
	}
	r.n += int64(n)
	return n, err
}

func (r *hashingReader) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	lay := r.s.lay
	fs := &lay.files[r.fi]
	e, fr := lay.entry(fs), lay.rule(fs)
	if err := r.rc.Close(); err != nil {
		return fmt.Errorf("%s: %w", e.Path, err)
	}
	if r.n != e.Size {
		return fmt.Errorf("%s: read %d bytes, expected %d: %w", e.Path, r.n, e.Size, rootfs.ErrModified)
	}
	if r.taken && (!r.given || r.sumN != r.n) {
		// fail closed: the writer took the hash and gave none for
		// every byte read
		return fmt.Errorf("%s: internal: the image writer hashed %d of the %d bytes read", e.Path, r.sumN, r.n)
	}
	// The digest goes into its place in the store, written once: the
	// strings the store gives refer to it.
	slot := lay.digests.slot(r.fi)
	if r.summed && r.sumN == r.n {
		copy(slot, r.sum[:]) // SumSHA256 made it, or the writer gave it
	} else {
		r.h.Sum(slot[:0])
		if r.sha256 {
			copy(r.sum[:], slot)
			r.sumN, r.summed = r.n, true
		}
	}
	fs.read = true
	if r.hashes != nil {
		h := r.h
		r.h = nil
		h.Reset()
		r.hashes.Put(h)
	}
	// Read exactly once: the content handle is not kept to the end of a
	// large build.
	e.Content = nil
	if fr.key != "" {
		r.s.pool.submit(fr.key, e.Path, lay.digest(r.fi))
		if r.s.ready != nil {
			select {
			case r.s.ready <- r.fi:
			default: // sealed when the image is closed
			}
		}
	}
	if p := r.s.progress; p != nil {
		p.Add(1, r.n)
	}
	return nil
}

// loadKeys returns a signer for every key name in used.
func (opts *Options) loadKeys(m *manifest.Manifest, used map[string]bool) (map[string]Key, error) {
	out := make(map[string]Key)
	var mu sync.Mutex
	names := m.KeyNames()
	errs := make([]error, len(names)) // by name, so the joined error's order is fixed
	var wg sync.WaitGroup
	for i, name := range names {
		if !used[name] {
			continue
		}
		if s, ok := opts.Keys[name]; ok {
			out[name] = s
			continue
		}
		k := m.Keys[name]
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := openKey(m, k, opts.keyOptions(k), opts.Strict)
			if err != nil {
				errs[i] = err
				return
			}
			mu.Lock()
			out[name] = s
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func (opts *Options) keyOptions(k *manifest.Key) *signer.KeyOptions {
	if opts.KeyOptions != nil {
		return opts.KeyOptions(k)
	}
	return DefaultKeyOptions(k, opts.Logf)
}

// DefaultKeyOptions takes a key's passphrase from the environment variable or
// file the manifest names, else from the terminal, and passes warnings (a key
// file readable by others) to logf.
func DefaultKeyOptions(k *manifest.Key, logf func(string, ...any)) *signer.KeyOptions {
	ko := &signer.KeyOptions{}
	switch {
	case k.PassphraseEnv != "":
		ko.Passphrase = signer.PassphraseFromEnv(k.PassphraseEnv)
	case k.PassphraseFile != "":
		ko.Passphrase = signer.PassphraseFromFile(k.PassphraseFile)
	default:
		ko.Passphrase = signer.PassphraseFromTerminal(fmt.Sprintf("passphrase for key %q: ", k.Name))
	}
	if logf != nil {
		ko.Warn = func(msg string) { logf("warning: %s", msg) }
	}
	return ko
}

// openKey opens manifest key k with ko; under strict a warning while
// opening it (a key file others may read) is an error. Errors name the key
// at its manifest line.
func openKey(m *manifest.Manifest, k *manifest.Key, ko *signer.KeyOptions, strict bool) (Key, error) {
	var warned []string
	if strict {
		// --strict: a key file others may read is an error.
		prev := ko.Warn
		ko.Warn = func(msg string) {
			warned = append(warned, msg)
			if prev != nil {
				prev(msg)
			}
		}
	}
	s, err := loadKey(k, ko)
	if err == nil && len(warned) > 0 {
		closeKey(s)
		err = fmt.Errorf("--strict: %s", strings.Join(warned, "; "))
	}
	if err != nil {
		return nil, m.Errorf(k.Pos, err, "key %q", k.Name)
	}
	return s, nil
}

// closeKey releases a key that holds resources (token sessions).
func closeKey(k Key) {
	if c, ok := k.(io.Closer); ok {
		c.Close()
	}
}

// loadKey opens a file key, or a relic/PKCS#11 token key (LoadKey).
func loadKey(k *manifest.Key, ko *signer.KeyOptions) (Key, error) {
	return LoadKey(k, ko, 0)
}

func (opts *Options) logf(format string, args ...any) {
	if opts.Logf != nil {
		opts.Logf(format, args...)
	}
}

func compression(c manifest.Compression) (squashfs.Compression, error) {
	if c == "" {
		c = manifest.DefaultCompression
	}
	return squashfs.ParseCompression(string(c))
}

// level is the compression level the image is written with (the manifest's
// or the compressor's default; 0 for xz and none, which take none: the
// manifest refuses a level for them).
func level(m *manifest.Manifest) int { return m.Image.CompressionLevel() }

// record assembles the build record once the image is complete.
// Its image.sha256 is left empty: the image is hashed meanwhile (hashImage);
// size is the image's.
func (opts *Options) record(m *manifest.Manifest, lay *layout,
	signers map[string]Key, uniqueSigs map[string]int, h imasig.Hash, size int64, out string) (*Record, error) {
	var err error
	rec := &Record{
		Format:   RecordFormat,
		Tool:     RecordTool{Name: "imaforge", Version: opts.ToolVersion},
		Manifest: RecordManifest{Name: filepath.Base(m.File), SHA256: hex.EncodeToString(m.Digest[:])},
		Image: RecordImage{
			Name:        filepath.Base(out),
			Size:        size,
			Compression: string(m.Image.Compression),
			Level:       level(m),
			BlockSize:   int(m.Image.BlockSize),
			Epoch:       m.Image.Epoch,
		},
		Hash:         h.String(),
		Reproducible: true,
		Files:        []RecordFile{},
		Keys:         []RecordKey{},
	}
	if rec.Image.Codec, err = imageCodec(m); err != nil {
		return nil, err
	}
	if m.Image.Format.IsTar() {
		rec.Image.Format, rec.Image.Compression, rec.Image.BlockSize = string(m.Image.Format), "", 0
		_, _, rec.Image.Level = m.Image.Format.TarLevelRange()
		if m.Image.Level != nil {
			rec.Image.Level = *m.Image.Level
		}
	}
	keyIndex := make(map[string]int)
	for _, name := range m.KeyNames() {
		s, ok := signers[name]
		if !ok {
			continue
		}
		id := s.KeyID()
		det := s.Deterministic()
		rec.Reproducible = rec.Reproducible && det
		cs := sha256.Sum256(s.Cert().Raw)
		keyIndex[name] = len(rec.Keys)
		rec.Keys = append(rec.Keys, RecordKey{
			Name:          name,
			KeyID:         hex.EncodeToString(id[:]),
			Subject:       s.Cert().Subject.String(),
			CertSHA256:    hex.EncodeToString(cs[:]),
			Deterministic: det,
		})
		if p, ok := s.(interface{ Sources() []SignatureSource }); ok {
			rec.Keys[len(rec.Keys)-1].Precomputed = p.Sources()
		}
	}
	frags := lay.frags
	isFrag := make(map[string]int)
	for _, f := range frags {
		isFrag[f.src.Path] = len(rec.Policy)
		fi := lay.find(f.src.Path)
		key := lay.rule(&lay.files[fi]).key
		rec.Policy = append(rec.Policy, RecordPolicy{
			Name:   f.src.Name,
			Path:   f.src.Path,
			Digest: hex.EncodeToString([]byte(lay.digest(fi))),
			Key:    key,
			KeyID:  rec.Keys[keyIndex[key]].KeyID,
		})
	}
	// The first pass checks and counts; the files themselves are made
	// again, one at a time, while the record is written (Record.files).
	next := int32(0) // lay.files[next] is the next regular file's state
	for _, ref := range lay.entries {
		e := lay.at(ref)
		fi := int32(-1)
		if e.Type == rootfs.TypeReg {
			fi = next
			next++
		}
		if i, ok := isFrag[e.Path]; ok {
			rec.Policy[i].RecordMeta = recordMeta(e)
			continue
		}
		if fi < 0 {
			rec.Entries = append(rec.Entries, RecordEntry{Path: e.Path, RecordMeta: recordMeta(e), Target: e.Target(), Major: e.Major(), Minor: e.Minor()})
			continue
		}
		if key := lay.rule(&lay.files[fi]).key; key != "" {
			if !lay.files[fi].read {
				return nil, fmt.Errorf("%s: internal: signed file without a digest", e.Path)
			}
			rec.Keys[keyIndex[key]].Files++
		}
	}
	// One signature per unique (key, digest): the pool's count, less the
	// pairs only policy fragments have (the record counts files' signatures).
	for i := range rec.Keys {
		rec.Keys[i].Signatures = uniqueSigs[rec.Keys[i].Name]
	}
	for i, f := range frags {
		fi := lay.find(f.src.Path)
		key, digest := lay.rule(&lay.files[fi]).key, lay.digest(fi)
		if key == "" || slices.ContainsFunc(frags[:i], func(g *fragment) bool {
			o := lay.find(g.src.Path)
			return lay.rule(&lay.files[o]).key == key && lay.digest(o) == digest
		}) {
			continue
		}
		shared := false // a file that is not a fragment has the pair too
		for o := range lay.files {
			if r := lay.rule(&lay.files[o]); !r.fragment && r.key == key && lay.digest(int32(o)) == digest {
				shared = true
				break
			}
		}
		if !shared {
			rec.Keys[keyIndex[key]].Signatures--
		}
	}
	keys := rec.Keys
	rec.files = func(yield func(RecordFile) bool) {
		next := int32(0)
		for _, ref := range lay.entries {
			e := lay.at(ref)
			if e.Type != rootfs.TypeReg {
				continue
			}
			fi := next
			next++
			if _, ok := isFrag[e.Path]; ok {
				continue
			}
			fr := lay.rule(&lay.files[fi])
			rf := RecordFile{Path: e.Path, RecordMeta: recordMeta(e), Size: e.Size, Digest: hex.EncodeToString([]byte(lay.digest(fi))), EVMKey: fr.evmKey}
			if fr.key != "" {
				rf.Key, rf.KeyID = fr.key, keys[keyIndex[fr.key]].KeyID
			}
			if !yield(rf) {
				return
			}
		}
	}
	return rec, nil
}
