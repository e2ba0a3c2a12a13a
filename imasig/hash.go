package imasig

import (
	"crypto"
	_ "crypto/sha1" // registers crypto.SHA1 (verification of old images)
	_ "crypto/sha256"
	_ "crypto/sha3"
	_ "crypto/sha512"
	"fmt"
	"hash"
	"strings"
)

// Hash is a hash algorithm identified by the kernel's enum hash_algo
// (include/uapi/linux/hash_info.h). The byte is stored as-is in the
// hash_algo field of a v2 signature and in the first byte of a digest-ng
// value, so its numeric values are part of the on-disk format.
type Hash uint8

// The kernel's hash algorithm ids (include/uapi/linux/hash_info.h).
const (
	MD4         Hash = 0
	MD5         Hash = 1
	SHA1        Hash = 2
	RIPEMD160   Hash = 3
	SHA256      Hash = 4
	SHA384      Hash = 5
	SHA512      Hash = 6
	SHA224      Hash = 7
	RIPEMD128   Hash = 8
	RIPEMD256   Hash = 9
	RIPEMD320   Hash = 10
	WP256       Hash = 11
	WP384       Hash = 12
	WP512       Hash = 13
	TGR128      Hash = 14
	TGR160      Hash = 15
	TGR192      Hash = 16
	SM3         Hash = 17
	Streebog256 Hash = 18
	Streebog512 Hash = 19
	SHA3_256    Hash = 20
	SHA3_384    Hash = 21
	SHA3_512    Hash = 22

	hashLast = 23 // HASH_ALGO__LAST
)

// hashInfo mirrors the kernel's hash_algo_name and hash_digest_size tables
// (crypto/hash_info.c), with the Go crypto.Hash where one exists.
var hashInfo = [hashLast]struct {
	name   string
	size   int
	crypto crypto.Hash
}{
	MD4:         {"md4", 16, crypto.MD4},
	MD5:         {"md5", 16, crypto.MD5},
	SHA1:        {"sha1", 20, crypto.SHA1},
	RIPEMD160:   {"rmd160", 20, crypto.RIPEMD160},
	SHA256:      {"sha256", 32, crypto.SHA256},
	SHA384:      {"sha384", 48, crypto.SHA384},
	SHA512:      {"sha512", 64, crypto.SHA512},
	SHA224:      {"sha224", 28, crypto.SHA224},
	RIPEMD128:   {"rmd128", 16, 0},
	RIPEMD256:   {"rmd256", 32, 0},
	RIPEMD320:   {"rmd320", 40, 0},
	WP256:       {"wp256", 32, 0},
	WP384:       {"wp384", 48, 0},
	WP512:       {"wp512", 64, 0},
	TGR128:      {"tgr128", 16, 0},
	TGR160:      {"tgr160", 20, 0},
	TGR192:      {"tgr192", 24, 0},
	SM3:         {"sm3", 32, 0},
	Streebog256: {"streebog256", 32, 0},
	Streebog512: {"streebog512", 64, 0},
	SHA3_256:    {"sha3-256", 32, crypto.SHA3_256},
	SHA3_384:    {"sha3-384", 48, crypto.SHA3_384},
	SHA3_512:    {"sha3-512", 64, crypto.SHA3_512},
}

// Known reports whether h is an id the kernel defines.
func (h Hash) Known() bool { return h < hashLast }

// String returns the kernel's name of the algorithm ("sha256", "sm3",
// "sha3-256"), or "hash(N)" for an unknown id.
func (h Hash) String() string {
	if !h.Known() {
		return fmt.Sprintf("hash(%d)", uint8(h))
	}
	return hashInfo[h].name
}

// Size returns the digest size in bytes, or 0 for an unknown id.
func (h Hash) Size() int {
	if !h.Known() {
		return 0
	}
	return hashInfo[h].size
}

// CryptoHash returns the matching crypto.Hash, or 0 when Go has none.
func (h Hash) CryptoHash() crypto.Hash {
	if !h.Known() {
		return 0
	}
	return hashInfo[h].crypto
}

// Available reports whether this program can compute h.
func (h Hash) Available() bool {
	ch := h.CryptoHash()
	return ch != 0 && ch.Available()
}

// New returns a new hash.Hash computing h, or an error wrapping
// ErrUnsupportedHash when h is unknown or not linked into this program.
func (h Hash) New() (hash.Hash, error) {
	if !h.Available() {
		return nil, fmt.Errorf("%w: %s", ErrUnsupportedHash, h)
	}
	return h.CryptoHash().New(), nil
}

// SigningAllowed reports whether new signatures may be made with h: SHA-1
// and the other legacy algorithms are accepted for verification only.
func (h Hash) SigningAllowed() bool {
	switch h {
	case SHA224, SHA256, SHA384, SHA512, SHA3_256, SHA3_384, SHA3_512:
		return true
	}
	return false
}

// ParseHash returns the Hash named name, using the kernel's names
// ("sha256", "sha3-256", "sm3", ...); it also accepts upper case, Go's
// crypto.Hash names ("SHA-256", "SHA3-256") and "sm3-256".
func ParseHash(name string) (Hash, error) {
	if h, ok := hashNames[strings.ToLower(strings.TrimSpace(name))]; ok {
		return h, nil
	}
	return 0, fmt.Errorf("%w: %q (want sha256, sha384 or sha512)", ErrUnsupportedHash, name)
}

// hashNames maps every name ParseHash accepts, in lower case, to its id:
// the kernel's name and Go's crypto.Hash name of each id (the lowest id
// wins where two share one), then "sm3-256". Made once: the signing
// service parses a name per entry, and lowering Go's names on each call
// allocated.
var hashNames = func() map[string]Hash {
	m := make(map[string]Hash, 2*hashLast+1)
	add := func(n string, h Hash) {
		if _, ok := m[n]; !ok {
			m[n] = h
		}
	}
	for h := Hash(0); h < hashLast; h++ {
		add(hashInfo[h].name, h)
		if c := hashInfo[h].crypto; c != 0 {
			add(strings.ToLower(c.String()), h)
		}
	}
	add("sm3-256", SM3)
	return m
}()

// HashFromCrypto returns the kernel id for a crypto.Hash.
func HashFromCrypto(ch crypto.Hash) (Hash, error) {
	for h := Hash(0); h < hashLast; h++ {
		if ch != 0 && hashInfo[h].crypto == ch {
			return h, nil
		}
	}
	return 0, fmt.Errorf("%w: %v has no kernel hash id", ErrUnsupportedHash, ch)
}
