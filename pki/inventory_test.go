package pki

import (
	"bytes"
	"crypto/x509"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imaforge/imaforge/signer"
)

// inventoryFixture is testdata/pki/inventory.index: the inventory of the
// owner CA testdata/pki/inventory-ca.pem with one valid, one revoked and one
// imported (certificate unknown) entry. Regenerate both with
// IMAFORGE_UPDATE_INVENTORY=1 go test ./pki -run TestInventoryFixture.
var (
	inventoryFixture   = filepath.Join("..", "testdata", "pki", "inventory.index")
	inventoryFixtureCA = filepath.Join("..", "testdata", "pki", "inventory-ca.pem")
)

func sampleInventory(t testing.TB) (*Inventory, *hierarchy) {
	t.Helper()
	h := newHierarchy(t, P256)
	oi := h.ownerIssuer()
	inv := NewInventory(h.owner.Cert)
	other := mustIssue(t, Request{Role: RoleIMA, Name: "Tenant \"two\"\t, tab", KeyType: P256, Scope: mustScope(t, "/opt/acme/two/**")}, &oi, at(t0.Add(Day)))
	for _, c := range []*x509.Certificate{h.ima.Cert, other.Cert} {
		if err := inv.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	inv.revoke(other.Cert.SerialNumber, t0.Add(2*Day), reasonCodes["keyCompromise"])
	inv.revoke(big.NewInt(0x1234), t0.Add(-Day), 6) // certificateHold, from an old CRL
	inv.CRLNumber = big.NewInt(7)
	return inv, h
}

func mustScope(t testing.TB, p ...string) *Scope {
	t.Helper()
	s, err := NewScope(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestInventoryFixture(t *testing.T) {
	if os.Getenv("IMAFORGE_UPDATE_INVENTORY") != "" {
		inv, h := sampleInventory(t)
		writePEM(t, filepath.Dir(inventoryFixtureCA), filepath.Base(inventoryFixtureCA), h.owner.Cert)
		if err := os.WriteFile(inventoryFixture, inv.Marshal(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(inventoryFixture)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := ParseInventory(data)
	if err != nil {
		t.Fatal(err)
	}
	if got := inv.Marshal(); !bytes.Equal(got, data) {
		t.Errorf("re-encoded differs:\n%s\nwant\n%s", got, data)
	}
	if len(inv.Entries) != 3 || inv.CRLNumber.Int64() != 7 {
		t.Fatalf("entries %d, crl-number %v", len(inv.Entries), inv.CRLNumber)
	}
	ca, err := ReadInventory(inventoryFixture, readCert(t, inventoryFixtureCA))
	if err != nil || len(ca.Entries) != 3 {
		t.Errorf("ReadInventory with its CA: %v", err)
	}
	h := newHierarchy(t, P256)
	if _, err := ReadInventory(inventoryFixture, h.owner.Cert); !errors.Is(err, ErrInventory) || !strings.Contains(err.Error(), inventoryFixture) {
		t.Errorf("ReadInventory with another CA: %v", err)
	}
}

func readCert(t testing.TB, p string) *x509.Certificate {
	t.Helper()
	c, err := signer.LoadCertificate(p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParseInventoryErrors(t *testing.T) {
	inv, _ := sampleInventory(t)
	good := string(inv.Marshal())
	lines := strings.SplitAfter(good, "\n")
	valid := lines[3] // a V line (sorted by serial: the imported 0x1234 is first)
	for _, l := range lines[3:] {
		if strings.HasPrefix(l, "V\t") {
			valid = l
		}
	}
	f := strings.Split(strings.TrimSuffix(valid, "\n"), "\t")
	set := func(i int, v string) string {
		g := append([]string(nil), f...)
		g[i] = v
		return strings.Replace(good, valid, strings.Join(g, "\t")+"\n", 1)
	}
	for _, tt := range []struct {
		name, data, want string
	}{
		{"magic", strings.Replace(good, "inventory 1", "inventory 2", 1), "line 1"},
		{"crlf", strings.ReplaceAll(good, "\n", "\r\n"), "carriage"},
		{"no final newline", strings.TrimSuffix(good, "\n"), "newline"},
		{"crl-number", strings.Replace(good, "crl-number\t7", "crl-number\t07", 1), "crl-number"},
		{"fields", strings.Replace(good, valid, "V\tx\n", 1), "fields"},
		{"status", set(0, "X"), "status"},
		{"serial upper", set(1, strings.ToUpper(f[1])+"A"), "serial"},
		{"serial mismatch", set(1, "ff"), "certificate's serial"},
		{"notAfter", set(2, "2031-01-01T00:00:00+00:00"), "notAfter"},
		{"notAfter mismatch", set(2, "2099-01-01T00:00:00Z"), "the certificate says"},
		{"valid with reason", set(4, "keyCompromise"), "valid (V)"},
		{"subject", set(5, `"CN=Someone else"`), "subject"},
		{"subject quoting", set(5, "CN=x"), "subject"},
		{"base64", set(6, f[6][:len(f[6])-4]), "certificate"},
		{"V without certificate", set(6, "-"), "only a revoked"},
		{"duplicate", strings.Replace(good, valid, valid+valid, 1), "sorted by serial"},
		{"empty line", good + "\n", "fields"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseInventory([]byte(tt.data))
			if !errors.Is(err, ErrInventory) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want ErrInventory with %q", err, tt.want)
			}
		})
	}
}

// TestInventoryConcurrentIssue: processes issuing from one CA at once,
// each through its own OpenInventory (its own flock), lose no entry and
// share no serial. Without the lock, each would read the same old
// inventory and the last rename would win.
func TestInventoryConcurrentIssue(t *testing.T) {
	h := newHierarchy(t, P256)
	path := filepath.Join(t.TempDir(), "owner-ca.index")
	if err := CreateInventory(path, h.owner.Cert, nil, false); err != nil {
		t.Fatal(err)
	}
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := OpenInventory(path, h.owner.Cert, false, nil)
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			time.Sleep(5 * time.Millisecond) // widen the window a lost update needs
			_, err = f.Issue(Request{Role: RoleIMA, Name: "Tenant " + string(rune('a'+i)), KeyType: P256}, h.ownerIssuer(), at(t0))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	inv, err := ReadInventory(path, h.owner.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Entries) != n {
		t.Errorf("%d entries after %d concurrent issues", len(inv.Entries), n)
	}
}

// fixedReader returns the same bytes forever: every random serial is the
// same number.
type fixedReader byte

func (r fixedReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

func TestInventorySerialNotReused(t *testing.T) {
	h := newHierarchy(t, P256)
	path := filepath.Join(t.TempDir(), "owner-ca.index")
	f, err := OpenInventory(path, h.owner.Cert, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	key, _ := GenerateKey(nil, P256)
	opts := Options{Now: func() time.Time { return t0 }, Rand: fixedReader(7)}
	first, err := f.Issue(Request{Role: RoleIMA, Name: "First", PublicKey: key.Public()}, h.ownerIssuer(), opts)
	if err != nil {
		t.Fatal(err)
	}
	// The same random source gives the same serial again: refused, not
	// reused.
	if _, err := f.Issue(Request{Role: RoleIMA, Name: "Second", PublicKey: key.Public()}, h.ownerIssuer(), opts); !errors.Is(err, ErrIssue) || !strings.Contains(err.Error(), "already in") {
		t.Errorf("second issue with the same random serial: %v", err)
	}
	if _, err := f.Issue(Request{Role: RoleIMA, Name: "Third", PublicKey: key.Public(), Serial: first.Cert.SerialNumber}, h.ownerIssuer(), at(t0)); !errors.Is(err, ErrIssue) {
		t.Errorf("explicit serial already used: %v", err)
	}
	inv, err := ReadInventory(path, h.owner.Cert)
	if err != nil || len(inv.Entries) != 1 {
		t.Errorf("inventory after refusals: %v %v", inv, err)
	}
}

// TestCRLNumberContinues: the next CRL's number is one more than the
// larger of the CRL at hand and the inventory's last one: a lost or
// restored CRL file never restarts the numbering.
func TestCRLNumberContinues(t *testing.T) {
	h := newHierarchy(t, P256)
	oi := h.ownerIssuer()
	crlWith := func(n int64) *x509.RevocationList {
		crl, _, err := UpdateCRL(nil, oi, CRLUpdate{After: big.NewInt(n - 1)}, at(t0))
		if err != nil || crl.Number.Int64() != n {
			t.Fatalf("CRL number %d: %v %v", n, crl.Number, err)
		}
		return crl
	}
	for _, tt := range []struct {
		name      string
		inventory int64 // the inventory's crl-number
		prev      int64 // the CRL file's number, 0: no file
		want      int64
	}{
		{"new CA", 0, 0, 1},
		{"CRL file lost", 5, 0, 6},
		{"older CRL file restored", 9, 3, 10},
		{"inventory behind", 2, 4, 5},
		{"in step", 4, 4, 5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "owner-ca.index")
			f, err := OpenInventory(path, h.owner.Cert, true, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			f.CRLNumber = big.NewInt(tt.inventory)
			var prev *x509.RevocationList
			if tt.prev > 0 {
				prev = crlWith(tt.prev)
			}
			crl, _, err := f.UpdateCRL(prev, oi, CRLUpdate{}, at(t0))
			if err != nil {
				t.Fatal(err)
			}
			if crl.Number.Int64() != tt.want {
				t.Errorf("CRL number %v, want %d", crl.Number, tt.want)
			}
			saved, err := ReadInventory(path, h.owner.Cert)
			if err != nil || saved.CRLNumber.Int64() != tt.want {
				t.Errorf("inventory records %v, want %d (%v)", saved, tt.want, err)
			}
		})
	}
}

// TestInventoryRevokeAndCRL: revoking records the certificate (also one the
// inventory did not know), and a CRL re-signed after the CRL file was lost
// still lists every revocation.
func TestInventoryRevokeAndCRL(t *testing.T) {
	h := newHierarchy(t, P256)
	oi := h.ownerIssuer()
	path := filepath.Join(t.TempDir(), "owner-ca.index")
	f, err := OpenInventory(path, h.owner.Cert, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// h.ima was issued before the inventory: revoking it records it.
	crl, added, err := f.UpdateCRL(nil, oi, CRLUpdate{Revoke: []*x509.Certificate{h.ima.Cert}, Reason: 1}, at(t0.Add(Day)))
	if err != nil || added != 1 || len(crl.RevokedCertificateEntries) != 1 {
		t.Fatalf("revoke: %d added, %v", added, err)
	}
	e := f.Lookup(h.ima.Cert.SerialNumber)
	if e == nil || e.Cert == nil || !e.IsRevoked() || e.Reason != 1 || !e.Revoked.Equal(t0.Add(Day)) {
		t.Fatalf("inventory entry %+v", e)
	}
	// The CRL file is lost: the next CRL still revokes it, number 2.
	crl, _, err = f.UpdateCRL(nil, oi, CRLUpdate{}, at(t0.Add(2*Day)))
	if err != nil || crl.Number.Int64() != 2 || len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(h.ima.Cert.SerialNumber) != 0 {
		t.Errorf("CRL after loss: %v %v", crl, err)
	}
	// A certificate of another CA is not recorded.
	ri := h.rootIssuer()
	if _, _, err := f.UpdateCRL(nil, ri, CRLUpdate{Revoke: []*x509.Certificate{h.ima.Cert}}, at(t0)); !errors.Is(err, ErrUnknownIssuer) {
		t.Errorf("revoking with the wrong CA: %v", err)
	}
}

func TestInventoryList(t *testing.T) {
	inv, h := sampleInventory(t)
	l := inv.List(t0.Add(400 * Day))
	if len(l.Certs) != 3 {
		t.Fatalf("%d listed", len(l.Certs))
	}
	first, second, imported := l.Certs[0], l.Certs[1], l.Certs[2]
	if first.Subject != h.ima.Cert.Subject.String() || first.Status != "expired" || !first.Expired || first.Role != "ima" || strings.Join(first.Scope, ",") != "/opt/acme/**" {
		t.Errorf("first: %+v", first)
	}
	if second.Status != "revoked" || second.Reason != "keyCompromise" || !second.RevokedAt.Equal(t0.Add(2*Day)) || !second.Expired {
		t.Errorf("second: %+v", second)
	}
	if imported.Subject != "" || imported.Serial != "1234" || imported.Status != "revoked" {
		t.Errorf("imported: %+v", imported)
	}
	if l := inv.List(t0.Add(Day)); l.Certs[0].Status != "valid" || l.Certs[0].Expired {
		t.Errorf("at t0+1d: %+v", l.Certs[0])
	}
}

func FuzzParseInventory(f *testing.F) {
	if data, err := os.ReadFile(inventoryFixture); err == nil {
		f.Add(data)
	}
	f.Add([]byte(InventoryMagic + "\nca\t01\t\"CN=x\"\ncrl-number\t0\nR\t5\t-\t2030-01-01T00:00:00Z\t7\t-\t-\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := ParseInventory(data)
		if err != nil {
			if !errors.Is(err, ErrInventory) {
				t.Fatalf("error without ErrInventory: %v", err)
			}
			return
		}
		// One canonical form: what parses re-encodes to the same bytes.
		if got := inv.Marshal(); !bytes.Equal(got, data) {
			t.Fatalf("re-encoded differs:\n%q\n%q", got, data)
		}
	})
}

// TestInventoryLockFailsClosed: a lock held too long, or one that cannot
// be taken, stops the change; nothing is read or written without it.
func TestInventoryLockFailsClosed(t *testing.T) {
	h := newHierarchy(t, P256)
	dir := t.TempDir()
	path := filepath.Join(dir, "owner-ca.index")
	held, err := OpenInventory(path, h.owner.Cert, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	old := LockTimeout
	LockTimeout = 100 * time.Millisecond
	defer func() { LockTimeout = old }()
	if _, err := OpenInventory(path, h.owner.Cert, true, nil); !errors.Is(err, ErrInventoryBusy) || !strings.Contains(err.Error(), "owner-ca.index.lock") {
		t.Errorf("second open while locked: %v", err)
	}
	if err := CreateInventory(path, h.owner.Cert, nil, true); !errors.Is(err, ErrInventoryBusy) {
		t.Errorf("create while locked: %v", err)
	}
	held.Close()
	if err := held.Save(); err == nil {
		t.Error("Save after Close succeeded")
	}
	// A lock file that is a symlink (O_NOFOLLOW) is not followed.
	other := filepath.Join(dir, "elsewhere")
	if err := os.Symlink(other, filepath.Join(dir, "x.index.lock")); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenInventory(filepath.Join(dir, "x.index"), h.owner.Cert, true, nil); err == nil {
		t.Error("lock through a symlink taken")
	}
	if _, err := os.Lstat(other); err == nil {
		t.Error("symlinked lock target created")
	}
}

// BenchmarkReadInventory reads and checks (every certificate's signature
// against the CA) an inventory of 1,000 certificates: what every pki issue,
// revoke and crl of such a CA pays once.
func BenchmarkReadInventory(b *testing.B) {
	h := newHierarchy(b, P256)
	oi := h.ownerIssuer()
	inv := NewInventory(h.owner.Cert)
	key, _ := GenerateKey(nil, P256)
	for i := range 1000 {
		c := mustIssue(b, Request{Role: RoleIMA, Name: "Tenant", PublicKey: key.Public(), Serial: big.NewInt(int64(i + 1))}, &oi, at(t0))
		if err := inv.Add(c.Cert); err != nil {
			b.Fatal(err)
		}
	}
	path := filepath.Join(b.TempDir(), "owner-ca.index")
	if err := os.WriteFile(path, inv.Marshal(), 0o644); err != nil {
		b.Fatal(err)
	}
	data := inv.Marshal()
	b.Run("read+check", func(b *testing.B) {
		for b.Loop() {
			if _, err := ReadInventory(path, h.owner.Cert); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parse", func(b *testing.B) {
		for b.Loop() {
			if _, err := ParseInventory(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
