package pki

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/imaforge/imaforge/internal/boundedfile"
)

// ErrCSR reports a certificate signing request (PKCS #10, RFC 2986) that
// cannot be used.
var ErrCSR = errors.New("invalid certificate request")

// ParseCSR decodes a PKCS #10 request, PEM ("CERTIFICATE REQUEST" or "NEW
// CERTIFICATE REQUEST", as openssl req writes) or DER, and checks its
// self-signature: the requester holds the private key of the public key it
// asks to certify (proof of possession). Only the public key and the
// subject of a request are used (Request.PublicKey, Request.RawSubject);
// the extensions it asks for are ignored, the issuing CA decides them.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	if b, _ := pem.Decode(data); b != nil {
		if b.Type != "CERTIFICATE REQUEST" && b.Type != "NEW CERTIFICATE REQUEST" {
			return nil, fmt.Errorf("%w: PEM block %q, want \"CERTIFICATE REQUEST\"", ErrCSR, b.Type)
		}
		data = b.Bytes
	}
	csr, err := x509.ParseCertificateRequest(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: its signature does not verify with the public key it carries, so it does not prove possession of the private key: %w", ErrCSR, err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCSR, err)
	}
	return csr, nil
}

// ReadCSR reads and checks the request at path (ParseCSR); errors name it.
func ReadCSR(path string) (*x509.CertificateRequest, error) {
	data, err := boundedfile.ReadFile(path, boundedfile.KeyLimit)
	if err != nil {
		return nil, err
	}
	csr, err := ParseCSR(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return csr, nil
}

// FromCSR sets the request's public key and subject from csr (checked by
// ParseCSR), and nothing else.
func (req *Request) FromCSR(csr *x509.CertificateRequest) {
	req.PublicKey = csr.PublicKey
	req.RawSubject = csr.RawSubject
	req.Name = csr.Subject.CommonName
}
