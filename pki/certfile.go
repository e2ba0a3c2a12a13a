package pki

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/imaforge/imaforge/internal/atomicfile"
)

// Certificates and keys are read with signer.LoadCertificates,
// signer.LoadCertificate and signer.LoadPrivateKey (PEM or DER, encrypted
// keys with a passphrase from the environment, a file or the terminal).

// EncodeCertificatePEM returns cert as a PEM "CERTIFICATE" block.
func EncodeCertificatePEM(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// WriteCertificateFiles writes cert as base+".der" and base+".pem" (mode
// 0644, each atomically) and returns the two paths.
func WriteCertificateFiles(base string, cert *x509.Certificate) (derPath, pemPath string, err error) {
	derPath, pemPath = base+".der", base+".pem"
	if err := atomicfile.WriteFile(derPath, cert.Raw, 0o644); err != nil {
		return "", "", err
	}
	if err := atomicfile.WriteFile(pemPath, EncodeCertificatePEM(cert), 0o644); err != nil {
		return "", "", err
	}
	return derPath, pemPath, nil
}

// ErrExists reports an output file that is already there.
var ErrExists = errors.New("file exists (use --force to replace it)")

// CheckIssuedPaths returns the files WriteIssued would write (with the key
// file when withKey) and, unless overwrite, refuses when one exists: check
// before issuing, so a certificate is not issued and recorded only to be
// refused at writing.
func CheckIssuedPaths(dir, base string, withKey, overwrite bool) ([]string, error) {
	stem := filepath.Join(dir, base)
	paths := []string{stem + ".der", stem + ".pem"}
	if withKey {
		paths = append([]string{stem + ".key"}, paths...)
	}
	if !overwrite {
		for _, p := range paths {
			if _, err := os.Lstat(p); err == nil {
				return nil, fmt.Errorf("%s: %w", p, ErrExists)
			}
		}
	}
	return paths, nil
}

// WriteIssued writes an issued certificate as dir/base.der and
// dir/base.pem and, when it has one, its private key as dir/base.key (PEM
// PKCS#8, mode 0600 from creation, encrypted when keyOpts.Passphrase is
// set). Unless overwrite is set it refuses to replace any of these files,
// so a CA key is never lost to a typo. It returns the paths written.
func WriteIssued(dir, base string, iss *Issued, keyOpts KeyFileOptions, overwrite bool) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	stem := filepath.Join(dir, base)
	paths, err := CheckIssuedPaths(dir, base, iss.Key != nil, overwrite)
	if err != nil {
		return nil, err
	}
	if iss.Key != nil {
		keyPEM, err := MarshalPrivateKey(iss.Key, keyOpts)
		if err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(stem+".key", keyPEM, 0o600); err != nil {
			return nil, err
		}
	}
	if _, _, err := WriteCertificateFiles(stem, iss.Cert); err != nil {
		return nil, err
	}
	return paths, nil
}
