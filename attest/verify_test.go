package attest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/internal/testpki"
	"github.com/imaforge/imaforge/pipeline"
	"github.com/imaforge/imaforge/pki"
)

// device is a measurement list of a device running one image mounted at
// /mnt, with a reference built from that image's build record.
type device struct {
	w       *world
	entries []*Entry
	ref     *Reference
	ak      *rsa.PrivateKey
}

var bootAgg = sha256.Sum256([]byte("boot"))

func newDevice(t *testing.T) *device {
	t.Helper()
	w := newWorld(t)
	boot := newEntry("ima-sig", "boot_aggregate", bootAgg[:], []byte{})
	rec := &pipeline.Record{Format: pipeline.RecordFormat, Hash: "sha256", Image: pipeline.RecordImage{Name: "app.sqsh"}}
	add := func(p string, content []byte, s bool) *Entry {
		d := sha256.Sum256(content)
		f := pipeline.RecordFile{Path: p, Digest: hex.EncodeToString(d[:])}
		var e *Entry
		if s {
			e = signed(t, w.device, "/mnt"+p, content)
			f.KeyID = hex.EncodeToString(w.device.Cert().SubjectKeyId[len(w.device.Cert().SubjectKeyId)-4:])
		} else {
			e = signed(t, nil, "/mnt"+p, content)
		}
		rec.Files = append(rec.Files, f)
		return e
	}
	es := []*Entry{boot, add("/bin/good", []byte("good"), true), add("/bin/plain", []byte("plain"), false)}
	ref, _, err := NewReference([]ImageSource{{Record: rec, Mount: "/mnt"}}, nil, []string{"sha256:" + hex.EncodeToString(bootAgg[:])})
	if err != nil {
		t.Fatal(err)
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &device{w: w, entries: es, ref: ref, ak: k}
}

func (d *device) pcr10(t *testing.T, es []*Entry) []byte {
	l := &List{Hash: crypto.SHA1, Entries: es}
	v, err := Replay(l, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if v[IMAPCR] == nil {
		return make([]byte, 32)
	}
	return v[IMAPCR]
}

// verify quotes quoted (the device's real list) and verifies shown (what
// it sends) through the binary form.
func (d *device) verify(t *testing.T, quoted, shown []*Entry, nonce []byte, mut func(*Options)) *Report {
	t.Helper()
	q := fakeQuote(t, d.ak, []byte("nonce"), d.pcr10(t, quoted), 5000, 1)
	l, err := Parse(encodeBinary(t, shown), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Reference: d.ref, Trust: d.w.trust, Quote: q, AK: &AK{Public: &d.ak.PublicKey}, Nonce: nonce}
	if mut != nil {
		mut(&opts)
	}
	rep, err := Verify(l, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestVerifyClean(t *testing.T) {
	d := newDevice(t)
	rep := d.verify(t, d.entries, d.entries, []byte("nonce"), nil)
	if !rep.Trusted || !rep.ReplayMatches || !rep.Quote.Verified {
		var b strings.Builder
		rep.WriteText(&b, true)
		t.Fatalf("clean device not trusted:\n%s", b.String())
	}
	if rep.Entries[1].Basis != BasisReference {
		t.Errorf("entry 1 basis %s", rep.Entries[1].Basis)
	}
	// without reference values the signed file is trusted by its signature,
	// the unsigned one is unknown
	rep = d.verify(t, d.entries, d.entries, []byte("nonce"), func(o *Options) { o.Reference = nil; o.Mounts = []string{"/mnt"} })
	if e := rep.Entries[1]; e.Verdict != VerdictTrusted || e.Basis != BasisSignature {
		t.Errorf("signed entry without reference: %+v", e)
	}
	if e := rep.Entries[2]; e.Verdict != VerdictUnknown || rep.Trusted {
		t.Errorf("unsigned entry without reference: %+v", e)
	}
	if e := rep.Entries[0]; e.Verdict != VerdictFailed || e.Reason != ReasonBootAggregate {
		t.Errorf("boot aggregate without reference: %+v", e)
	}
}

func TestVerifyFailures(t *testing.T) {
	d := newDevice(t)
	unknown := signed(t, nil, "/tmp/evil", []byte("evil"))
	rogueRoot := testpki.New(t, "Rogue", "Rogue Owner")
	rogue := testpki.Issue(t, pki.Request{Role: pki.RoleIMA, Name: "Rogue IMA", KeyType: pki.P256}, rogueRoot.OwnerIssuer(), pki.Options{})
	rogueSigner := mustSigner(t, rogue)
	tenantOK := signed(t, d.w.tenant, "/mnt/app/x", []byte("app"))
	tenantOut := signed(t, d.w.tenant, "/mnt/bin/y", []byte("y"))
	badSig := signed(t, d.w.device, "/tmp/z", []byte("z"))
	badSig.Fields[2] = append([]byte{}, badSig.Fields[2]...)
	badSig.Fields[2][len(badSig.Fields[2])-1] ^= 1
	badSig.Sig = badSig.Fields[2]
	badSig.TemplateHash = badSig.ComputeTemplateHash(crypto.SHA1)
	keyOK := newEntry("ima-buf", "_ima", digestOf(d.w.deviceCert.Cert.Raw), d.w.deviceCert.Cert.Raw)
	keyRogue := newEntry("ima-buf", "_ima", digestOf(rogue.Cert.Raw), rogue.Cert.Raw)
	wrong := signed(t, nil, "/mnt/bin/good", []byte("changed"))

	all := func(extra ...*Entry) []*Entry { return append(append([]*Entry{}, d.entries...), extra...) }
	tests := []struct {
		name    string
		entry   *Entry
		verdict Verdict
		reason  Reason
		basis   Basis
	}{
		{"unknown binary", unknown, VerdictUnknown, "", ""},
		{"rogue key", signed(t, rogueSigner, "/tmp/r", []byte("r")), VerdictUnknown, "", ""},
		{"tenant in scope", tenantOK, VerdictTrusted, "", BasisSignature},
		{"tenant out of scope", tenantOut, VerdictFailed, ReasonOutOfScope, ""},
		{"bad signature", badSig, VerdictFailed, ReasonBadSignature, ""},
		{"trusted key loaded", keyOK, VerdictTrusted, "", BasisKey},
		{"rogue key loaded", keyRogue, VerdictFailed, ReasonUntrustedKey, ""},
		{"known path other digest", wrong, VerdictFailed, ReasonDigestMismatch, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := all(tt.entry)
			rep := d.verify(t, es, es, []byte("nonce"), nil)
			got := rep.Entries[len(es)-1]
			if got.Verdict != tt.verdict || got.Reason != tt.reason || got.Basis != tt.basis {
				t.Errorf("got %+v", got)
			}
			if rep.Trusted != (tt.verdict == VerdictTrusted) || !rep.ReplayMatches {
				t.Errorf("trusted %v, replay %v", rep.Trusted, rep.ReplayMatches)
			}
		})
	}
}

func digestOf(b []byte) []byte { d := sha256.Sum256(b); return d[:] }

func TestVerifyReplay(t *testing.T) {
	d := newDevice(t)
	es := d.entries
	// an edited line: the digest of entry 1 changed, template hash kept
	edited := append([]*Entry{}, es...)
	e1 := *es[1]
	other := sha256.Sum256([]byte("other"))
	e1.Fields = [][]byte{append([]byte("sha256:\x00"), other[:]...), e1.Fields[1], e1.Fields[2]}
	e1.raw = nil
	edited[1] = &e1
	rep := d.verify(t, es, edited, []byte("nonce"), nil)
	if rep.Trusted || rep.Entries[1].Reason != ReasonTemplateHash || len(rep.Problems) == 0 || rep.Problems[0].Entry != 1 {
		t.Errorf("edited entry: %+v %+v", rep.Entries[1], rep.Problems)
	}
	// the last entry dropped: named after the last entry shown
	rep = d.verify(t, es, es[:len(es)-1], []byte("nonce"), nil)
	if rep.Trusted || rep.Quote.Verified || len(rep.Problems) != 1 || rep.Problems[0].Reason != ReasonReplay || rep.Problems[0].Entry != len(es)-1 {
		t.Errorf("dropped entry: %+v", rep.Problems)
	}
	// entries measured after the quote: attested prefix, noted
	later := append(append([]*Entry{}, es...), signed(t, d.w.device, "/mnt/bin/late", []byte("late")))
	rep = d.verify(t, es, later, []byte("nonce"), nil)
	if !rep.ReplayMatches || rep.Entries[len(later)-1].Quoted || !rep.Entries[0].Quoted || len(rep.Notes) != 1 {
		t.Errorf("later entry: %+v %v", rep.Entries[len(later)-1], rep.Notes)
	}
	// old nonce, other AK
	rep = d.verify(t, es, es, []byte("old"), nil)
	if rep.Trusted || rep.Quote.Verified || !strings.Contains(rep.Problems[0].Detail, "nonce") {
		t.Errorf("old nonce: %+v", rep.Problems)
	}
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	rep = d.verify(t, es, es, []byte("nonce"), func(o *Options) { o.AK = &AK{Public: &k2.PublicKey} })
	if rep.Trusted || rep.Quote.Verified || !strings.Contains(rep.Problems[0].Detail, "signature") {
		t.Errorf("other AK: %+v", rep.Problems)
	}
	// a previous quote from after a reboot
	rep = d.verify(t, es, es, []byte("nonce"), func(o *Options) { o.Previous = fakeQuote(t, d.ak, []byte("x"), make([]byte, 32), 100, 0) })
	if rep.Trusted || !strings.Contains(rep.Problems[0].Detail, "rebooted") {
		t.Errorf("reboot: %+v", rep.Problems)
	}
}

// A key measurement is judged by the chain checks even when the store holds
// the certificate: without the CA's CRL its revocation is unknown, so it is
// not trusted (fail closed).
func TestKeyMeasurementNeedsRevocation(t *testing.T) {
	d := newDevice(t)
	keyOK := newEntry("ima-buf", "_ima", digestOf(d.w.deviceCert.Cert.Raw), d.w.deviceCert.Cert.Raw)
	noCRL, err := pki.NewTrustStore([]*x509.Certificate{d.w.h.Root.Cert}, []*x509.Certificate{d.w.h.Owner.Cert, d.w.deviceCert.Cert}, nil)
	if err != nil {
		t.Fatal(err)
	}
	es := append(append([]*Entry{}, d.entries...), keyOK)
	rep := d.verify(t, es, es, []byte("nonce"), func(o *Options) { o.Trust = noCRL })
	if got := rep.Entries[len(es)-1]; got.Verdict != VerdictFailed || got.Reason != ReasonUntrustedKey {
		t.Errorf("key without CRLs: %+v", got)
	}
	rep = d.verify(t, es, es, []byte("nonce"), nil)
	if got := rep.Entries[len(es)-1]; got.Verdict != VerdictTrusted {
		t.Errorf("key with CRLs: %+v", got)
	}
}
