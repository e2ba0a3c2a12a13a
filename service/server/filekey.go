package server

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"os"
	"sync"

	"github.com/sassoftware/relic/v8/cmdline/shared"
	"github.com/sassoftware/relic/v8/config"
	"github.com/sassoftware/relic/v8/lib/certloader"

	"github.com/imaforge/imaforge/signer"
)

// fileSigners holds, per relic key name, the signer.Signer of an RSA key of
// a "file" token: its private key read from the key's keyfile as relic's
// file token reads it (certloader.ParseAnyPrivateKey, no passphrase: the
// server opens its tokens without a prompt), so that it signs with the
// system libcrypto as a local build does. Through the token, relic signs
// with crypto/rsa: BenchmarkSign measured that at 3.3x the CPU per
// signature, 96% of the service's CPU.
var fileSigners sync.Map // key name -> *signer.Signer

// signerFor returns the signer of the request's key. For an RSA key of a
// file token without a rate limit (relic's limiter counts operations on the
// token's key) it is the cached libcrypto signer, used only while its public
// key is the one relic's token gives and its certificate is the chain's
// leaf: a replaced key file or certificate is read again. For a PKCS#11
// token's key it is the key opened in this process (pkcs11Signer) while it
// matches. Otherwise (an ECDSA file key, a PKCS#12 file, anything that does
// not open, load or match) it is a signer over relic's token key.
func signerFor(cert *certloader.Certificate) (*signer.Signer, error) {
	tokKey := cert.Signer()
	leaf := cert.Certificates[0]
	if s := fileSigner(cert.KeyName, tokKey.Public(), leaf); s != nil {
		return s, nil
	}
	if s := pkcs11Signer(cert.KeyName, tokKey.Public(), leaf); s != nil {
		return s, nil
	}
	return signer.New(tokKey, leaf)
}

// fileSigner returns the libcrypto signer of key name if it is an RSA key of
// a file token whose public key is pub, else nil.
func fileSigner(name string, pub crypto.PublicKey, leaf *x509.Certificate) *signer.Signer {
	rpub, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil
	}
	if v, ok := fileSigners.Load(name); ok {
		s := v.(*signer.Signer)
		if rpub.Equal(s.Public()) && bytes.Equal(s.Cert().Raw, leaf.Raw) {
			return s
		}
	}
	s := loadFileSigner(name, rpub, leaf)
	if s == nil {
		fileSigners.Delete(name)
		return nil
	}
	fileSigners.Store(name, s)
	return s
}

// unlimitedTokenKey returns relic's configuration and the entry of key
// name when the key's token has type typ and no rate limit (relic's limiter
// counts the token's operations, which a signer made in this process would
// bypass); ok is false otherwise.
func unlimitedTokenKey(name, typ string) (cfg *config.Config, kc *config.KeyConfig, ok bool) {
	cfg = shared.CurrentConfig
	if cfg == nil {
		return nil, nil, false
	}
	kc, err := cfg.GetKey(name)
	if err != nil {
		return nil, nil, false
	}
	tc, err := cfg.GetToken(kc.Token)
	if err != nil || tc.Type != typ || tc.RateLimit != 0 {
		return nil, nil, false
	}
	return cfg, kc, true
}

func loadFileSigner(name string, pub *rsa.PublicKey, leaf *x509.Certificate) *signer.Signer {
	_, kc, ok := unlimitedTokenKey(name, "file")
	if !ok || kc.KeyFile == "" || kc.IsPkcs12 {
		return nil
	}
	blob, err := os.ReadFile(kc.KeyFile)
	if err != nil {
		return nil
	}
	priv, err := certloader.ParseAnyPrivateKey(blob, nil)
	clear(blob)
	if err != nil {
		return nil
	}
	k, ok := priv.(*rsa.PrivateKey)
	if !ok || !pub.Equal(k.Public()) {
		return nil
	}
	s, err := signer.New(k, leaf)
	if err != nil || s.Backend() != "libcrypto" {
		return nil
	}
	return s
}
