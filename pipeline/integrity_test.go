package pipeline

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imaforge/imaforge/integrity"
	"github.com/imaforge/imaforge/integrity/verity"
	"github.com/imaforge/imaforge/internal/testenv"
	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/pki"
	"github.com/imaforge/imaforge/squashfs"
	"github.com/imaforge/imaforge/verify"
)

const integrityManifest = `version: 1
image:
  output: out/img.sqsh
  compression: %s
  block_size: 4K
  epoch: 1700000000
  owner: {uid: 0, gid: 0}
  verity: %v
  signature_key: image
hash: sha256
trust:
  roots: [pki/root.pem]
  intermediates: [pki/owner.pem]
  crls: [pki/root.crl, pki/owner.crl]
keys:
  manufacturer: {cert: pki/mfr.pem, key: pki/mfr.key}
  image: {cert: pki/image.pem, key: pki/image.key}
sources:
  - from: src/
    to: /
rules:
  - match: /**
    key: manufacturer
`

// integrityProject is a source tree (one 0755 program, other files 0644),
// a root -> owner CA -> IMA key hierarchy and a manifest.
type integrityProject struct {
	dir string
	h   *hierarchy
}

func newIntegrityProject(t *testing.T) *integrityProject {
	t.Helper()
	dir := t.TempDir()
	h := newHierarchy(t, filepath.Join(dir, "pki"))
	h.ima(t, "mfr", true, nil, time.Now(), 0)
	h.ima(t, "image", true, nil, time.Now(), 0)
	src := filepath.Join(dir, "src")
	for p, content := range map[string]string{
		"usr/bin/tool": strings.Repeat("#!/bin/sh\necho tool\n", 700),
		"etc/conf":     "key=value\n",
		"usr/lib/big":  strings.Repeat("0123456789abcdef", 40000),
	} {
		integMust(t, os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755))
		integMust(t, os.WriteFile(filepath.Join(src, p), []byte(content), 0o644))
	}
	integMust(t, os.Chmod(filepath.Join(src, "usr/bin/tool"), 0o755))
	return &integrityProject{dir: dir, h: h}
}

func (p *integrityProject) build(t *testing.T, comp string, verity bool) (*Result, *manifest.Manifest) {
	t.Helper()
	path := filepath.Join(p.dir, "m.yaml")
	integMust(t, os.WriteFile(path, []byte(fmt.Sprintf(integrityManifest, comp, verity)), 0o644))
	m, err := manifest.Load(path)
	integMust(t, err)
	res, err := build(t, m, 0)
	if err != nil {
		t.Fatal(err)
	}
	return res, m
}

func (p *integrityProject) trust(t *testing.T) *pki.TrustStore {
	t.Helper()
	ts, err := pki.LoadTrustStore(pki.TrustConfig{Roots: []string{"pki/root.pem"}, Intermediates: []string{"pki/owner.pem"}, CRLs: []string{"pki/root.crl", "pki/owner.crl"}}, p.dir)
	integMust(t, err)
	return ts
}

func integMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func integRun(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(testenv.NeedTool(t, name), args...).CombinedOutput()
	return string(out), err
}

// opensslVerify checks a detached CMS signature with openssl against the
// hierarchy's root; the owner CA comes from the message. IMA certificates
// carry extendedKeyUsage codeSigning, which OpenSSL's default S/MIME purpose
// refuses, hence -purpose any (see docs/integrity.md).
func (p *integrityProject) opensslVerify(t *testing.T, sig, content string) (string, error) {
	return integRun(t, "openssl", "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any", "-in", sig, "-content", content,
		"-CAfile", filepath.Join(p.dir, "pki/root.pem"), "-out", os.DevNull)
}

