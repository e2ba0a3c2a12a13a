package attest

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/pki"
)

// Options are the inputs of Verify besides the list.
type Options struct {
	// Reference holds the reference values (digests per path, mount points,
	// signing keys, allowed boot aggregates and buffers). May be nil.
	Reference *Reference
	// Trust is the trust store: signing keys must chain to it (their
	// tenant scope applies), and ima-buf key measurements must be its
	// keys. When nil, the Reference's keys are trusted as given.
	Trust *pki.TrustStore
	// Mounts are image mount points on the device beyond the Reference's,
	// for the scope check of keys found in the trust store.
	Mounts []string
	// At is the time certificate dates are checked at; zero skips dates
	// (the kernel never checks them).
	At time.Time

	// Quote, AK and Nonce: the TPM quote to check (AK and Nonce are then
	// required), Previous an earlier quote of the same device.
	Quote    *Quote
	AK       *AK
	Nonce    []byte
	Previous *Quote
	// Bank is the PCR bank replayed when there is no quote (the quote's
	// selection decides otherwise); zero means sha256.
	Bank Bank
	// PCR10, when set, is the expected PCR 10 value of Bank (e.g. from
	// tpm2_pcrread), checked like a quote's.
	PCR10 []byte
}

// Verify judges a measurement list: every entry's template hash, its
// content against the reference values and the trust store, the replay of
// PCR 10 against the quote (or an expected value), and the quote itself.
// It fails only on bad options; everything about the device is in the
// Report.
func Verify(l *List, opts Options) (*Report, error) {
	if opts.Quote != nil && (opts.AK == nil || len(opts.Nonce) == 0) {
		return nil, fmt.Errorf("a quote needs the attestation key and the nonce to check it")
	}
	j, err := newJudge(opts)
	if err != nil {
		return nil, err
	}
	rep := &Report{Entries: make([]EntryResult, len(l.Entries)), Bank: "", QuoteChecked: opts.Quote != nil}

	// the bank to replay: the quote's, else the option's
	bank := opts.Bank
	if bank == 0 {
		bank = crypto.SHA256
	}
	if opts.Quote != nil {
		if sel, err := opts.Quote.PCRSelection(); err == nil {
			for _, s := range sel {
				if len(s.PCRs) > 0 {
					bank = s.Bank
					break
				}
			}
		}
	}
	rep.Bank = BankName(bank)

	// the target PCR 10 digest to find during the replay
	var target func(v []byte) bool
	var qHash crypto.Hash
	if opts.Quote != nil {
		if qHash, err = opts.Quote.digestHash(); err == nil {
			want := opts.Quote.Info.PCRDigest.Buffer
			target = func(v []byte) bool {
				h := qHash.New()
				h.Write(v)
				return bytes.Equal(h.Sum(nil), want)
			}
		}
	} else if opts.PCR10 != nil {
		target = func(v []byte) bool { return bytes.Equal(v, opts.PCR10) }
	}

	rp := NewReplayer(bank)
	reached := -2 // index after which the replayed PCR 10 matched (-1: before any entry)
	if target != nil && target(rp.PCR(IMAPCR)) {
		reached = -1
	}
	replayBroken := -1 // first entry that could not be replayed
	firstEdited := -1
	for i, e := range l.Entries {
		res := &rep.Entries[i]
		res.fill(e)
		// template hash of the list's own bank, recomputed
		if !e.Violation() && (e.Known || e.raw != nil) {
			if got := e.ComputeTemplateHash(l.Hash); !bytes.Equal(got, e.TemplateHash) {
				res.fail(ReasonTemplateHash, fmt.Sprintf("the template data gives %s template hash %x, the list says %x: the entry was edited", BankName(l.Hash), got, e.TemplateHash))
				if firstEdited < 0 {
					firstEdited = i
				}
			}
		}
		if replayBroken < 0 {
			th, err := e.BankHash(bank, l.Hash)
			if err != nil {
				replayBroken = i
				res.fail(ReasonUnknownTemplate, err.Error())
			} else {
				v := rp.Extend(e, th)
				if e.PCR == IMAPCR && target != nil && target(v) {
					reached = i
				}
			}
		}
		j.judge(e, res)
	}
	for i := range rep.Entries {
		rep.Entries[i].Quoted = opts.Quote != nil && i <= reached
	}
	rep.PCR10 = hex.EncodeToString(rp.PCR(IMAPCR))

	// the replay against the quote / expected value
	switch {
	case replayBroken >= 0:
		rep.problem(ReasonReplay, fmt.Sprintf("the replay stops at entry %d: %s", replayBroken, rep.Entries[replayBroken].Detail), replayBroken)
	case target == nil:
		if opts.Quote != nil {
			rep.problem(ReasonQuote, "the quote's signature hash is unknown, PCR 10 cannot be compared", -1)
		}
	case reached == len(l.Entries)-1 || (reached == -1 && len(l.Entries) == 0):
		rep.ReplayMatches = true
	case reached >= -1:
		rep.ReplayMatches = true
		rep.Notes = append(rep.Notes, fmt.Sprintf("entries %d-%d were measured after the quote (PCR 10 matched after entry %d); they are not attested by it", reached+1, len(l.Entries)-1, reached))
	default:
		what := "quoted"
		if opts.Quote == nil {
			what = "expected"
		}
		if firstEdited >= 0 {
			rep.problem(ReasonReplay, fmt.Sprintf("the replayed PCR 10 never equals the %s value; it diverges at entry %d, whose template hash does not match its data (an edited entry)", what, firstEdited), firstEdited)
		} else {
			n := len(l.Entries)
			rep.problem(ReasonReplay, fmt.Sprintf("the replayed PCR 10 never equals the %s value: the list of %d entries ends before reaching it (entries missing from entry %d on: a truncated list), or entries were replaced", what, n, n), n)
		}
	}

	// the quote
	if q := opts.Quote; q != nil {
		qr := &QuoteResult{Nonce: hex.EncodeToString(q.Nonce()), Clock: q.Clock().Clock, ResetCount: q.Clock().ResetCount, RestartCount: q.Clock().RestartCount, PCRDigest: hex.EncodeToString(q.Info.PCRDigest.Buffer)}
		if sel, err := q.PCRSelection(); err == nil {
			qr.Selection = formatSelection(sel)
		}
		rep.Quote = qr
		check := func(err error) {
			if err != nil {
				qr.Problems = append(qr.Problems, err.Error())
				rep.problem(ReasonQuote, err.Error(), -1)
			}
		}
		check(q.CheckSignature(opts.AK))
		check(q.CheckNonce(opts.Nonce))
		_, err := q.CheckPCRs(func(b Bank) ([]byte, error) {
			if b != bank {
				return nil, fmt.Errorf("%w: bank %s not replayed", ErrQuotePCRs, BankName(b))
			}
			if replayBroken >= 0 {
				return nil, fmt.Errorf("%w: the list could not be replayed", ErrQuotePCRs)
			}
			return rp.PCR(IMAPCR), nil
		})
		switch {
		case err == nil:
		case errors.Is(err, ErrQuotePCRs) && rep.ReplayMatches:
			// the quote matched a prefix of the list (CheckPCRs compares the end)
		case errors.Is(err, ErrQuotePCRs) && len(rep.Problems) > 0 && rep.Problems[0].Reason == ReasonReplay:
			qr.Problems = append(qr.Problems, err.Error()) // already named as a replay problem
		default:
			check(err)
		}
		if opts.Previous != nil {
			check(q.CheckAfter(opts.Previous))
		}
		qr.Verified = len(qr.Problems) == 0
	}
	rep.finish()
	return rep, nil
}

