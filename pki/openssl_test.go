package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/imaforge/imaforge/internal/testenv"
)

// opensslErrors maps `openssl verify` error numbers (include/openssl/x509_vfy.h)
// to the sentinel imaforge must report for the same certificate.
var opensslErrors = map[int]error{
	2:  ErrUnknownIssuer, // X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
	7:  ErrBadSignature,  // X509_V_ERR_CERT_SIGNATURE_FAILURE
	9:  ErrNotYetValid,   // X509_V_ERR_CERT_NOT_YET_VALID
	10: ErrExpired,       // X509_V_ERR_CERT_HAS_EXPIRED
	20: ErrUnknownIssuer, // X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
	23: ErrRevoked,       // X509_V_ERR_CERT_REVOKED
	79: ErrKeyUsage,      // X509_V_ERR_INVALID_CA (OpenSSL 3 numbering)
	25: ErrKeyUsage,      // X509_V_ERR_PATH_LENGTH_EXCEEDED
	32: ErrKeyUsage,      // X509_V_ERR_KEYUSAGE_NO_CERTSIGN
}

var opensslErrorRE = regexp.MustCompile(`error (\d+) at (\d+) depth lookup`)

// verifyCase is one certificate judged by openssl and by imaforge.
type verifyCase struct {
	name          string
	leaf          *x509.Certificate
	intermediates []*x509.Certificate
	crls          []*x509.RevocationList // when set: -crl_check_all
	want          error                  // nil: valid
}

func verifyCases(t *testing.T, kt KeyType) (root *x509.Certificate, cases []verifyCase) {
	h := newHierarchy(t, kt)
	ri, oi := h.rootIssuer(), h.ownerIssuer()
	root = h.root.Cert
	owner := h.owner.Cert
	chain := []*x509.Certificate{owner}
	ima := func(name string, now time.Time, life time.Duration) *x509.Certificate {
		return mustIssue(t, Request{Role: RoleIMA, Name: name, KeyType: kt, Lifetime: life}, &oi, at(now)).Cert
	}
	rootCRL, _, err := UpdateCRL(nil, ri, CRLUpdate{}, at(t0))
	if err != nil {
		t.Fatal(err)
	}
	revokedLeaf := ima("Revoked tenant", t0, 0)
	ownerCRL, _, err := UpdateCRL(nil, oi, CRLUpdate{Revoke: []*x509.Certificate{revokedLeaf}, Reason: 1}, at(t0))
	if err != nil {
		t.Fatal(err)
	}
	crls := []*x509.RevocationList{rootCRL, ownerCRL}

	// Another owner CA, not in the trust store.
	other := mustIssue(t, Request{Role: RoleOwnerCA, Name: "Owner Two", KeyType: kt}, &ri, at(t0))
	otherIssuer := Issuer{Cert: other.Cert, Key: other.Key}
	strangerLeaf := mustIssue(t, Request{Role: RoleIMA, Name: "Stranger", KeyType: kt}, &otherIssuer, at(t0)).Cert

	// A forgery: names Owner One as issuer, with its key identifier, but
	// is signed by Owner Two's key.
	fakeOwner := *other.Cert
	fakeOwner.RawSubject, fakeOwner.Subject, fakeOwner.SubjectKeyId = owner.RawSubject, owner.Subject, owner.SubjectKeyId
	forged := rawCert(t, &x509.Certificate{
		Subject: name("Forged"), NotBefore: t0, NotAfter: t0.Add(365 * Day),
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature,
	}, &fakeOwner, h.ima.Key.Public(), other.Key)

	// An "owner CA" without keyCertSign, and one with CA:FALSE.
	noCertSign := rawCert(t, &x509.Certificate{
		Subject: name("Owner no certsign"), NotBefore: t0, NotAfter: t0.Add(365 * Day),
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageDigitalSignature,
	}, root, other.Key.Public(), h.root.Key)
	notCA := rawCert(t, &x509.Certificate{
		Subject: name("Owner not CA"), NotBefore: t0, NotAfter: t0.Add(365 * Day),
		BasicConstraintsValid: true, IsCA: false, KeyUsage: x509.KeyUsageCertSign,
	}, root, other.Key.Public(), h.root.Key)
	leafUnder := func(parent *x509.Certificate, cn string) *x509.Certificate {
		p := *parent
		p.KeyUsage, p.IsCA, p.BasicConstraintsValid = x509.KeyUsageCertSign, true, true // let Go sign
		return rawCert(t, &x509.Certificate{
			Subject: name(cn), NotBefore: t0, NotAfter: t0.Add(365 * Day),
			BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature,
		}, &p, h.ima.Key.Public(), other.Key)
	}

	// A sub-CA under the owner CA (pathlen 0 forbids it).
	sub := rawCert(t, &x509.Certificate{
		Subject: name("Sub CA"), NotBefore: t0, NotAfter: t0.Add(365 * Day),
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign,
	}, owner, other.Key.Public(), h.owner.Key)

	expiredOwner := mustIssue(t, Request{Role: RoleOwnerCA, Name: "Old owner", KeyType: kt, Lifetime: 30 * Day}, &ri, at(t0.Add(-60*Day)))
	eoi := Issuer{Cert: expiredOwner.Cert, Key: expiredOwner.Key}
	underExpired := mustIssue(t, Request{Role: RoleIMA, Name: "Under old owner", KeyType: kt, Lifetime: 10 * Day}, &eoi, at(t0.Add(-50*Day))).Cert

	cases = []verifyCase{
		{name: "valid", leaf: h.ima.Cert, intermediates: chain},
		{name: "valid with CRLs", leaf: h.ima.Cert, intermediates: chain, crls: crls},
		{name: "valid issued by root", leaf: mustIssue(t, Request{Role: RoleIMA, Name: "Mfr signing", KeyType: kt}, &ri, at(t0)).Cert},
		{name: "expired", leaf: ima("Expired", t0.Add(-400*Day), 365*Day), intermediates: chain, want: ErrExpired},
		{name: "not yet valid", leaf: ima("Future", t0.Add(30*Day), 0), intermediates: chain, want: ErrNotYetValid},
		{name: "revoked", leaf: revokedLeaf, intermediates: chain, crls: crls, want: ErrRevoked},
		{name: "wrong issuer", leaf: strangerLeaf, intermediates: chain, want: ErrUnknownIssuer},
		{name: "forged signature", leaf: forged, intermediates: chain, want: ErrBadSignature},
		{name: "issuer lacks keyCertSign", leaf: leafUnder(noCertSign, "Under no certsign"), intermediates: []*x509.Certificate{noCertSign}, want: ErrKeyUsage},
		{name: "issuer is not a CA", leaf: leafUnder(notCA, "Under not CA"), intermediates: []*x509.Certificate{notCA}, want: ErrKeyUsage},
		{name: "path length exceeded", leaf: leafUnder(sub, "Under sub CA"), intermediates: []*x509.Certificate{owner, sub}, want: ErrKeyUsage},
		{name: "issuer expired", leaf: underExpired, intermediates: []*x509.Certificate{expiredOwner.Cert}, want: ErrExpired},
	}
	return root, cases
}