// TestBuildVerity: image.verity appends a hash tree that `veritysetup
// verify` accepts with the recorded root hash and offset; `veritysetup
// format` over a copy of the data part with the recorded salt and UUID
// writes the same tree byte for byte (so the same root hash); the CMS signatures over the image, the descriptor and the root hash
// verify with openssl and integrity.Verify*, and fail after one byte of the
// image changes; a rebuild gives the same image, signatures and record.
func TestBuildVerity(t *testing.T) {
	testenv.NeedTool(t, "veritysetup")
	p := newIntegrityProject(t)
	res, m := p.build(t, "gzip", true)
	rec := res.Record
	v := rec.Verity
	if v == nil || rec.Signature == nil {
		t.Fatalf("record has no verity or signature: %+v", rec)
	}
	img := res.ImagePath
	st, err := os.Stat(img)
	integMust(t, err)
	if v.DataSize != v.DataBlocks*4096 || v.HashOffset != v.DataSize || uint64(st.Size()) != v.HashOffset+v.HashSize ||
		rec.Image.Size != st.Size() {
		t.Fatalf("verity %+v, image %d bytes", v, st.Size())
	}
	if v.DataSize != (res.Stats.BytesUsed+4095)/4096*4096 {
		t.Errorf("data size %d, SquashFS bytes used %d", v.DataSize, res.Stats.BytesUsed)
	}
	if want := hex.EncodeToString(integrity.Salt(m.Digest[:])); v.Salt != want {
		t.Errorf("salt %s, want %s (from the manifest digest)", v.Salt, want)
	}

	if out, err := integRun(t, "veritysetup", "verify", img, img, v.RootHash, "--hash-offset", fmt.Sprint(v.HashOffset)); err != nil {
		t.Fatalf("veritysetup verify: %v\n%s", err, out)
	}
	data, err := os.ReadFile(img)
	integMust(t, err)
	peer := filepath.Join(t.TempDir(), "peer")
	integMust(t, os.WriteFile(peer, data[:v.DataSize], 0o644))
	out, err := integRun(t, "veritysetup", "format", "--hash", "sha256", "--data-block-size", "4096", "--hash-block-size", "4096",
		"--salt", v.Salt, "--uuid", v.UUID, "--hash-offset", fmt.Sprint(v.HashOffset), "--data-blocks", fmt.Sprint(v.DataBlocks), peer, peer)
	if err != nil {
		t.Fatalf("veritysetup format: %v\n%s", err, out)
	}
	if !strings.Contains(out, v.RootHash) {
		t.Errorf("veritysetup format gives another root hash than %s:\n%s", v.RootHash, out)
	}
	pd, err := os.ReadFile(peer)
	integMust(t, err)
	if !bytes.Equal(pd, data) {
		t.Errorf("veritysetup format's image (%d bytes) differs from imaforge's (%d bytes)", len(pd), len(data))
	}

	// Signatures.
	for _, f := range []string{".cms", ".verity", ".verity.cms", ".roothash.p7s"} {
		if _, err := os.Stat(img + f); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := p.opensslVerify(t, img+".cms", img); err != nil {
		t.Fatalf("openssl, image: %v\n%s", err, out)
	}
	if out, err := p.opensslVerify(t, img+".verity.cms", img+".verity"); err != nil {
		t.Fatalf("openssl, descriptor: %v\n%s", err, out)
	}
	rootHex := filepath.Join(t.TempDir(), "roothash")
	integMust(t, os.WriteFile(rootHex, []byte(v.RootHash), 0o644))
	if out, err := p.opensslVerify(t, img+".roothash.p7s", rootHex); err != nil {
		t.Fatalf("openssl, root hash: %v\n%s", err, out)
	}
	desc, err := os.ReadFile(img + ".verity")
	integMust(t, err)
	d, err := integrity.ParseDescriptor(desc)
	integMust(t, err)
	if hex.EncodeToString(d.RootHash) != v.RootHash || d.HashOffset != v.HashOffset {
		t.Errorf("descriptor %+v, record %+v", d, v)
	}
	sig, err := os.ReadFile(img + ".cms")
	integMust(t, err)
	dsig, err := os.ReadFile(img + ".verity.cms")
	integMust(t, err)
	f, err := os.Open(img)
	integMust(t, err)
	defer f.Close()
	if _, err := integrity.VerifyImage(f, st.Size(), sig, p.trust(t), time.Now()); err != nil {
		t.Fatalf("VerifyImage: %v", err)
	}
	if _, err := integrity.VerifyVerity(f, st.Size(), desc, dsig, p.trust(t), time.Now()); err != nil {
		t.Fatalf("VerifyVerity: %v", err)
	}

	// Reproducible.
	recBytes, err := rec.Marshal()
	integMust(t, err)
	sigs := map[string][]byte{}
	for _, suf := range []string{"", ".cms", ".verity", ".verity.cms", ".roothash.p7s"} {
		sigs[suf], err = os.ReadFile(img + suf)
		integMust(t, err)
	}
	res2, _ := p.build(t, "gzip", true)
	rec2, err := res2.Record.Marshal()
	integMust(t, err)
	if !bytes.Equal(recBytes, rec2) {
		t.Error("rebuild: record differs")
	}
	for suf, want := range sigs {
		got, err := os.ReadFile(img + suf)
		integMust(t, err)
		if !bytes.Equal(got, want) {
			t.Errorf("rebuild: image%s differs", suf)
		}
	}

	// One byte of file data changed.
	off := int64(v.DataSize / 2)
	integFlip(t, img, off)
	if out, err := integRun(t, "veritysetup", "verify", img, img, v.RootHash, "--hash-offset", fmt.Sprint(v.HashOffset)); err == nil {
		t.Fatalf("veritysetup verify accepted a changed byte:\n%s", out)
	}
	if out, err := p.opensslVerify(t, img+".cms", img); err == nil {
		t.Fatalf("openssl accepted a changed image:\n%s", out)
	}
	f2, err := os.Open(img) // the rebuild replaced the file f has open
	integMust(t, err)
	defer f2.Close()
	_, err = integrity.VerifyVerity(f2, st.Size(), desc, dsig, p.trust(t), time.Now())
	var te *integrity.TamperedError
	if !errors.As(err, &te) || len(te.Changes) != 1 || te.Changes[0].Offset != off/4096*4096 {
		t.Fatalf("VerifyVerity after a flip: %v", err)
	}
}

func integFlip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	integMust(t, err)
	defer f.Close()
	b := []byte{0}
	_, err = f.ReadAt(b, off)
	integMust(t, err)
	b[0] ^= 0x04
	_, err = f.WriteAt(b, off)
	integMust(t, err)
}

