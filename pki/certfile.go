package pki

import (
	"crypto/x509"
	"encoding/pem"

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