// judge holds what entry judging needs, computed once.
type judge struct {
	opts    Options
	digests map[string][]string // device path -> "algo:hex"
	mounts  []string
	keys    map[[4]byte]*keyInfo
	refKeys map[[4]byte]*x509.Certificate
	boot    map[string]bool
	bufs    map[string]map[string]bool
}

type keyInfo struct {
	cert     *x509.Certificate
	chain    *pki.Chain
	chainErr error
}

func newJudge(opts Options) (*judge, error) {
	j := &judge{opts: opts, digests: map[string][]string{}, keys: map[[4]byte]*keyInfo{}, refKeys: map[[4]byte]*x509.Certificate{}, boot: map[string]bool{}, bufs: map[string]map[string]bool{}}
	for _, m := range opts.Mounts {
		mm, err := cleanMount(m)
		if err != nil {
			return nil, err
		}
		j.mounts = append(j.mounts, mm)
	}
	if r := opts.Reference; r != nil {
		for _, img := range r.Images {
			j.mounts = append(j.mounts, img.Mount)
			for _, f := range img.Files {
				p := path.Join(img.Mount, f.Path)
				j.digests[p] = append(j.digests[p], f.Digest)
			}
		}
		certs, err := r.Certificates()
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			j.refKeys[imasig.KeyID(c)] = c
		}
		for _, b := range r.BootAggregate {
			j.boot[b] = true
		}
		for name, ds := range r.Buffers {
			j.bufs[name] = map[string]bool{}
			for _, d := range ds {
				j.bufs[name][d] = true
			}
		}
	}
	return j, nil
}