// setSetuid sets the setuid bit of the only 0755 regular file in the
// image's (uncompressed) inode table and returns the offset changed.
func setSetuid(t *testing.T, img string) int64 {
	t.Helper()
	data, err := os.ReadFile(img)
	integMust(t, err)
	le := binary.LittleEndian
	inodes, dirs := le.Uint64(data[64:]), le.Uint64(data[72:])
	table := data[inodes:dirs]
	var hits []int
	for _, typ := range []uint16{2, 9} { // basic and extended regular file
		pat := le.AppendUint16(le.AppendUint16(nil, typ), 0o755)
		for i := 0; i+len(pat) <= len(table); i++ {
			if bytes.Equal(table[i:i+len(pat)], pat) {
				hits = append(hits, i)
			}
		}
	}
	if len(hits) != 1 {
		t.Fatalf("found %d 0755 file inodes in the inode table", len(hits))
	}
	off := int64(inodes) + int64(hits[0]) + 3 // high byte of the mode
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	integMust(t, err)
	defer f.Close()
	_, err = f.WriteAt([]byte{byte((0o4755 >> 8) & 0xff)}, off)
	integMust(t, err)
	return off
}

// TestSetuidTamper: a setuid bit added to a signed program inside the
// image's inode table leaves every security.ima valid (package verify finds
// nothing), but the whole-image checks report the image as tampered and name
// the inode table; dm-verity refuses it too.
func TestSetuidTamper(t *testing.T) {
	for _, withVerity := range []bool{false, true} {
		t.Run(fmt.Sprintf("verity=%v", withVerity), func(t *testing.T) {
			p := newIntegrityProject(t)
			res, _ := p.build(t, "none", withVerity)
			img := res.ImagePath
			off := setSetuid(t, img)

			f, err := os.Open(img)
			integMust(t, err)
			defer f.Close()
			st, err := f.Stat()
			integMust(t, err)
			z, err := squashfs.NewReader(f, st.Size())
			integMust(t, err)
			fi, err := z.Stat("usr/bin/tool")
			integMust(t, err)
			if fi.Mode()&fs.ModeSetuid == 0 {
				t.Fatalf("mode %v: the setuid bit did not land", fi.Mode())
			}
			ts, err := pki.LoadTrustStore(pki.TrustConfig{Roots: []string{"pki/root.pem"},
				Intermediates: []string{"pki/owner.pem", "pki/mfr.pem"}, CRLs: []string{"pki/root.crl", "pki/owner.crl"}}, p.dir) // mfr: the key the file signatures name
			integMust(t, err)
			rep, err := verify.Image(context.Background(), f, st.Size(), verify.Options{Trust: ts, At: time.Now()})
			integMust(t, err)
			if !rep.OK || rep.Summary.Failed != 0 || rep.Summary.Signed != 3 {
				t.Fatalf("file signatures: ok=%v %+v", rep.OK, rep.Summary)
			}

			sig, err := os.ReadFile(img + ".cms")
			integMust(t, err)
			_, err = integrity.VerifyImage(f, st.Size(), sig, p.trust(t), time.Now())
			var te *integrity.TamperedError
			if !errors.As(err, &te) || !errors.Is(err, integrity.ErrTampered) {
				t.Fatalf("VerifyImage: %v, want ErrTampered", err)
			}
			if withVerity {
				// The image's own hash tree tells where.
				if len(te.Changes) != 1 || te.Changes[0].Offset != off/4096*4096 || !strings.Contains(te.Changes[0].String(), "inode table") {
					t.Errorf("changes %v, want the block at %d in the inode table", te.Changes, off)
				}
				desc, err := os.ReadFile(img + ".verity")
				integMust(t, err)
				dsig, err := os.ReadFile(img + ".verity.cms")
				integMust(t, err)
				_, err = integrity.VerifyVerity(f, st.Size(), desc, dsig, p.trust(t), time.Now())
				if !errors.Is(err, integrity.ErrTampered) || !strings.Contains(err.Error(), "inode table") {
					t.Errorf("VerifyVerity: %v", err)
				}
				v := res.Record.Verity
				if out, err := integRun(t, "veritysetup", "verify", img, img, v.RootHash, "--hash-offset", fmt.Sprint(v.HashOffset)); err == nil {
					t.Errorf("veritysetup verify accepted the setuid image:\n%s", out)
				}
			}
		})
	}
}

