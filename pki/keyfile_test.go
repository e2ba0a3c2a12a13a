package pki

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/internal/testenv"
	"github.com/imaforge/imaforge/signer"
)

func TestPrivateKeyFiles(t *testing.T) {
	openssl := testenv.NeedTool(t, "openssl")
	for _, kt := range []KeyType{RSA2048, P256, P384} {
		key, err := GenerateKey(nil, kt)
		if err != nil {
			t.Fatal(err)
		}
		for _, pass := range []string{"", "correct horse"} {
			data, err := MarshalPrivateKey(key, KeyFileOptions{Passphrase: []byte(pass), Iterations: 1000})
			if err != nil {
				t.Fatal(err)
			}
			wantType := "-----BEGIN PRIVATE KEY-----"
			if pass != "" {
				wantType = "-----BEGIN ENCRYPTED PRIVATE KEY-----"
			}
			if !strings.HasPrefix(string(data), wantType) {
				t.Errorf("%s: file starts %q", kt, data[:40])
			}
			// signer reads what pki writes.
			got, err := signer.ParsePrivateKey(data, func() ([]byte, error) { return []byte(pass), nil })
			if err != nil || !samePublicKey(got.Public(), key.Public()) {
				t.Fatalf("%s pass %q: signer.ParsePrivateKey: %v", kt, pass, err)
			}
			if pass != "" {
				if _, err := signer.ParsePrivateKey(data, func() ([]byte, error) { return []byte("wrong"), nil }); !errors.Is(err, signer.ErrPassphrase) {
					t.Errorf("%s: wrong passphrase: %v", kt, err)
				}
			}
			// openssl reads it too (evmctl uses the same library).
			p := filepath.Join(t.TempDir(), "k.pem")
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"pkey", "-in", p, "-pubout"}
			if pass != "" {
				args = append(args, "-passin", "pass:"+pass)
			}
			out, err := run(openssl, args...)
			if err != nil || !strings.Contains(out, "BEGIN PUBLIC KEY") {
				t.Errorf("%s pass %q: openssl pkey: %v\n%s", kt, pass, err, out)
			}
		}
	}
}
