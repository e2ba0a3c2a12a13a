package imasig

import (
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// EVMXattrName is the extended attribute that holds an EVM value.
const EVMXattrName = "security.evm"

// Names of the xattrs EVM can protect (include/uapi/linux/xattr.h).
const (
	XattrSELinux         = "security.selinux"
	XattrSMACK           = "security.SMACK64"
	XattrSMACKExec       = "security.SMACK64EXEC"
	XattrSMACKTransmute  = "security.SMACK64TRANSMUTE"
	XattrSMACKMmap       = "security.SMACK64MMAP"
	XattrAppArmor        = "security.apparmor"
	XattrCapability      = "security.capability"
	xattrIMA             = XattrName
	evmMiscSize          = 24 // sizeof(struct h_misc) on LP64 (x86_64, arm64)
	evmMiscOffUID        = 12
	evmMiscOffGID        = 16
	evmMiscOffMode       = 20
	evmPortableSignature = TypePortableSignature
)

// EVMXattrs is the list of xattrs a kernel protects with EVM, in the order
// it hashes them: the enabled entries of evm_config_default_xattrnames
// (security/integrity/evm/evm_main.c). Which entries are enabled depends on
// the kernel's configuration, so a portable signature made for one list
// fails on a kernel with another whenever a file carries an xattr that only
// one of them protects.
type EVMXattrs []string

// EVM xattr lists of known kernel configurations.
var (
	// EVMXattrsDebian61 is Debian 12's linux-image-6.1 (config-6.1.0-*-amd64:
	// CONFIG_SECURITY_SELINUX=y, CONFIG_SECURITY_APPARMOR=y,
	// CONFIG_IMA_APPRAISE=y, no CONFIG_SECURITY_SMACK).
	EVMXattrsDebian61 = EVMXattrs{XattrSELinux, XattrAppArmor, xattrIMA, XattrCapability}
	// EVMXattrsEvmctl is evmctl's default list (ima-evm-utils
	// evm_default_xattrs): a kernel with SELinux, SMACK and AppArmor and
	// without CONFIG_EVM_EXTRA_SMACK_XATTRS.
	EVMXattrsEvmctl = EVMXattrs{XattrSELinux, XattrSMACK, XattrAppArmor, xattrIMA, XattrCapability}
	// EVMXattrsAll is every xattr the kernel can protect, as with all LSMs
	// and CONFIG_EVM_EXTRA_SMACK_XATTRS (evmctl --smack).
	EVMXattrsAll = EVMXattrs{XattrSELinux, XattrSMACK, XattrSMACKExec, XattrSMACKTransmute, XattrSMACKMmap,
		XattrAppArmor, xattrIMA, XattrCapability}
)

// EVMProfiles are the named lists, as a manifest names them.
var EVMProfiles = map[string]EVMXattrs{
	"debian-6.1": EVMXattrsDebian61,
	"evmctl":     EVMXattrsEvmctl,
	"all":        EVMXattrsAll,
}

// Protects reports whether name is in the list.
func (l EVMXattrs) Protects(name string) bool { return slices.Contains(l, name) }

// ErrEVMNoIMA: a portable EVM signature needs a security.ima value
// (evm_calc_hmac_or_hash returns -EPERM without one).
var ErrEVMNoIMA = errors.New("a portable EVM signature needs security.ima")

// EVMMeta is what a portable EVM signature (security.evm type 0x05,
// EVM_XATTR_PORTABLE_DIGSIG) covers: the values of the protected xattrs the
// file has, then struct h_misc with the inode number and generation left
// zero (hmac_add_misc in security/integrity/evm/evm_crypto.c). The
// filesystem UUID is not included (CONFIG_EVM_ATTR_FSUUID applies only to
// HMACs and immutable signatures), so the value survives copying to
// another filesystem as long as owner, mode and xattrs are kept.
type EVMMeta struct {
	UID, GID uint32
	// Mode is st_mode: the file type bits (S_IFREG 0o100000, S_IFDIR
	// 0o040000, ...) and the permission bits including setuid, setgid and
	// sticky.
	Mode uint32
	// Xattrs are the file's xattrs by full name; those not in the kernel's
	// list are ignored, as the kernel ignores them.
	Xattrs map[string][]byte
}

// EVMDigest computes the digest a portable EVM signature signs, exactly as
// evm_calc_hmac_or_hash does on a 64-bit kernel whose protected list is l:
//
//	H( value of each protected xattr present, in l's order (values only,
//	   no names or lengths)
//	 || struct h_misc { u64 ino = 0; u32 generation = 0; u32 uid; u32 gid;
//	                    u16 mode; 2 bytes padding = 0 } (little-endian) )
//
// An empty xattr value counts as present (the kernel hashes zero bytes
// for it). It fails with ErrEVMNoIMA when m has no security.ima.
func EVMDigest(h Hash, l EVMXattrs, m EVMMeta) ([]byte, error) {
	if !h.Available() {
		return nil, fmt.Errorf("%w: %s", ErrUnsupportedHash, h)
	}
	hh, err := h.New()
	if err != nil {
		return nil, err
	}
	ima := false
	for _, name := range l {
		v, ok := m.Xattrs[name]
		if !ok {
			continue
		}
		hh.Write(v)
		ima = ima || name == xattrIMA
	}
	if !ima {
		return nil, ErrEVMNoIMA
	}
	var misc [evmMiscSize]byte
	binary.LittleEndian.PutUint32(misc[evmMiscOffUID:], m.UID)
	binary.LittleEndian.PutUint32(misc[evmMiscOffGID:], m.GID)
	binary.LittleEndian.PutUint16(misc[evmMiscOffMode:], uint16(m.Mode))
	hh.Write(misc[:])
	return hh.Sum(nil), nil
}

// EVMValue turns a v2 signature value (type 0x03, as SignDigest returns
// over an EVMDigest) into the security.evm value: the same header and
// signature with type 0x05. The kernel checks both with the same
// asymmetric_verify, against the _evm keyring instead of _ima.
func EVMValue(sigValue []byte) ([]byte, error) {
	s, err := ParseSignature(sigValue)
	if err != nil {
		return nil, err
	}
	s.Kind = evmPortableSignature
	return s.MarshalBinary()
}

// ParseEVMSignature decodes a security.evm value that must be a portable
// signature (type 0x05, version 2).
func ParseEVMSignature(b []byte) (*Signature, error) {
	if len(b) > 0 && Type(b[0]) != TypePortableSignature {
		return nil, formatErr(ErrWrongType, 0, "%s value where a portable EVM signature (type 0x05) is required", Type(b[0]))
	}
	s := new(Signature)
	if err := s.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return s, nil
}

// VerifyEVM checks value, a security.evm portable signature, over the
// metadata m with the kernel's protected list l. Failures are
// *InvalidSignatureError as for Verify.
func (v *Verifier) VerifyEVM(value []byte, l EVMXattrs, m EVMMeta) error {
	sig, err := ParseEVMSignature(value)
	if err != nil {
		return &InvalidSignatureError{Err: err}
	}
	d, err := EVMDigest(sig.Hash, l, m)
	if err != nil {
		return &InvalidSignatureError{KeyID: sig.KeyID, Err: err}
	}
	if err := v.verify(sig, d); err != nil {
		return &InvalidSignatureError{KeyID: sig.KeyID, Err: err}
	}
	return nil
}

// VerifyEVM is a one-shot Verifier.VerifyEVM over certs.
func VerifyEVM(value []byte, l EVMXattrs, m EVMMeta, certs ...*x509.Certificate) error {
	v, err := NewVerifier(certs...)
	if err != nil {
		return err
	}
	return v.VerifyEVM(value, l, m)
}
