package pipeline

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/imaforge/imaforge/ceremony"
	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/boundedfile"
	"github.com/imaforge/imaforge/internal/sigpack"
	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/service"
	"github.com/imaforge/imaforge/signer"
	"github.com/imaforge/imaforge/signer/keyref"
	"golang.org/x/sys/unix"
)

// ErrNoSignature: a build from precomputed signatures met a digest that
// none of them covers (the file changed since the plan, or was not planned).
var ErrNoSignature = errors.New("no signature for this digest")

// LoadKey opens the signing key of a manifest key: a PEM file, a relic key
// ("relic:NAME" with relic_config), a PKCS#11 URI, checked against the
// key's certificate, or a signing service's key ("remote:NAME" with
// relic_config the relic client configuration; a service.RemoteKey, whose
// every signature is verified against the key's certificate). ko.Passphrase is the file passphrase or the token PIN.
// A token key signs in sessions parallel sessions (0: GOMAXPROCS); its
// sessions end when the process does.
func LoadKey(k *manifest.Key, ko *signer.KeyOptions, sessions int) (Key, error) {
	ref, err := k.Ref()
	if err != nil {
		return nil, err
	}
	if ref.Scheme == keyref.Remote {
		cert, err := signer.LoadCertificate(k.Cert)
		if err != nil {
			return nil, err
		}
		return service.OpenRemoteKey(context.Background(), k.RelicConfig, ref.Name, cert, service.RemoteOptions{})
	}
	if sessions <= 0 {
		sessions = runtime.GOMAXPROCS(0)
	}
	oo := &signer.OpenOptions{Sessions: sessions, RelicConfig: k.RelicConfig}
	if ko != nil {
		oo.PIN, oo.Warn = ko.Passphrase, ko.Warn
	}
	s, err := signer.OpenSigner(context.Background(), ref, k.Cert, oo)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// keyCert loads the certificate of a manifest key, with errors at the
// manifest line.
func keyCert(m *manifest.Manifest, k *manifest.Key) (*x509.Certificate, error) {
	c, err := signer.LoadCertificate(k.Cert)
	if err != nil {
		return nil, m.Errorf(k.Pos, err, "key %q", k.Name)
	}
	return c, nil
}

func certSHA256(c *x509.Certificate) string {
	d := sha256.Sum256(c.Raw)
	return hex.EncodeToString(d[:])
}

// precomputed is a Key whose signatures were made elsewhere (a ceremony
// response, evmctl sign_hash output), each verified when loaded.
type precomputed struct {
	name    string
	cert    *x509.Certificate
	hash    imasig.Hash
	values  map[string][]byte // raw digest -> security.ima value
	sources []SignatureSource
}

func (p *precomputed) SignDigest(h imasig.Hash, digest []byte) ([]byte, error) {
	if h != p.hash {
		return nil, fmt.Errorf("%w: signatures are over %s digests, not %s", ErrNoSignature, p.hash, h)
	}
	v, ok := p.values[string(digest)]
	if !ok {
		src := "the signatures given"
		if len(p.sources) > 0 {
			var files []string
			for _, s := range p.sources {
				files = append(files, s.File)
			}
			src = strings.Join(files, ", ")
		}
		return nil, fmt.Errorf("%w: %s digest %x of key %q is not in %s (the file changed since the plan, or was not planned)",
			ErrNoSignature, h, digest, p.name, src)
	}
	return append([]byte(nil), v...), nil
}

func (p *precomputed) KeyID() [4]byte           { return imasig.KeyID(p.cert) }
func (p *precomputed) Cert() *x509.Certificate  { return p.cert }
func (p *precomputed) Deterministic() bool      { return true }
func (p *precomputed) add(digest, value []byte) { p.values[string(digest)] = value }
func (p *precomputed) addSource(src SignatureSource) {
	for _, s := range p.sources {
		if s == src {
			return
		}
	}
	p.sources = append(p.sources, src)
}

// Sources lists the files this key's signatures came from.
func (p *precomputed) Sources() []SignatureSource { return p.sources }

// SignatureSource is a file of signatures made elsewhere that a build used
// (build --signatures), named in the build record for provenance.
type SignatureSource struct {
	File   string `json:"file"`
	SHA256 string `json:"sha256"` // of the file's bytes
	Format string `json:"format"` // "response" (a ceremony response) or "sign_hash" (evmctl output)
	// Request and Response are a ceremony response's request_sha256 and
	// response_sha256.
	Request  string `json:"request_sha256,omitempty"`
	Response string `json:"response_sha256,omitempty"`
}

func fileSHA256(data []byte) string {
	d := sha256.Sum256(data)
	return hex.EncodeToString(d[:])
}

// SignatureKeys returns a Key for every key of the manifest that answers
// from precomputed signatures only, so that Build needs no private key. Each
// file is a ceremony response (JSON) or `evmctl sign_hash` output (lines of
// "DIGEST  NAME IMA-HEX"). Everything is checked before the build starts:
//
//   - a response must be for this manifest (its digest) and hash algorithm,
//     and name its keys with this manifest's certificates;
//   - sign_hash lines are matched to a manifest key by the key id in the
//     value;
//   - every signature is verified over its digest with the manifest's
//     certificate, so a value by another key or over another digest fails.
//
// A digest the build needs and no file covers fails the build
// (ErrNoSignature) and leaves no image.
func SignatureKeys(m *manifest.Manifest, paths []string) (map[string]Key, error) {
	h, err := imasig.ParseHash(string(m.Hash))
	if err != nil {
		return nil, m.Errorf(m.Pos, err, "hash %q", m.Hash)
	}
	keys := map[string]*precomputed{}
	byID := map[[4]byte][]*precomputed{}
	for _, name := range m.KeyNames() {
		k := m.Keys[name]
		cert, err := keyCert(m, k)
		if err != nil {
			return nil, err
		}
		p := &precomputed{name: name, cert: cert, hash: h, values: map[string][]byte{}}
		keys[name] = p
		byID[p.KeyID()] = append(byID[p.KeyID()], p)
	}
	for _, path := range paths {
		data, err := boundedfile.ReadFile(path, boundedfile.ResponseLimit)
		if err != nil {
			return nil, err
		}
		if ceremony.IsSignHash(data) {
			if err := loadSignHash(path, data, h, byID); err != nil {
				return nil, err
			}
			continue
		}
		resp, err := ceremony.ParseResponse(data)
		if err != nil {
			return nil, &ceremony.FileError{Path: path, Err: err}
		}
		src := SignatureSource{File: path, SHA256: fileSHA256(data), Format: "response", Request: resp.Request, Response: resp.SHA256}
		if err := loadResponse(m, src, resp, h, keys); err != nil {
			return nil, &ceremony.FileError{Path: path, Err: err}
		}
	}
	out := make(map[string]Key, len(keys))
	for name, p := range keys {
		out[name] = p
	}
	return out, nil
}

func loadResponse(m *manifest.Manifest, src SignatureSource, resp *ceremony.Response, h imasig.Hash, keys map[string]*precomputed) error {
	want := hex.EncodeToString(m.Digest[:])
	if resp.Manifest.SHA256 != want {
		return fmt.Errorf("%w: the response is for manifest %s (sha256 %s), not %s (sha256 %s): plan again",
			ceremony.ErrMismatch, resp.Manifest.Name, resp.Manifest.SHA256, filepath.Base(m.File), want)
	}
	if resp.Hash != h.String() {
		return fmt.Errorf("%w: the response signs %s digests, the manifest uses %s", ceremony.ErrMismatch, resp.Hash, h)
	}
	for i := range resp.Keys {
		rk := &resp.Keys[i]
		p, ok := keys[rk.Name]
		if !ok {
			return fmt.Errorf("%w: key %q is not in the manifest", ceremony.ErrMismatch, rk.Name)
		}
		if fp := certSHA256(p.cert); rk.CertSHA256 != fp {
			return fmt.Errorf("%w: key %q was signed for certificate %s, the manifest's is %s", ceremony.ErrMismatch, rk.Name, rk.CertSHA256, fp)
		}
		vals, err := rk.Values(h, p.cert)
		if err != nil {
			return err
		}
		for d, v := range vals {
			p.add([]byte(d), v)
		}
		p.addSource(src)
	}
	return nil
}

func loadSignHash(path string, data []byte, h imasig.Hash, byID map[[4]byte][]*precomputed) error {
	lines, err := ceremony.ParseSignHash(strings.NewReader(string(data)), path)
	if err != nil {
		return err
	}
	src := SignatureSource{File: path, SHA256: fileSHA256(data), Format: "sign_hash"}
	for _, l := range lines {
		lerr := func(err error) error { return &ceremony.FileError{Path: path, Line: l.Line, Err: err} }
		if l.Sig.Hash != h {
			return lerr(fmt.Errorf("%w: a %s signature, the manifest uses %s (evmctl sign_hash -a %s)", ceremony.ErrMismatch, l.Sig.Hash, h, h))
		}
		cands := byID[l.Sig.KeyID]
		if len(cands) == 0 {
			return lerr(fmt.Errorf("%w: signed by key id %x, which no key of the manifest has", imasig.ErrUnknownKeyID, l.Sig.KeyID))
		}
		var verr error
		for _, p := range cands {
			if verr = imasig.Verify(l.Value, l.Digest, p.cert); verr == nil {
				p.add(l.Digest, l.Value)
				p.addSource(src)
				break
			}
		}
		if verr != nil {
			return lerr(fmt.Errorf("digest %x: %w", l.Digest, verr))
		}
	}
	return nil
}

// SignatureCache keeps signatures made for earlier builds, keyed by
// (certificate SHA-256, hash algorithm, digest), in packs
// (internal/sigpack):
//
//	DIR/<cert sha256 hex>/<hash name>/<time>-<random>.pack
//
// A build reads the packs of a certificate and hash once, looks every
// digest up in their indexes, verifies each value against the certificate
// before use (a value that does not verify is signed again), and writes
// what it signed as one new pack at Close. When a certificate and hash
// have more than maxPacks packs, or one was damaged, Close merges them into
// one. Two builds sharing a cache need no lock: packs are written whole and
// renamed into place, and a pack a merge removes stays readable to a build
// that opened it (two merges at once leave duplicates, merged later).
//
// Version 1 of the cache, one file per signature at
// DIR/<cert sha256 hex>/<hash name>/<digest hex[:2]>/<digest hex> holding
// the raw value, is still read when the packs have no value for a digest
// (verified the same way), and what it gives is added to the packs; its
// files are left for older imaforge versions sharing the directory.
type SignatureCache struct {
	dir          string
	hits, misses atomic.Int64
	// Warn, when not nil, gets a warning (each kind once) for a damaged
	// pack or a value that does not verify (the signatures are made
	// again either way), and makes a failure to store signatures a
	// warning instead of an error of Close (they are still used).
	Warn   func(msg string)
	warned sync.Map

	mu     sync.Mutex
	stores []*sigStore
}

// maxPacks is how many packs of one certificate and hash Close leaves
// before it merges them: each is an open and an index lookup per build.
const maxPacks = 8

// spillAt is how many new signatures a store holds in memory before it
// writes them as a pack (a cold build of a million files would otherwise
// hold every value until Close).
const spillAt = 1 << 16

// OpenSignatureCache opens (creating) the cache directory dir.
func OpenSignatureCache(dir string) (*SignatureCache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("signature cache: %w", err)
	}
	return &SignatureCache{dir: dir}, nil
}