func (j *judge) judge(e *Entry, res *EntryResult) {
	switch {
	case !e.Known:
		res.fail(ReasonUnknownTemplate, fmt.Sprintf("template %q is not one this verifier knows (ima, ima-ng, ima-sig, ima-buf, ima-modsig, ...): its entry cannot be judged", e.Template))
		return
	case e.Violation():
		res.fail(ReasonViolation, "a measurement violation (file opened for writing while measured, or ToMToU): its content is unknown")
		return
	}
	if res.Verdict == VerdictFailed {
		return // template hash mismatch: the fields cannot be believed
	}
	tagged := e.DigestAlgo + ":" + hex.EncodeToString(e.Digest)
	if e.Name == "boot_aggregate" && e.Buf == nil {
		if j.boot[tagged] {
			res.trust(BasisBootAggregate, "an allowed boot aggregate")
		} else {
			res.fail(ReasonBootAggregate, fmt.Sprintf("boot aggregate %s is not among the allowed values", tagged))
		}
		return
	}
	if e.Buf != nil || e.Template == "ima-buf" {
		j.judgeBuffer(e, res, tagged)
		return
	}
	ds, known := j.digests[e.Name]
	for _, d := range ds {
		if d == tagged {
			res.trust(BasisReference, "digest in the reference values for this path")
			return
		}
	}
	if len(e.Sig) > 0 {
		if j.judgeSignature(e, res) {
			return
		}
		if res.Verdict == VerdictFailed {
			return
		}
	}
	if known {
		res.fail(ReasonDigestMismatch, fmt.Sprintf("digest %s is not the reference's %s for this path", tagged, strings.Join(ds, ", ")))
		return
	}
	res.Verdict = VerdictUnknown
	if res.Detail == "" {
		res.Detail = "not in the reference values and not signed by a trusted key"
	}
}

// judgeSignature checks an ima-sig signature over the measured digest; it
// reports whether the entry is trusted by it.
func (j *judge) judgeSignature(e *Entry, res *EntryResult) bool {
	sig, err := imasig.ParseSignature(e.Sig)
	if err != nil {
		res.fail(ReasonBadSignature, fmt.Sprintf("the signature field is not a security.ima signature: %v", err))
		return false
	}
	res.KeyID = hex.EncodeToString(sig.KeyID[:])
	ki := j.key(sig.KeyID)
	if ki == nil {
		res.Detail = fmt.Sprintf("signed by key %s, which is neither in the trust store nor in the reference values", res.KeyID)
		return false
	}
	res.Signer = ki.cert.Subject.String()
	if h, err := imasig.ParseHash(e.DigestAlgo); err != nil || h != sig.Hash {
		res.fail(ReasonBadSignature, fmt.Sprintf("the signature is over a %s digest, the measurement is %s", sig.Hash, e.DigestAlgo))
		return false
	}
	if err := imasig.Verify(e.Sig, e.Digest, ki.cert); err != nil {
		res.fail(ReasonBadSignature, fmt.Sprintf("the signature by %s does not verify over the measured digest: %v", res.KeyID, err))
		return false
	}
	if ki.chainErr != nil {
		res.fail(ReasonUntrustedKey, fmt.Sprintf("key %s (%s): %v", res.KeyID, res.Signer, ki.chainErr))
		return false
	}
	imgPath, ok := j.imagePath(e.Name)
	if ki.chain != nil {
		if !ok {
			if err := ki.chain.CheckPath(e.Name); err != nil {
				res.fail(ReasonOutOfScope, fmt.Sprintf("%s is under no image mount point, and key %s may not sign it: %v", e.Name, res.KeyID, err))
				return false
			}
		} else if err := ki.chain.CheckPath(imgPath); err != nil {
			res.fail(ReasonOutOfScope, fmt.Sprintf("key %s may not sign %s (image path %s): %v", res.KeyID, e.Name, imgPath, err))
			return false
		}
	} else if s, err := pki.ParseScope(ki.cert); err != nil {
		res.fail(ReasonUntrustedKey, err.Error())
		return false
	} else {
		p := e.Name
		if ok {
			p = imgPath
		}
		if !s.Allows(p) {
			res.fail(ReasonOutOfScope, fmt.Sprintf("key %s may sign only %s, not %s", res.KeyID, s, p))
			return false
		}
	}
	res.trust(BasisSignature, fmt.Sprintf("signature valid, key %s (%s)", res.KeyID, res.Signer))
	return true
}

