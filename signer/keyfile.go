package signer

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/boundedfile"
)

// Passphrase returns the passphrase of an encrypted key file. It is called
// only when a key is encrypted. Passphrases never come from the command line.
type Passphrase func() ([]byte, error)

// PassphraseFromEnv reads the passphrase from the environment variable name.
func PassphraseFromEnv(name string) Passphrase {
	return func() ([]byte, error) {
		v, ok := os.LookupEnv(name)
		if !ok {
			return nil, fmt.Errorf("%w: environment variable %s is not set", ErrPassphrase, name)
		}
		return []byte(v), nil
	}
}

// PassphraseFromFile reads the passphrase from the first line of the file at
// path (without its line ending).
func PassphraseFromFile(path string) Passphrase {
	return func() ([]byte, error) {
		b, err := boundedfile.ReadFile(path, boundedfile.SmallLimit)
		if err != nil {
			return nil, fmt.Errorf("%w: passphrase file: %w", ErrPassphrase, err)
		}
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[:i]
		}
		return bytes.TrimSuffix(b, []byte("\r")), nil
	}
}

// PassphraseFromTerminal prompts on the controlling terminal (/dev/tty)
// without echo.
func PassphraseFromTerminal(prompt string) Passphrase {
	return func() ([]byte, error) {
		tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("%w: no terminal to ask for it (use a passphrase file or environment variable)", ErrPassphrase)
		}
		defer tty.Close()
		fmt.Fprint(tty, prompt)
		p, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(tty)
		if err != nil {
			return nil, fmt.Errorf("%w: reading from the terminal: %w", ErrPassphrase, err)
		}
		return p, nil
	}
}

// KeyOptions tune LoadPrivateKey.
type KeyOptions struct {
	// Passphrase decrypts encrypted keys; nil makes them an error.
	Passphrase Passphrase
	// Warn receives warnings, such as a key file readable by others; nil
	// drops them.
	Warn func(msg string)
}

// LoadPrivateKey reads a private key file: PEM ("RSA PRIVATE KEY" PKCS#1,
// "EC PRIVATE KEY" SEC1, "PRIVATE KEY" PKCS#8, "ENCRYPTED PRIVATE KEY"
// PKCS#8 with PBES2, and legacy "Proc-Type: 4,ENCRYPTED" PEM) or the same in
// DER. Errors are *FileError naming path; a file accessible by group or
// others produces a warning.
func LoadPrivateKey(path string, opts *KeyOptions) (crypto.Signer, error) {
	if opts == nil {
		opts = &KeyOptions{}
	}
	data, err := boundedfile.ReadFile(path, boundedfile.KeyLimit)
	if err != nil {
		return nil, &FileError{Path: path, Op: "read private key", Err: unwrapPathError(err)}
	}
	defer clear(data)
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 && opts.Warn != nil {
		opts.Warn(fmt.Sprintf("%s: private key file is accessible by group or others (mode %04o); chmod 600 it", path, fi.Mode().Perm()))
	}
	k, err := ParsePrivateKey(data, opts.Passphrase)
	if err != nil {
		return nil, &FileError{Path: path, Op: "read private key", Err: err}
	}
	return k, nil
}

// ParsePrivateKey parses a private key in any form LoadPrivateKey reads.
func ParsePrivateKey(data []byte, pass Passphrase) (crypto.Signer, error) {
	blocks := pemBlocks(data)
	for _, b := range blocks {
		switch b.Type {
		case "RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY":
			der := b.Bytes
			//lint:ignore SA1019 legacy encrypted PEM is what older openssl writes; there is no replacement in the standard library
			if x509.IsEncryptedPEMBlock(b) { //nolint:staticcheck
				p, err := getPassphrase(pass)
				if err != nil {
					return nil, err
				}
				//lint:ignore SA1019 see above
				der, err = x509.DecryptPEMBlock(b, p) //nolint:staticcheck
				clear(p)
				if err != nil {
					return nil, fmt.Errorf("%w: %w", ErrPassphrase, err)
				}
				defer clear(der)
			}
			k, err := parseDERKey(b.Type, der)
			if err != nil && b.Headers["Proc-Type"] != "" {
				return nil, fmt.Errorf("%w: decrypted key does not parse", ErrPassphrase)
			}
			return k, err
		case "ENCRYPTED PRIVATE KEY":
			p, err := getPassphrase(pass)
			if err != nil {
				return nil, err
			}
			der, err := decryptPKCS8(b.Bytes, p)
			clear(p)
			if err != nil {
				return nil, err
			}
			defer clear(der)
			k, err := parseDERKey("PRIVATE KEY", der)
			if err != nil {
				return nil, fmt.Errorf("%w: decrypted key does not parse", ErrPassphrase)
			}
			return k, nil
		}
	}
	if len(blocks) > 0 {
		return nil, errors.New("no private key in the PEM file (want RSA PRIVATE KEY, EC PRIVATE KEY, PRIVATE KEY or ENCRYPTED PRIVATE KEY)")
	}
	return parseDERKey("", data)
}