// Stats returns how many signatures came from the cache and how many were
// made (or taken from another source) and added to it.
func (c *SignatureCache) Stats() (hits, misses int64) { return c.hits.Load(), c.misses.Load() }

func (c *SignatureCache) warnf(kind, format string, args ...any) {
	if _, seen := c.warned.LoadOrStore(kind, true); !seen && c.Warn != nil {
		c.Warn(fmt.Sprintf(format, args...))
	}
}

// Close writes the signatures made since OpenSignatureCache as new packs,
// merges packs where due and closes the packs read. A failure to write is
// an error, or a warning through Warn; the cache must not be used after.
func (c *SignatureCache) Close() error {
	c.mu.Lock()
	stores := c.stores
	c.stores = nil
	c.mu.Unlock()
	var first error
	for _, s := range stores {
		if err := s.flush(); err != nil {
			err = fmt.Errorf("signature cache %s: %w", s.dir, err)
			if c.Warn == nil && first == nil {
				first = err
			}
			c.warnf("store", "%v; not storing signatures", err)
		}
		for _, p := range s.packs {
			p.Close()
		}
	}
	return first
}

// sigStore is the part of the cache of one certificate and hash:
// DIR/<cert sha256 hex>/<hash name>.
type sigStore struct {
	c    *SignatureCache
	dir  string
	size int // digest size

	once  sync.Once
	packs []*sigpack.Pack // read-only after once, newest first

	mu      sync.Mutex
	fresh   []sigpack.Entry // made in this build, not yet in a pack
	written []string        // packs this build wrote (spilled)
	damaged []string        // packs that did not parse: merged away
	stale   bool            // a pack held a value that did not verify
	// failed is why a pack could not be written: nothing more is kept
	// or written for this store (a full disk stays full for the rest of
	// a build: a retry at every spill encoded and wrote 65,536 values to
	// fail again).
	failed error
}

