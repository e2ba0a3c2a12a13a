// Package keyref parses the references that name a private key everywhere
// imaforge signs (manifest keys, build, plan, ceremony, file sign, policy
// sign, pki issue|revoke|crl): a key file path, "relic:NAME", an RFC 7512
// "pkcs11:" URI or "remote:NAME" (a key of a signing service). It only parses; signer.Open opens what a Ref names. It
// links no key backend, so the manifest can check references with it.
package keyref

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Scheme is how a key is reached.
type Scheme int

const (
	// File: a private key file (PEM or DER; PKCS#1, SEC 1, PKCS#8,
	// encrypted PKCS#8), the passphrase asked for when it is encrypted.
	File Scheme = iota + 1
	// Relic: "relic:NAME", key NAME of a relic configuration file
	// (github.com/sassoftware/relic config: a "tokens" and a "keys" mapping).
	Relic
	// PKCS11: an RFC 7512 PKCS#11 URI, for example
	// "pkcs11:token=fw;object=ima?module-path=/usr/lib/softhsm/libsofthsm2.so".
	PKCS11
	// Remote: "remote:NAME", key NAME of a signing service (imaforge serve,
	// docs/service.md) reached through the remote section of a relic client
	// configuration file (url or directoryUrl, the client certificate).
	Remote
)

// The prefixes of the schemes other than File.
const (
	RelicPrefix  = "relic:"
	PKCS11Prefix = "pkcs11:"
	RemotePrefix = "remote:"
)

// String returns "file", "relic" or "pkcs11".
func (s Scheme) String() string {
	switch s {
	case File:
		return "file"
	case Relic:
		return "relic"
	case PKCS11:
		return "pkcs11"
	case Remote:
		return "remote"
	}
	return fmt.Sprintf("Scheme(%d)", int(s))
}

// ErrInvalid is matched by every error of Parse.
var ErrInvalid = errors.New("invalid key reference")

// Ref is a parsed key reference.
type Ref struct {
	Scheme Scheme
	// Raw is the reference as written.
	Raw string
	// Path is the key file (File).
	Path string
	// Name is the relic key name (Relic, Remote).
	Name string
	// PKCS11 holds the URI's attributes (PKCS11).
	PKCS11 *PKCS11URI
}

// String returns the reference as written.
func (r Ref) String() string { return r.Raw }

// IsToken reports whether the key is held in a token (relic or PKCS#11),
// not in a file.
func (r Ref) IsToken() bool { return r.Scheme == Relic || r.Scheme == PKCS11 }

// NeedsRelicConfig reports whether the reference names a key of a relic
// configuration file (the key's relic_config): Relic (a token
// configuration) or Remote (a client configuration).
func (r Ref) NeedsRelicConfig() bool { return r.Scheme == Relic || r.Scheme == Remote }

// PKCS11URI is an RFC 7512 URI as imaforge matches it. Path attributes:
// token, serial, object, id, and type (only "private": the key signs);
// query attributes: module-path. Every other attribute is refused rather
// than ignored, so that a URI never selects a token or key by fewer
// attributes than it names (RFC 7512 section 2.5 lets a consumer ignore
// what it does not know; a signing ceremony must not): manufacturer,
// model, the library-* and slot-* attributes, module-name, vendor x-
// attributes, an attribute given twice. pin-value and pin-source are
// refused too, since PINs never live in references.
type PKCS11URI struct {
	Token      string // token label (CKA_LABEL of the token)
	Serial     string // token serial number
	Object     string // key label (CKA_LABEL)
	ID         []byte // key id (CKA_ID), percent-decoded
	ModulePath string // PKCS#11 provider library; empty: from the environment
}