func getPassphrase(pass Passphrase) ([]byte, error) {
	if pass == nil {
		return nil, fmt.Errorf("%w: the key is encrypted; give a passphrase file or environment variable", ErrPassphrase)
	}
	return pass()
}

// parseDERKey parses DER by PEM type, or tries every form when typ is "".
func parseDERKey(typ string, der []byte) (crypto.Signer, error) {
	var k any
	var err error
	switch typ {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(der)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(der)
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(der)
	default:
		if k, err = x509.ParsePKCS8PrivateKey(der); err != nil {
			if k, err = x509.ParsePKCS1PrivateKey(der); err != nil {
				k, err = x509.ParseECPrivateKey(der)
			}
		}
		if err != nil {
			return nil, errors.New("not a private key in PEM or DER (PKCS#1, PKCS#8 or SEC1)")
		}
	}
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: %T cannot sign", imasig.ErrUnsupportedKey, k)
	}
	return s, nil
}

// LoadCertificates reads every certificate in a PEM file, or the single
// certificate of a DER file. Errors are *FileError naming path.
func LoadCertificates(path string) ([]*x509.Certificate, error) {
	data, err := boundedfile.ReadFile(path, boundedfile.KeyLimit)
	if err != nil {
		return nil, &FileError{Path: path, Op: "read certificate", Err: unwrapPathError(err)}
	}
	certs, err := ParseCertificates(data)
	if err != nil {
		return nil, &FileError{Path: path, Op: "read certificate", Err: err}
	}
	return certs, nil
}

// ParseCertificates parses PEM CERTIFICATE blocks, or one DER certificate.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	blocks := pemBlocks(data)
	for _, b := range blocks {
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(blocks) > 0 {
		if len(certs) == 0 {
			return nil, errors.New("no CERTIFICATE block in the PEM file")
		}
		return certs, nil
	}
	if strings.HasPrefix(strings.TrimSpace(string(data[:min(len(data), 64)])), "-----BEGIN") {
		return nil, errors.New("malformed PEM")
	}
	c, err := x509.ParseCertificate(data)
	if err != nil {
		return nil, fmt.Errorf("not a certificate in PEM or DER: %w", err)
	}
	return []*x509.Certificate{c}, nil
}

// LoadCertificate reads a file holding exactly one certificate.
func LoadCertificate(path string) (*x509.Certificate, error) {
	certs, err := LoadCertificates(path)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, &FileError{Path: path, Op: "read certificate", Err: fmt.Errorf("%d certificates where one is needed", len(certs))}
	}
	return certs[0], nil
}

// LoadSigner loads a private key file and its certificate file and returns
// a Signer. Errors name the file at fault: a key that does not match the
// certificate, or that IMA cannot use, is reported against the key file.
//
// The certificate file may hold a chain: the certificate of the key is used.
func LoadSigner(keyPath, certPath string, opts *KeyOptions) (*Signer, error) {
	certs, err := LoadCertificates(certPath)
	if err != nil {
		return nil, err
	}
	key, err := LoadPrivateKey(keyPath, opts)
	if err != nil {
		return nil, err
	}
	cert := certs[0]
	if eq, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); ok {
		for _, c := range certs {
			if eq.Equal(c.PublicKey) {
				cert = c
				break
			}
		}
	}
	s, err := New(key, cert)
	if err != nil {
		if errors.Is(err, ErrKeyMismatch) {
			err = fmt.Errorf("%w (certificate %s)", err, certPath)
		}
		return nil, &FileError{Path: keyPath, Op: "load signing key", Err: err}
	}
	return s, nil
}

// unwrapPathError drops the *fs.PathError layer, whose path FileError
// already names, keeping the cause (errors.Is(err, fs.ErrNotExist) works).
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// pemBlocks returns the PEM blocks of data in order; none when data is not
// PEM (DER, or garbage).
func pemBlocks(data []byte) []*pem.Block {
	var blocks []*pem.Block
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return blocks
		}
		blocks = append(blocks, b)
	}
}
