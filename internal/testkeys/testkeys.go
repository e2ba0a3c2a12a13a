// Package testkeys makes throwaway signing keys and self-signed IMA
// certificates for tests, written as the PEM and DER files the tools read.
package testkeys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Key is a generated key pair with its certificate and the files holding them.
type Key struct {
	Signer   crypto.Signer
	Cert     *x509.Certificate
	KeyPath  string // PEM private key (PKCS#8), mode 0600
	CertPath string // PEM certificate
	DERPath  string // DER certificate (what evmctl ima_verify needs)
}

// New makes a key of type "rsa2048", "rsa3072", "rsa4096", "p256" or "p384"
// named name in dir, with a self-signed certificate carrying a
// SubjectKeyIdentifier (the IMA key id) and keyUsage digitalSignature.
func New(t testing.TB, dir, name, typ string) *Key {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch typ {
	case "rsa2048":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "rsa3072":
		priv, err = rsa.GenerateKey(rand.Reader, 3072)
	case "rsa4096":
		priv, err = rsa.GenerateKey(rand.Reader, 4096)
	case "p256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	default:
		t.Fatalf("testkeys: unknown key type %q", typ)
	}
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Algo      pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		t.Fatal(err)
	}
	skid := sha1.Sum(info.PublicKey.Bytes)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "imaforge test " + name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		SubjectKeyId:          skid[:],
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	k := &Key{
		Signer:   priv,
		Cert:     cert,
		KeyPath:  filepath.Join(dir, name+".key"),
		CertPath: filepath.Join(dir, name+".pem"),
		DERPath:  filepath.Join(dir, name+".der"),
	}
	write(t, k.KeyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}), 0o600)
	write(t, k.CertPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	write(t, k.DERPath, der, 0o644)
	return k
}

func write(t testing.TB, path string, data []byte, perm os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatal(err)
	}
}