// TestOpensslAgrees checks that `openssl verify` and TrustStore.CheckSigner
// give the same verdict, and the same kind of error, on each certificate.
func TestOpensslAgrees(t *testing.T) {
	openssl := testenv.NeedTool(t, "openssl")
	for _, kt := range []KeyType{RSA2048, P256, P384} {
		root, cases := verifyCases(t, kt)
		checkAt := t0.Add(checkDelay)
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/%s", kt, tc.name), func(t *testing.T) {
				dir := t.TempDir()
				args := []string{"verify", "-attime", strconv.FormatInt(checkAt.Unix(), 10), "-CAfile", writePEM(t, dir, "root.pem", root)}
				if len(tc.intermediates) > 0 {
					args = append(args, "-untrusted", writePEM(t, dir, "inter.pem", tc.intermediates...))
				}
				if len(tc.crls) > 0 {
					args = append(args, "-crl_check_all")
					for i, crl := range tc.crls {
						p := filepath.Join(dir, fmt.Sprintf("%d.crl", i))
						if err := WriteCRL(p, crl); err != nil {
							t.Fatal(err)
						}
						args = append(args, "-CRLfile", p)
					}
				}
				args = append(args, writePEM(t, dir, "leaf.pem", tc.leaf))
				out, err := run(openssl, args...)
				var opensslErr error
				if err != nil {
					m := opensslErrorRE.FindStringSubmatch(out)
					if m == nil {
						t.Fatalf("openssl verify failed without an error number: %v\n%s", err, out)
					}
					n, _ := strconv.Atoi(m[1])
					if opensslErr = opensslErrors[n]; opensslErr == nil {
						t.Fatalf("openssl error %d not mapped:\n%s", n, out)
					}
				}

				ts, err := NewTrustStore([]*x509.Certificate{root}, tc.intermediates, tc.crls)
				if err != nil {
					t.Fatal(err)
				}
				if len(tc.crls) == 0 {
					ts.SetRevocation(RevocationBestEffort) // as openssl verify without -crl_check_all
				}
				_, ours := ts.CheckSigner(tc.leaf, nil, checkAt)

				if !errors.Is(opensslErr, tc.want) || !errors.Is(ours, tc.want) || (tc.want == nil) != (ours == nil) || (tc.want == nil) != (opensslErr == nil) {
					t.Errorf("want %v\nopenssl: %v (%s)\nimaforge: %v", tc.want, opensslErr, out, ours)
				}
				var ce *CertError
				if ours != nil && !errors.As(ours, &ce) {
					t.Errorf("imaforge error %T is not a *CertError", ours)
				}
			})
		}
	}
}