// Parse parses a key reference. A reference with neither prefix is a file
// path; an empty one is an error. Errors wrap ErrInvalid and quote the
// reference (it holds no secret: pin-value is refused).
func Parse(s string) (Ref, error) {
	r := Ref{Raw: s}
	switch {
	case s == "":
		return r, fmt.Errorf("%w: empty", ErrInvalid)
	case strings.HasPrefix(s, RelicPrefix):
		r.Scheme = Relic
		r.Name = strings.TrimPrefix(s, RelicPrefix)
		if r.Name == "" || strings.ContainsAny(r.Name, " \t\n/") {
			return r, fmt.Errorf("%w: %q: want relic:NAME, NAME a key of the relic configuration", ErrInvalid, s)
		}
	case strings.HasPrefix(s, RemotePrefix):
		r.Scheme = Remote
		r.Name = strings.TrimPrefix(s, RemotePrefix)
		if r.Name == "" || strings.ContainsAny(r.Name, " \t\n/?&#") {
			return r, fmt.Errorf("%w: %q: want remote:NAME, NAME a key of the signing service", ErrInvalid, s)
		}
	case strings.HasPrefix(s, PKCS11Prefix):
		r.Scheme = PKCS11
		u, err := parsePKCS11(strings.TrimPrefix(s, PKCS11Prefix))
		if err != nil {
			return r, fmt.Errorf("%w: PKCS#11 URI %q: %w", ErrInvalid, Redact(s), err)
		}
		r.PKCS11 = u
	default:
		r.Scheme = File
		r.Path = s
	}
	return r, nil
}

// Redact returns s with the values of any pin-value and pin-source
// attributes replaced by "***", for messages about a reference.
func Redact(s string) string {
	if !strings.HasPrefix(s, PKCS11Prefix) {
		return s
	}
	return pinAttr.ReplaceAllString(s, "${1}=***")
}

var pinAttr = regexp.MustCompile(`(pin-value|pin-source)=[^;?&]*`)

// unsupported says why a PKCS#11 URI attribute imaforge does not match on
// is refused.
func unsupported(k string) error {
	return fmt.Errorf("attribute %q is not supported: imaforge selects a token by token (label) and serial, a key by object, id and type=private, the module by module-path; a URI may not name what is not matched", k)
}

func parsePKCS11(rest string) (*PKCS11URI, error) {
	path, query, _ := strings.Cut(rest, "?")
	u := &PKCS11URI{}
	seen := map[string]bool{}
	once := func(k string) error {
		if seen[k] {
			return fmt.Errorf("attribute %q given twice (RFC 7512 section 2.3)", k)
		}
		seen[k] = true
		return nil
	}
	for part := range strings.SplitSeq(path, ";") {
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("path attribute %q: want name=value", part)
		}
		uv, err := url.PathUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("path attribute %q: %w", k, err)
		}
		if err := once(k); err != nil {
			return nil, err
		}
		switch k {
		case "token":
			u.Token = uv
		case "serial":
			u.Serial = uv
		case "object":
			u.Object = uv
		case "id":
			u.ID = []byte(uv)
		case "type":
			if uv != "private" {
				return nil, fmt.Errorf("type=%s: a signing key is type=private", uv)
			}
		case "pin-value", "pin-source":
			return nil, fmt.Errorf("%s is not accepted: give the PIN by environment variable, file or prompt", k)
		default:
			return nil, unsupported(k)
		}
	}
	for part := range strings.SplitSeq(query, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		uv, err := url.QueryUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("query attribute %q: %w", k, err)
		}
		if err := once("?" + k); err != nil {
			return nil, err
		}
		switch k {
		case "module-path":
			u.ModulePath = uv
		case "pin-value", "pin-source":
			return nil, fmt.Errorf("%s is not accepted: give the PIN by environment variable, file or prompt", k)
		default:
			return nil, unsupported(k)
		}
	}
	if u.Object == "" && len(u.ID) == 0 {
		return nil, errors.New("need an object (key label) or id attribute")
	}
	return u, nil
}

// IDHex returns the key id in hex (relic's configuration form), or "".
func (u *PKCS11URI) IDHex() string {
	if len(u.ID) == 0 {
		return ""
	}
	return hex.EncodeToString(u.ID)
}
