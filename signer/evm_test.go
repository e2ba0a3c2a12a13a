package signer

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/testenv"
)

// getxattr reads one xattr of path (not following symlinks).
func getxattr(t *testing.T, path, name string) []byte {
	t.Helper()
	buf := make([]byte, 4096)
	n, err := unix.Lgetxattr(path, name, buf)
	if err != nil {
		t.Fatalf("getxattr %s %s: %v", path, name, err)
	}
	return buf[:n]
}

// evmMetaOf reads what a portable EVM signature covers from a file, as the
// kernel would see it.
func evmMetaOf(t *testing.T, path string, l imasig.EVMXattrs) imasig.EVMMeta {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	m := imasig.EVMMeta{UID: st.Uid, GID: st.Gid, Mode: st.Mode, Xattrs: map[string][]byte{}}
	for _, name := range l {
		buf := make([]byte, 4096)
		n, err := unix.Lgetxattr(path, name, buf)
		if err == nil {
			m.Xattrs[name] = buf[:n]
		}
	}
	return m
}

// signEVMHere makes the security.ima and security.evm values imaforge would
// give a file with content and meta.
func signEVMHere(t *testing.T, s *Signer, h imasig.Hash, content []byte, l imasig.EVMXattrs, m imasig.EVMMeta) (ima, evm []byte) {
	t.Helper()
	d, err := imasig.DigestReader(h, bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	ima, err = s.SignDigest(h, d)
	if err != nil {
		t.Fatal(err)
	}
	if m.Xattrs == nil {
		m.Xattrs = map[string][]byte{}
	}
	m.Xattrs[imasig.XattrName] = ima
	ed, err := imasig.EVMDigest(h, l, m)
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.SignDigest(h, ed)
	if err != nil {
		t.Fatal(err)
	}
	evm, err = imasig.EVMValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return ima, evm
}

// TestEVMDigestKnownAnswer pins the digest layout: the xattr values in list
// order, then 24 bytes of h_misc. The expected value is sha256 over
// "IMA" || "CAP" || 00*12 || e8030000 || e9030000 || ed89 || 0000, computed
// with: { printf 'IMACAP'; head -c12 /dev/zero; printf '\xe8\x03\0\0\xe9\x03\0\0\xed\x89\0\0'; } | sha256sum
func TestEVMDigestKnownAnswer(t *testing.T) {
	m := imasig.EVMMeta{UID: 1000, GID: 1001, Mode: 0o104755, Xattrs: map[string][]byte{
		imasig.XattrCapability: []byte("CAP"), imasig.XattrName: []byte("IMA"), "user.other": []byte("ignored"),
		imasig.XattrSMACK: []byte("not in debian-6.1"),
	}}
	d, err := imasig.EVMDigest(imasig.SHA256, imasig.EVMXattrsDebian61, m)
	if err != nil {
		t.Fatal(err)
	}
	const want = "6e494e3d754329302a08eb366112717027b03525882cfdd7c274140ccb1df9fe"
	if hex.EncodeToString(d) != want {
		t.Fatalf("digest %x, want %s", d, want)
	}
	if _, err := imasig.EVMDigest(imasig.SHA256, imasig.EVMXattrsDebian61, imasig.EVMMeta{Mode: 0o100644}); !errors.Is(err, imasig.ErrEVMNoIMA) {
		t.Errorf("without security.ima: %v", err)
	}
	// SMACK64 counts only where the list has it.
	d2, _ := imasig.EVMDigest(imasig.SHA256, imasig.EVMXattrsEvmctl, m)
	if bytes.Equal(d, d2) {
		t.Error("security.SMACK64 did not change the digest under the evmctl list")
	}
}

// TestEVMEvmctlInterop: for every key type evmctl signs and every hash,
// evmctl sign --portable --imasig and imaforge give the same security.ima
// and security.evm bytes (RSA; ECDSA is randomized in evmctl, so only
// verification is compared); each tool verifies the other's values; and both
// refuse the file after chmod u+s, chown, chgrp, or a security.ima swapped
// for another valid one.
func TestEVMEvmctlInterop(t *testing.T) {
	testenv.NeedTool(t, "evmctl")
	testenv.NeedRoot(t)
	content := []byte("evm interop: imaforge and evmctl\n")
	other := []byte("another file signed by the same key\n")
	for _, k := range []string{"rsa2048", "rsa4096", "p256", "p384"} {
		s := loadSigner(t, k)
		v, err := imasig.NewVerifier(s.Cert())
		if err != nil {
			t.Fatal(err)
		}
		der := abs(t, keyPath(k+".der"))
		key := abs(t, keyPath(k+".key"))
		rsa := k[:3] == "rsa"
		for _, h := range []imasig.Hash{imasig.SHA256, imasig.SHA512} {
			t.Run(k+"/"+h.String(), func(t *testing.T) {
				dir := t.TempDir()
				f := filepath.Join(dir, "theirs")
				if err := os.WriteFile(f, content, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Chown(f, 1000, 1001); err != nil {
					t.Fatal(err)
				}
				if err := unix.Chmod(f, 0o4755); err != nil { // setuid is signed too
					t.Fatal(err)
				}
				if err := unix.Lsetxattr(f, imasig.XattrCapability, []byte{1, 0, 0, 2, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0); err != nil {
					t.Fatal(err)
				}
				if err := evmctl(t, "sign", "--portable", "--imasig", "--key", key, "-a", h.String(), f); err != nil {
					t.Fatal(err)
				}
				theirIMA, theirEVM := getxattr(t, f, imasig.XattrName), getxattr(t, f, imasig.EVMXattrName)
				if theirEVM[0] != byte(imasig.TypePortableSignature) {
					t.Fatalf("evmctl made type %#x", theirEVM[0])
				}
				meta := evmMetaOf(t, f, imasig.EVMXattrsEvmctl)
				delete(meta.Xattrs, imasig.XattrName)
				ourIMA, ourEVM := signEVMHere(t, s, h, content, imasig.EVMXattrsEvmctl, meta)
				if rsa {
					if !bytes.Equal(ourIMA, theirIMA) {
						t.Errorf("security.ima differs:\nours   %x\nevmctl %x", ourIMA, theirIMA)
					}
					if !bytes.Equal(ourEVM, theirEVM) {
						t.Errorf("security.evm differs:\nours   %x\nevmctl %x", ourEVM, theirEVM)
					}
				}
				// evmctl's values verify here.
				if err := v.VerifyEVM(theirEVM, imasig.EVMXattrsEvmctl, evmMetaOf(t, f, imasig.EVMXattrsEvmctl)); err != nil {
					t.Errorf("evmctl's security.evm does not verify here: %v", err)
				}
				// ours verify with evmctl.
				g := filepath.Join(dir, "ours")
				if err := os.WriteFile(g, content, 0o755); err != nil {
					t.Fatal(err)
				}
				mustSetMeta(t, g, meta, ourIMA, ourEVM)
				if err := evmctl(t, "verify", "--key", der, g); err != nil {
					t.Errorf("evmctl rejects our security.evm: %v", err)
				}
				if err := evmctl(t, "ima_verify", "--key", der, g); err != nil {
					t.Errorf("evmctl rejects our security.ima: %v", err)
				}

				// Tampering with metadata offline: both tools refuse.
				swapIMA, _ := signEVMHere(t, s, h, other, imasig.EVMXattrsEvmctl, imasig.EVMMeta{})
				for _, tc := range []struct {
					name string
					do   func(p string) error
				}{
					{"chmod", func(p string) error { return unix.Chmod(p, 0o6755) }},
					{"chown", func(p string) error { return os.Lchown(p, 0, 1001) }},
					{"chgrp", func(p string) error { return os.Lchown(p, 1000, 0) }},
					{"swap-ima", func(p string) error { return unix.Lsetxattr(p, imasig.XattrName, swapIMA, 0) }},
					{"drop-cap", func(p string) error { return unix.Lremovexattr(p, imasig.XattrCapability) }},
				} {
					for _, p := range []string{f, g} {
						c := p + "." + tc.name
						if err := os.WriteFile(c, content, 0o755); err != nil {
							t.Fatal(err)
						}
						mustSetMeta(t, c, evmMetaOf(t, p, imasig.EVMXattrsEvmctl), getxattr(t, p, imasig.XattrName), getxattr(t, p, imasig.EVMXattrName))
						if err := tc.do(c); err != nil {
							t.Fatal(err)
						}
						if evmctl(t, "verify", "--key", der, c) == nil {
							t.Errorf("%s: evmctl accepts %s", tc.name, filepath.Base(p))
						}
						err := v.VerifyEVM(getxattr(t, c, imasig.EVMXattrName), imasig.EVMXattrsEvmctl, evmMetaOf(t, c, imasig.EVMXattrsEvmctl))
						if !errors.Is(err, imasig.ErrBadSignature) {
							t.Errorf("%s: imaforge on %s: %v", tc.name, filepath.Base(p), err)
						}
					}
				}
			})
		}
	}
}

// mustSetMeta gives path the owner, mode and xattrs of m plus the two
// values, in that order: chown drops security.capability.
func mustSetMeta(t *testing.T, path string, m imasig.EVMMeta, ima, evm []byte) {
	t.Helper()
	if err := os.Lchown(path, int(m.UID), int(m.GID)); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(path, m.Mode&0o7777); err != nil {
		t.Fatal(err)
	}
	for name, val := range m.Xattrs {
		if name == imasig.XattrName {
			continue
		}
		if err := unix.Lsetxattr(path, name, val, 0); err != nil {
			t.Fatal(err)
		}
	}
	for name, val := range map[string][]byte{imasig.XattrName: ima, imasig.EVMXattrName: evm} {
		if err := unix.Lsetxattr(path, name, val, 0); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEVMMangle: every byte of a portable signature changed fails.
func TestEVMMangle(t *testing.T) {
	s := loadSigner(t, "rsa2048")
	m := imasig.EVMMeta{UID: 0, GID: 0, Mode: 0o100755}
	ima, evm := signEVMHere(t, s, imasig.SHA256, []byte("x"), imasig.EVMXattrsDebian61, m)
	m.Xattrs = map[string][]byte{imasig.XattrName: ima}
	v, _ := imasig.NewVerifier(s.Cert())
	if err := v.VerifyEVM(evm, imasig.EVMXattrsDebian61, m); err != nil {
		t.Fatal(err)
	}
	for i := range evm {
		b := bytes.Clone(evm)
		b[i] ^= 0x40
		if err := v.VerifyEVM(b, imasig.EVMXattrsDebian61, m); err == nil {
			t.Errorf("byte %d changed (%s): accepted", i, hex.EncodeToString(b[:9]))
		}
	}
	// A security.ima signature is not an EVM value.
	if err := v.VerifyEVM(ima, imasig.EVMXattrsDebian61, m); !errors.Is(err, imasig.ErrWrongType) {
		t.Errorf("type 0x03 as security.evm: %v", err)
	}
}