// TestImageSignatureUntrusted: a signature checked against a trust store
// whose root did not issue the signer, or at a time its certificate has
// expired, is refused before the image is read.
func TestImageSignatureUntrusted(t *testing.T) {
	p := newIntegrityProject(t)
	res, _ := p.build(t, "gzip", false)
	other := newHierarchy(t, filepath.Join(t.TempDir(), "other"))
	ts, err := pki.NewTrustStore([]*x509.Certificate{other.Root.Cert}, nil, nil)
	integMust(t, err)
	sig, err := os.ReadFile(res.ImagePath + ".cms")
	integMust(t, err)
	f, err := os.Open(res.ImagePath)
	integMust(t, err)
	defer f.Close()
	if _, err := integrity.VerifyImage(f, res.Record.Image.Size, sig, ts, time.Now()); !errors.Is(err, integrity.ErrUntrusted) {
		t.Fatalf("VerifyImage with a foreign root: %v, want ErrUntrusted", err)
	}
	later := time.Now().Add(5 * 365 * 24 * time.Hour) // the IMA certificate lives a year
	if _, err := integrity.VerifyImage(f, res.Record.Image.Size, sig, p.trust(t), later); !errors.Is(err, integrity.ErrUntrusted) || !errors.Is(err, pki.ErrExpired) {
		t.Fatalf("VerifyImage in five years: %v, want ErrUntrusted and pki.ErrExpired", err)
	}
	if _, err := integrity.VerifyImage(f, res.Record.Image.Size, sig, p.trust(t), time.Time{}); err != nil {
		t.Fatalf("VerifyImage without dates: %v", err)
	}
	if res.Record.Verity != nil {
		t.Error("verity record without image.verity")
	}
	if got := res.Record.Signature.Files; len(got) != 1 || got[0] != "img.sqsh.cms" {
		t.Errorf("signature files %v", got)
	}
}

// startProgress records whether a build started reading files.
type startProgress struct{ started bool }

func (p *startProgress) Start(int, int64) { p.started = true }
func (p *startProgress) Add(int, int64)   {}
func (p *startProgress) Done()            {}

// TestImageSignatureNeedsPrivateKey: a signature key that only relays
// signatures made elsewhere (a ceremony's response) cannot sign the image:
// the build fails naming the key before reading any file, and leaves no
// output.
func TestImageSignatureNeedsPrivateKey(t *testing.T) {
	p := newIntegrityProject(t)
	body := strings.Replace(fmt.Sprintf(integrityManifest, "gzip", false), "    key: manufacturer", "    sign: false", 1)
	path := filepath.Join(p.dir, "m.yaml")
	integMust(t, os.WriteFile(path, []byte(body), 0o644))
	m, err := manifest.Load(path)
	integMust(t, err)
	keys, err := SignatureKeys(m, nil)
	integMust(t, err)
	var prog startProgress
	_, err = Build(context.Background(), Options{Manifest: m, ToolVersion: "test", Keys: keys, Progress: &prog})
	if err == nil || !strings.Contains(err.Error(), `key "image" has no private key`) {
		t.Fatalf("build: %v", err)
	}
	if prog.started {
		t.Error("the build read files before finding that the image key cannot sign")
	}
	if _, err := os.Stat(filepath.Join(p.dir, "out", "img.sqsh")); err == nil {
		t.Error("a failed build left the image")
	}
	if ents, _ := os.ReadDir(filepath.Join(p.dir, "out")); len(ents) != 0 {
		t.Errorf("a failed build left %d files in out/", len(ents))
	}
}