func (s *sigStore) load() {
	s.once.Do(func() {
		names, err := sigpack.List(s.dir)
		if err != nil {
			s.c.warnf("list", "signature cache %s: %v; signing again", s.dir, err)
			return
		}
		for _, n := range names {
			p, err := sigpack.Open(n)
			if errors.Is(err, fs.ErrNotExist) {
				continue // merged away by another build meanwhile
			}
			if err != nil {
				s.c.warnf("damaged", "signature cache: %v; signing its signatures again", err)
				// Only a pack that does not parse is merged away; one
				// that cannot be opened (another user's, mode 0600) is
				// left to those who can read it, as the block cache does.
				if errors.Is(err, sigpack.ErrBadPack) {
					s.damaged = append(s.damaged, n)
				}
				continue
			}
			s.packs = append(s.packs, p)
		}
	})
}

// get returns the cached value of digest that verifies with v.
func (s *sigStore) get(v *imasig.Verifier, h imasig.Hash, digest []byte) ([]byte, bool) {
	s.load()
	for _, p := range s.packs {
		val, ok, err := p.Get(digest)
		if err != nil {
			s.c.warnf("read", "signature cache: %v; signing again", err)
			s.markStale()
			continue
		}
		if !ok {
			continue
		}
		if err := ceremony.VerifyValue(v, h, val, digest); err != nil {
			s.c.warnf("verify", "signature cache: %s: the value of digest %x does not verify (%v); signing again", p.Path(), digest, err)
			s.markStale()
			continue
		}
		return val, true
	}
	return nil, false
}

