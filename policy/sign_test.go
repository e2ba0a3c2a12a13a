package policy

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/testenv"
	"github.com/imaforge/imaforge/signer"
)

// testKeys are the signer package's RSA-2048 test key and certificate
// (testdata/signer/gen.sh made them with openssl).
const testKeys = "../testdata/signer/keys/"

func testSigner(t *testing.T) (*signer.Signer, *imasig.Verifier, string) {
	t.Helper()
	s, err := signer.LoadSigner(testKeys+"rsa2048.key", testKeys+"rsa2048.pem", nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := imasig.NewVerifier(s.Cert())
	if err != nil {
		t.Fatal(err)
	}
	der, err := filepath.Abs(testKeys + "rsa2048.der")
	if err != nil {
		t.Fatal(err)
	}
	return s, v, der
}

// TestSignedFragmentEvmctl: a rendered fragment signed with Sign verifies
// with evmctl ima_verify --sigfile and with Verify; after one changed byte
// of the policy or of the signature, both refuse it.
func TestSignedFragmentEvmctl(t *testing.T) {
	evmctl := testenv.NeedTool(t, "evmctl")
	s, v, der := testSigner(t)
	f := Fragment{Name: "acme", Path: "/etc/ima/policy.d/50-acme.policy", Key: "acme",
		Generate: &Generate{Hooks: []string{"exec", "mmap", "policy"}, Appraise: true, Measure: true}}
	data, _, err := f.Check(V6_1)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []imasig.Hash{imasig.SHA256, imasig.SHA512} {
		value, err := Sign(s, h, data)
		if err != nil {
			t.Fatal(err)
		}
		if value[0] != 0x03 || value[1] != 0x02 || imasig.Hash(value[2]) != h {
			t.Fatalf("value header % x", value[:3])
		}
		dir := t.TempDir()
		file := filepath.Join(dir, "50-acme.policy")
		write := func(d, sig []byte) {
			if err := os.WriteFile(file, d, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file+".sig", sig, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		evm := func() error {
			out, err := exec.Command(evmctl, "ima_verify", "--sigfile", "--key", der, file).CombinedOutput()
			if err != nil {
				return errors.New(string(out))
			}
			return nil
		}
		write(data, value)
		if err := evm(); err != nil {
			t.Fatalf("%s: evmctl rejects the signed fragment: %v", h, err)
		}
		if err := Verify(v, data, value); err != nil {
			t.Fatalf("%s: Verify: %v", h, err)
		}
		tampered := bytes.Replace(data, []byte("appraise func=BPRM_CHECK"), []byte("appraise func=BPRM_CHECX"), 1)
		write(tampered, value)
		if evm() == nil {
			t.Errorf("%s: evmctl accepts a tampered policy", h)
		}
		var ise *imasig.InvalidSignatureError
		if err := Verify(v, tampered, value); !errors.As(err, &ise) {
			t.Errorf("%s: Verify(tampered) = %v, want *imasig.InvalidSignatureError", h, err)
		}
		bad := bytes.Clone(value)
		bad[len(bad)-1] ^= 1
		write(data, bad)
		if evm() == nil {
			t.Errorf("%s: evmctl accepts a damaged signature", h)
		}
		if Verify(v, data, bad) == nil {
			t.Errorf("%s: Verify accepts a damaged signature", h)
		}
	}
}

// TestSignDeterministic: RSA PKCS#1 v1.5 gives the same fragment signature
// every time, so images carrying fragments stay reproducible.
func TestSignDeterministic(t *testing.T) {
	s, _, _ := testSigner(t)
	data := []byte("appraise func=POLICY_CHECK appraise_type=imasig\n")
	a, err := Sign(s, imasig.SHA256, data)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Sign(s, imasig.SHA256, data)
	if !bytes.Equal(a, b) {
		t.Error("two signatures of the same policy differ")
	}
}