// TestBuildVerityDuplicates: with duplicate files (the SquashFS writer
// rolls their data back, seeking and rewriting under the block hasher) and
// every compressor, the tree hashed while writing is the tree of the
// finished image, computed again from its bytes.
func TestBuildVerityDuplicates(t *testing.T) {
	for _, comp := range []string{"gzip", "zstd", "none"} {
		t.Run(comp, func(t *testing.T) {
			p := newProject(t)
			writeTree(t, filepath.Join(p.dir, "src"), sortedPaths(true), 0o644)
			body := strings.Replace(fmt.Sprintf(manifestTmpl, comp, "src"), "  epoch: 1700000000\n", "  epoch: 1700000000\n  verity: true\n", 1)
			m := p.manifest(t, comp, "src", body)
			res, err := build(t, m, 2)
			integMust(t, err)
			if res.Stats.Duplicates == 0 {
				t.Fatal("no duplicate was rolled back")
			}
			v := res.Record.Verity
			f, err := os.Open(res.ImagePath)
			integMust(t, err)
			defer f.Close()
			salt, _ := hex.DecodeString(v.Salt)
			tree, err := verity.Compute(f, verity.Params{DataBlocks: v.DataBlocks, HashOffset: v.HashOffset, Salt: salt})
			integMust(t, err)
			if tree.RootHex() != v.RootHash {
				t.Fatalf("root of the finished image %s, recorded %s", tree.RootHex(), v.RootHash)
			}
			if err := verity.Verify(f, tree.Params, tree.Root()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestImageSignatureScopedKey: a key scoped to part of the image may sign
// only files inside its scope, never the whole image: as
// image.signature_key (CMS, dm-verity root hash) and for a RAUC bundle the
// build refuses it before reading any file, naming the scope; a key scoped
// to /** may. A CMS signature made by a scoped key anyway is refused by
// integrity.VerifyImage as out of scope.
func TestImageSignatureScopedKey(t *testing.T) {
	p := newIntegrityProject(t)
	p.h.ima(t, "image", true, []string{"/opt/t/**"}, time.Now(), 0)
	path := filepath.Join(p.dir, "m.yaml")
	integMust(t, os.WriteFile(path, []byte(fmt.Sprintf(integrityManifest, "gzip", true)), 0o644))
	m, err := manifest.Load(path)
	integMust(t, err)
	var prog startProgress
	_, err = Build(context.Background(), Options{Manifest: m, ToolVersion: "test", Progress: &prog})
	if !errors.Is(err, pki.ErrOutOfScope) || !strings.Contains(err.Error(), "/opt/t/**") {
		t.Fatalf("build with a scoped image key: %v, want pki.ErrOutOfScope naming the scope", err)
	}
	if prog.started {
		t.Error("the build read files before refusing the image key")
	}
	_, err = WriteRAUCBundle(context.Background(), RAUCOptions{Manifest: m, Out: filepath.Join(p.dir, "b.raucb"), Compatible: "x", Key: "image"})
	if err == nil {
		t.Fatal("RAUC bundle signed by a scoped key")
	}

	// Signed anyway (outside imaforge): verify refuses it.
	p.h.ima(t, "image", true, []string{"/**"}, time.Now(), 0)
	res, _ := p.build(t, "gzip", false)
	scoped := p.h.ima(t, "image", true, []string{"/opt/t/**"}, time.Now(), 0)
	digest, err := hex.DecodeString(res.Record.Image.SHA256)
	integMust(t, err)
	s := &integrity.Signer{Key: scoped.Key, Certs: []*x509.Certificate{scoped.Cert}}
	sig, err := s.SignImage(digest)
	integMust(t, err)
	f, err := os.Open(res.ImagePath)
	integMust(t, err)
	defer f.Close()
	_, err = integrity.VerifyImage(f, res.Record.Image.Size, sig, p.trust(t), time.Now())
	if !errors.Is(err, pki.ErrOutOfScope) || !errors.Is(err, integrity.ErrUntrusted) {
		t.Fatalf("VerifyImage of a signature by a scoped key: %v, want ErrUntrusted and pki.ErrOutOfScope", err)
	}
}