func (s *sigStore) markStale() {
	s.mu.Lock()
	s.stale = true
	s.mu.Unlock()
}

// add keeps a value made (or read from version 1) for the next pack.
func (s *sigStore) add(digest, val []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed != nil {
		return
	}
	s.fresh = append(s.fresh, sigpack.Entry{Digest: slices.Clone(digest), Value: val})
	if len(s.fresh) >= spillAt {
		s.spill()
	}
}

// spill writes the fresh values as a pack (s.mu held); after a failure,
// warned once, the store keeps and writes nothing more.
func (s *sigStore) spill() {
	path, err := sigpack.Write(s.dir, s.size, s.fresh)
	s.fresh = nil
	if err != nil {
		s.failed = err
		s.c.warnf("store", "signature cache %s: %v; not storing signatures", s.dir, err)
		return
	}
	s.written = append(s.written, path)
}

// flush writes the fresh values as a pack and merges the packs when there
// are more than maxPacks or one was damaged or stale.
func (s *sigStore) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.fresh) > 0 { // none once a pack failed (add)
		s.spill()
	}
	if s.failed != nil {
		return s.failed
	}
	if len(s.packs)+len(s.written) <= maxPacks && len(s.damaged) == 0 && !s.stale {
		return nil
	}
	// Merge: newest first (this build's packs, then the packs read), so
	// a value made again replaces one that did not verify.
	var all []sigpack.Entry
	var merged []string
	for _, path := range slices.Backward(s.written) {
		p, err := sigpack.Open(path)
		if err != nil {
			return err
		}
		es, err := p.Entries()
		p.Close()
		if err != nil {
			return err
		}
		all = append(all, es...)
		merged = append(merged, path)
	}
	for _, p := range s.packs {
		es, err := p.Entries()
		if err != nil {
			continue // cut short meanwhile: its values are lost, not wrong
		}
		all = append(all, es...)
		merged = append(merged, p.Path())
	}
	if _, err := sigpack.Write(s.dir, s.size, all); err != nil {
		return err
	}
	for _, path := range append(merged, s.damaged...) {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// store returns the part of the cache for the certificate directory
// certDir and h.
func (c *SignatureCache) store(certDir string, h imasig.Hash) *sigStore {
	c.mu.Lock()
	defer c.mu.Unlock()
	dir := filepath.Join(certDir, h.String())
	for _, s := range c.stores {
		if s.dir == dir {
			return s
		}
	}
	s := &sigStore{c: c, dir: dir, size: h.Size()}
	c.stores = append(c.stores, s)
	return s
}

// legacyPath is the version 1 entry of digest made with h under a
// certificate's directory certDir.
func legacyPath(certDir string, h imasig.Hash, digest []byte) string {
	d := hex.EncodeToString(digest)
	return filepath.Join(certDir, h.String(), d[:2], d)
}

// Wrap returns a Key for cert that answers from the cache and asks next for
// what is missing, adding it. next is called at the first miss only, so a
// build served entirely from the cache opens no key (and asks no PIN).
func (c *SignatureCache) Wrap(name string, cert *x509.Certificate, next func() (Key, error)) (Key, error) {
	v, err := signer.NewVerifier(cert)
	if err != nil {
		return nil, err
	}
	return &cachedKey{c: c, name: name, cert: cert, dir: filepath.Join(c.dir, certSHA256(cert)), v: v, next: next}, nil
}

type cachedKey struct {
	c    *SignatureCache
	name string
	cert *x509.Certificate
	dir  string // DIR/<cert sha256 hex>
	v    *imasig.Verifier

	mu     sync.Mutex
	stores map[imasig.Hash]*sigStore

	once sync.Once
	next func() (Key, error)
	key  Key
	err  error
	// remote: the key is a signing service's, which signs by path.
	remote bool
}

// NeedsPath reports whether the wrapped key signs by path (PathKey).
func (k *cachedKey) NeedsPath() bool { return k.remote }

func (k *cachedKey) SignDigest(h imasig.Hash, digest []byte) ([]byte, error) {
	return k.SignPath(h, "", digest)
}

func (k *cachedKey) store(h imasig.Hash) *sigStore {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.stores[h]
	if s == nil {
		s = k.c.store(k.dir, h)
		if k.stores == nil {
			k.stores = map[imasig.Hash]*sigStore{}
		}
		k.stores[h] = s
	}
	return s
}

// SignPath returns the cached value of digest, else the wrapped key's
// (signWith: by path for a remote key), verified and added to the cache.
func (k *cachedKey) SignPath(h imasig.Hash, path string, digest []byte) ([]byte, error) {
	s := k.store(h)
	if val, ok := s.get(k.v, h, digest); ok {
		k.c.hits.Add(1)
		return val, nil
	}
	if val, err := boundedfile.ReadFile(legacyPath(k.dir, h, digest), boundedfile.SmallLimit); err == nil {
		if ceremony.VerifyValue(k.v, h, val, digest) == nil {
			k.c.hits.Add(1)
			s.add(digest, val)
			return val, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENOTDIR) {
		return nil, fmt.Errorf("signature cache: %w", err)
	}
	k.once.Do(func() {
		k.key, k.err = k.next()
		if k.err == nil && !k.key.Cert().Equal(k.cert) {
			k.err = fmt.Errorf("key %q: the signing key's certificate is not the cached one", k.name)
		}
	})
	if k.err != nil {
		return nil, k.err
	}
	val, err := signWith(k.key, h, path, digest)
	if err != nil {
		return nil, err
	}
	if err := ceremony.VerifyValue(k.v, h, val, digest); err != nil {
		return nil, fmt.Errorf("key %q made a signature that does not verify: %w", k.name, err)
	}
	k.c.misses.Add(1)
	s.add(digest, val)
	return val, nil
}

func (k *cachedKey) KeyID() [4]byte          { return imasig.KeyID(k.cert) }
func (k *cachedKey) Cert() *x509.Certificate { return k.cert }

// Deterministic: RSA PKCS#1 v1.5 always is; otherwise the key's answer
// once it was opened, else false (values may come from a randomized
// signer).
func (k *cachedKey) Deterministic() bool {
	if _, ok := k.cert.PublicKey.(*rsa.PublicKey); ok {
		return true
	}
	if k.key != nil {
		return k.key.Deterministic()
	}
	return false
}

// CacheKeys wraps a Key for every key of the manifest with the cache at
// dir: keys[name] when given (precomputed signatures, a test key), else the
// manifest's key opened with load at the first cache miss.
func CacheKeys(m *manifest.Manifest, cache *SignatureCache, keys map[string]Key, load func(*manifest.Key) (Key, error)) (map[string]Key, error) {
	out := make(map[string]Key, len(m.Keys))
	for _, name := range m.KeyNames() {
		k := m.Keys[name]
		cert, err := keyCert(m, k)
		if err != nil {
			return nil, err
		}
		next := func() (Key, error) {
			if s, ok := keys[name]; ok {
				return s, nil
			}
			s, err := load(k)
			if err != nil {
				return nil, m.Errorf(k.Pos, err, "key %q", name)
			}
			return s, nil
		}
		ck, err := cache.Wrap(name, cert, next)
		if err != nil {
			return nil, m.Errorf(k.Pos, err, "key %q", name)
		}
		if ref, err := k.Ref(); err == nil && ref.Scheme == keyref.Remote {
			ck.(*cachedKey).remote = true
		}
		out[name] = ck
	}
	return out, nil
}