// key finds a signing key: in the trust store (whose chain then decides),
// else among the reference's keys (trusted as the operator's own) when
// there is no trust store, or checked against the trust store when there
// is one.
func (j *judge) key(id [4]byte) *keyInfo {
	if ki, ok := j.keys[id]; ok {
		return ki
	}
	var ki *keyInfo
	ts := j.opts.Trust
	var cert *x509.Certificate
	if ts != nil {
		if c, err := ts.ResolveKeyID(id); err == nil {
			cert = c
		}
	}
	if cert == nil {
		cert = j.refKeys[id]
	}
	if cert != nil {
		ki = &keyInfo{cert: cert}
		if ts != nil {
			ki.chain, ki.chainErr = ts.CheckSigner(cert, nil, j.opts.At)
		}
	}
	j.keys[id] = ki
	return ki
}

// imagePath maps a device path to the path inside the image mounted at
// the longest matching mount point.
func (j *judge) imagePath(p string) (string, bool) {
	best := ""
	for _, m := range j.mounts {
		if (m == "/" || p == m || strings.HasPrefix(p, m+"/")) && len(m) > len(best) {
			best = m
		}
	}
	if best == "" {
		return "", false
	}
	if best == "/" {
		return p, true
	}
	return "/" + strings.TrimPrefix(strings.TrimPrefix(p, best), "/"), true
}

// judgeBuffer judges an ima-buf entry: a certificate measured into a
// keyring must be a key of the trust store (or of the reference values);
// another buffer must have an allowed digest for its name.
func (j *judge) judgeBuffer(e *Entry, res *EntryResult, tagged string) {
	if c, err := x509.ParseCertificate(e.Buf); err == nil {
		res.KeyID = hex.EncodeToString(func() []byte { id := imasig.KeyID(c); return id[:] }())
		res.Signer = c.Subject.String()
		if err := j.trustedKey(c); err == nil {
			res.trust(BasisKey, fmt.Sprintf("key %s (%s) loaded into keyring %s is in the trust store", res.KeyID, res.Signer, e.Name))
		} else {
			res.fail(ReasonUntrustedKey, fmt.Sprintf("key %s (%s) loaded into keyring %s is not a trusted key: %v", res.KeyID, res.Signer, e.Name, err))
		}
		return
	}
	if j.bufs[e.Name][tagged] {
		res.trust(BasisBuffer, "buffer digest allowed for this name")
		return
	}
	res.Verdict = VerdictUnknown
	res.Detail = fmt.Sprintf("buffer %q with digest %s is not in the reference values", e.Name, tagged)
}

func (j *judge) trustedKey(c *x509.Certificate) error {
	if ts := j.opts.Trust; ts != nil {
		// a root is trusted as itself; any other certificate, even one the
		// store holds, must pass the chain checks (CRLs: a revoked or
		// revocation-unknown key is not trusted)
		for _, t := range ts.Roots() {
			if t.Equal(c) {
				return nil
			}
		}
		var err error
		if c.IsCA {
			_, err = ts.CheckCA(c, j.opts.At)
		} else {
			_, err = ts.CheckSigner(c, nil, j.opts.At)
		}
		return err
	}
	if rc := j.refKeys[imasig.KeyID(c)]; rc != nil && rc.Equal(c) {
		return nil
	}
	return fmt.Errorf("not among the reference values' keys (and no trust store given)")
}
