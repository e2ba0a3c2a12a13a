package attest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/imaforge/imaforge/pipeline"
)

// benchList is a generated binary_runtime_measurements of n ima-sig
// entries (a boot_aggregate, then files /mnt/bin/fNNNNNN, each with a
// 265-byte RSA-2048-sized signature field), its reference values and a
// quote over it signed by a fresh AK.
func benchList(b *testing.B, n int) ([]byte, *Reference, *Quote, *AK) {
	b.Helper()
	rec := &pipeline.Record{Format: pipeline.RecordFormat, Hash: "sha256", Image: pipeline.RecordImage{Name: "bench.sqsh"}}
	es := make([]*Entry, 0, n)
	es = append(es, newEntry("ima-sig", "boot_aggregate", bootAgg[:], []byte{}))
	sig := make([]byte, 9+256)
	sig[0], sig[1], sig[2] = 3, 2, 4
	for i := 1; i < n; i++ {
		var content [8]byte
		binary.LittleEndian.PutUint64(content[:], uint64(i))
		d := sha256.Sum256(content[:])
		p := fmt.Sprintf("/bin/f%06d", i)
		rec.Files = append(rec.Files, pipeline.RecordFile{Path: p, Digest: hex.EncodeToString(d[:])})
		copy(sig[9:], d[:])
		es = append(es, newEntry("ima-sig", "/mnt"+p, d[:], append([]byte{}, sig...)))
	}
	ref, _, err := NewReference([]ImageSource{{Record: rec, Mount: "/mnt"}}, nil, []string{"sha256:" + hex.EncodeToString(bootAgg[:])})
	if err != nil {
		b.Fatal(err)
	}
	pcr, err := Replay(&List{Hash: crypto.SHA1, Entries: es}, crypto.SHA256)
	if err != nil {
		b.Fatal(err)
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	return encodeBinary(b, es), ref, fakeQuote(b, k, []byte("bench"), pcr[IMAPCR], 1, 1), &AK{Public: &k.PublicKey}
}

// BenchmarkVerify100k parses and verifies a 100,000-entry list against
// reference values and a quote: template hashes (sha1), the sha256 replay,
// every entry judged. Goal: under 1 s of CPU (cpu-s/op).
func BenchmarkVerify100k(b *testing.B) {
	data, ref, q, ak := benchList(b, 100_000)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	start := cpuTime()
	for b.Loop() {
		l, err := ParseBinary(data, ParseOptions{})
		if err != nil {
			b.Fatal(err)
		}
		rep, err := Verify(l, Options{Reference: ref, Quote: q, AK: ak, Nonce: []byte("bench")})
		if err != nil {
			b.Fatal(err)
		}
		if !rep.Trusted {
			b.Fatalf("not trusted: %+v", rep.Problems)
		}
	}
	b.ReportMetric((cpuTime()-start).Seconds()/float64(b.N), "cpu-s/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
