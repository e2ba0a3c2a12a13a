package server

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imaforge/imaforge/service"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/signer"
)

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

const benchBatch = 256

// BenchmarkSign: signatures per second through the service (a relic server
// in this process, a file-token RSA-2048 key, batches of 256, each client
// one batch at a time) against signing locally with the same key
// (signer.Signer.SignDigests, BatchSize digests at a time, as a build with
// the key file signs; each local client signs its batch on one goroutine),
// with 1, 4 and 8 concurrent clients. cpu-ms/sig counts this whole process:
// client and server for the service, the signer alone for local.
func BenchmarkSign(b *testing.B) {
	f := newFixture(b, 1)
	serveInProcess(b, f, 0)
	local, err := signer.New(f.mfr.Key, f.mfr.Cert)
	if err != nil {
		b.Fatal(err)
	}
	entries := func(client, round int) []service.Entry {
		es := make([]service.Entry, benchBatch)
		for i := range es {
			var buf [12]byte
			binary.LittleEndian.PutUint32(buf[0:], uint32(client))
			binary.LittleEndian.PutUint32(buf[4:], uint32(round))
			binary.LittleEndian.PutUint32(buf[8:], uint32(i))
			d := sha256.Sum256(buf[:])
			es[i] = service.NewEntry(fmt.Sprintf("/usr/bin/f%d", i), imasig.SHA256, d[:])
		}
		return es
	}
	run := func(b *testing.B, clients int, sign func(c int, es []service.Entry) error) {
		b.ResetTimer()
		cpu0, t0 := cpuSeconds(), time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := c; r < b.N; r += clients {
					if err := sign(c, entries(c, r)); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
		sigs := float64(b.N * benchBatch)
		b.ReportMetric(sigs/time.Since(t0).Seconds(), "sigs/s")
		b.ReportMetric(1000*(cpuSeconds()-cpu0)/sigs, "cpu-ms/sig")
	}
	for _, clients := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("local/clients=%d", clients), func(b *testing.B) {
			run(b, clients, func(_ int, es []service.Entry) error {
				digests := make([][]byte, len(es))
				for i, e := range es {
					it, err := e.Parse()
					if err != nil {
						return err
					}
					digests[i] = it.Digest
				}
				for start := 0; start < len(digests); start += signer.BatchSize {
					if _, err := local.SignDigests(imasig.SHA256, digests[start:min(start+signer.BatchSize, len(digests))]); err != nil {
						return err
					}
				}
				return nil
			})
		})
		b.Run(fmt.Sprintf("service/clients=%d", clients), func(b *testing.B) {
			cl := make([]*service.Client, clients)
			for i := range cl {
				c, err := service.NewClient(context.Background(), f.ClientConfig("mfr"), service.ClientOptions{Retries: 1})
				if err != nil {
					b.Fatal(err)
				}
				cl[i] = c
			}
			run(b, clients, func(c int, es []service.Entry) error {
				_, err := cl[c].Sign(context.Background(), "mfr", es)
				return err
			})
		})
	}
}
