//go:build cgo && !imaforge_purego

package signer

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/imaforge/imaforge/imasig"
)

// TestLibcryptoThreads: many goroutines signing batches at once share at
// most GOMAXPROCS signing threads and get crypto/rsa's bytes; the threads
// end when stopped.
func TestLibcryptoThreads(t *testing.T) {
	s := loadSigner(t, "rsa2048")
	key := s.key.(*rsa.PrivateKey)
	be, err := newLibcryptoRSA(key)
	if err != nil {
		t.Fatal(err)
	}
	b := be.(*libcryptoRSA)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 4 * cap(b.threads) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ds [][]byte
			for i := range BatchSize + 5 {
				d := sha256.Sum256([]byte{byte(g), byte(i)})
				ds = append(ds, d[:])
			}
			sigs, err := b.signPKCS1v15Batch(imasig.SHA256.CryptoHash(), ds)
			if err != nil {
				errs <- err
				return
			}
			for i, d := range ds {
				want, _ := rsa.SignPKCS1v15(nil, key, imasig.SHA256.CryptoHash(), d)
				if !bytes.Equal(sigs[i], want) {
					t.Errorf("goroutine %d: signature %d differs from crypto/rsa's", g, i)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if b.made < 1 || b.made > cap(b.threads) {
		t.Fatalf("%d signing threads started, want 1 to %d", b.made, cap(b.threads))
	}
	running := osThreads(t)
	if n := stopThreads(b.threads); n != b.made {
		t.Fatalf("%d idle threads stopped, %d started", n, b.made)
	}
	deadline := time.Now().Add(10 * time.Second)
	for osThreads(t) > running-b.made && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := osThreads(t); n > running-b.made {
		t.Errorf("%d threads after stopping %d signing threads, %d before", n, b.made, running)
	}
	runtime.KeepAlive(b)
}

// osThreads is the number of threads of this process.
func osThreads(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
