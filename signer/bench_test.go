package signer

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/imaforge/imaforge/imasig"
)

// BenchmarkSignDigest compares the signing backends per key type:
// libcrypto (cgo) against crypto/rsa for RSA, crypto/ecdsa for ECDSA.
func BenchmarkSignDigest(b *testing.B) {
	d := sha256.Sum256([]byte("bench"))
	for _, k := range allKeys {
		s := loadSigner(b, k)
		if s.rsaFast != nil {
			b.Run(k+"/libcrypto", func(b *testing.B) {
				for b.Loop() {
					if _, err := s.SignDigest(imasig.SHA256, d[:]); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		if key, ok := s.key.(*rsa.PrivateKey); ok {
			b.Run(k+"/crypto-rsa", func(b *testing.B) {
				for b.Loop() {
					if _, err := rsa.SignPKCS1v15(nil, key, imasig.SHA256.CryptoHash(), d[:]); err != nil {
						b.Fatal(err)
					}
				}
			})
			continue
		}
		b.Run(k+"/crypto-ecdsa", func(b *testing.B) {
			for b.Loop() {
				if _, err := s.SignDigest(imasig.SHA256, d[:]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSignFiles signs small files (hash, sign, write FILE.sig) with all
// cores and RSA-2048, reporting files/s.
func BenchmarkSignFiles(b *testing.B) {
	dir := b.TempDir()
	const n = 200
	paths := make([]string, n)
	for i := range paths {
		paths[i] = filepath.Join(dir, fmt.Sprintf("f%03d", i))
		if err := os.WriteFile(paths[i], []byte(fmt.Sprintf("file %d\n", i)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	s := loadSigner(b, "rsa2048")
	b.ResetTimer()
	for b.Loop() {
		if err := SignFiles(context.Background(), s, imasig.SHA256, SigFile, paths, 0, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "files/s")
}

func BenchmarkVerify(b *testing.B) {
	d := sha256.Sum256([]byte("bench"))
	for _, k := range []string{"rsa2048", "p256"} {
		s := loadSigner(b, k)
		v, _ := imasig.NewVerifier(s.Cert())
		value, _ := s.SignDigest(imasig.SHA256, d[:])
		b.Run(k, func(b *testing.B) {
			for b.Loop() {
				if err := v.Verify(value, d[:]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
