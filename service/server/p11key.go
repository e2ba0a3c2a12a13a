package server

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"runtime"
	"sync"

	"github.com/rs/zerolog/log"

	"github.com/imaforge/imaforge/signer"
	"github.com/imaforge/imaforge/signer/keyref"
)

// tokenKeys holds, per relic key name, the key of a PKCS#11 token opened in
// the server's process the way a local "relic:NAME" key is opened
// (signer.OpenKey: relic's p11token, one session per core, the PIN from
// the configuration's pinfile). relic's server signs a PKCS#11 key in its
// token worker process, one loopback HTTP request with JSON per signature
// and one session per worker: a build through the service took 1.6x the
// CPU of a local relic: build (bench-service.sh, SoftHSM2). The request is
// still relic's (client certificate, key ACL, audit record, its worker
// giving the key and certificate); only the signatures are made here, with
// relic's token code, and signer.Signer checks every value a token returns
// against the key before it is used.
var tokenKeys sync.Map // key name -> *tokenKey

type tokenKey struct {
	once sync.Once
	key  crypto.Signer // nil: not opened, relic's worker signs

	mu sync.Mutex
	s  *signer.Signer // for the last leaf certificate
}

// pkcs11Signer returns the in-process signer of key name when it is a
// PKCS#11 token's key without a rate limit (relic's limiter counts the
// worker's operations) whose public key is pub, the one relic's worker
// gives, and leaf's; otherwise nil, and relic's worker signs. A key that
// does not open here is logged once and left to relic's worker.
func pkcs11Signer(name string, pub crypto.PublicKey, leaf *x509.Certificate) *signer.Signer {
	cfg, _, ok := unlimitedTokenKey(name, "pkcs11")
	if !ok || cfg.Path() == "" {
		return nil
	}
	v, _ := tokenKeys.LoadOrStore(name, &tokenKey{})
	tk := v.(*tokenKey)
	tk.once.Do(func() {
		key, _, err := signer.OpenKey(keyref.RelicPrefix+name, cfg.Path(), &signer.OpenOptions{Sessions: runtime.GOMAXPROCS(0)})
		if err != nil {
			log.Warn().Err(err).Str("key", name).Msg("PKCS#11 key not opened in the server process: relic's token worker signs it")
			return
		}
		tk.key = key
	})
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if tk.key == nil {
		return nil
	}
	if e, ok := tk.key.Public().(equaler); !ok || !e.Equal(pub) || !e.Equal(leaf.PublicKey) {
		return nil
	}
	tk.mu.Lock()
	defer tk.mu.Unlock()
	if tk.s == nil || !bytes.Equal(tk.s.Cert().Raw, leaf.Raw) {
		s, err := signer.New(tk.key, leaf)
		if err != nil {
			return nil
		}
		tk.s = s
	}
	return tk.s
}
