package pipeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imaforge/imaforge/internal/boundedfile"
	"github.com/imaforge/imaforge/pki"
	"github.com/imaforge/imaforge/signer"
)

// TestKeySideFilesBounded: a key, certificate, trust root or CRL that is
// /dev/zero, a FIFO or a huge file fails the build at once with a message
// naming it. Before, /dev/zero grew the process to 19.9 GB and a FIFO hung
// forever.
func TestKeySideFilesBounded(t *testing.T) {
	for _, tt := range []struct{ name, from, to, want string }{
		{"key FIFO", "key: keys/mfr.key", "key: FIFO", "a FIFO"},
		{"key /dev/zero", "key: keys/mfr.key", "key: /dev/zero", "a character device"},
		{"cert /dev/zero", "cert: keys/mfr.pem", "cert: /dev/zero", "a character device"},
		{"cert huge", "cert: keys/mfr.pem", "cert: HUGE", "at most"},
		{"trust root FIFO", "hash: sha256\n", "hash: sha256\ntrust:\n  roots: [FIFO]\n", "a FIFO"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newProject(t)
			writeTree(t, filepath.Join(p.dir, "src"), sortedPaths(false), 0o644)
			fifo := filepath.Join(p.dir, "fifo")
			integMust(t, syscall.Mkfifo(fifo, 0o600))
			huge := filepath.Join(p.dir, "huge")
			f, err := os.Create(huge)
			integMust(t, err)
			integMust(t, f.Truncate(boundedfile.KeyLimit+1))
			f.Close()
			to := strings.NewReplacer("FIFO", fifo, "HUGE", huge).Replace(tt.to)
			body := strings.Replace(fmt.Sprintf(manifestTmpl, "gzip", "src"), tt.from, to, 1)
			m := p.manifest(t, "", "", body)
			done := make(chan error, 1)
			go func() { _, err := build(t, m, 0); done <- err }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err %v, want …%s…", err, tt.want)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the build hangs")
			}
		})
	}
}

// TestPassphraseAndCRLBounded: a passphrase file or CRL that is a FIFO or
// a device is refused without blocking.
func TestPassphraseAndCRLBounded(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	integMust(t, syscall.Mkfifo(fifo, 0o600))
	for _, p := range []string{fifo, "/dev/zero"} {
		_, err := signer.PassphraseFromFile(p)()
		if !errors.Is(err, boundedfile.ErrNotRegular) || !errors.Is(err, signer.ErrPassphrase) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v", p, err)
		}
		if _, err := pki.ReadCRL(p); !errors.Is(err, boundedfile.ErrNotRegular) || !strings.Contains(err.Error(), p) {
			t.Errorf("CRL %s: %v", p, err)
		}
	}
}
