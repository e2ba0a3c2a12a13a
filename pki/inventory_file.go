package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imaforge/imaforge/internal/atomicfile"
	"github.com/imaforge/imaforge/internal/boundedfile"
)

// InventoryPath is where a CA's inventory lives by default: beside its
// certificate, with the extension .index (mfr/root.pem -> mfr/root.index),
// as its CRL is beside it with .crl.
func InventoryPath(caCertPath string) string {
	return strings.TrimSuffix(caCertPath, filepath.Ext(caCertPath)) + ".index"
}

// ErrNoInventory reports a CA without an inventory file.
var ErrNoInventory = errors.New("no inventory")

// ErrInventoryBusy reports an inventory whose lock another process held for
// longer than LockTimeout.
var ErrInventoryBusy = errors.New("inventory locked by another process")

// LockTimeout is how long OpenInventory waits for another process to
// release an inventory's lock.
var LockTimeout = 60 * time.Second

// InventoryFile is a CA's inventory opened for a change: an exclusive
// flock(2) on PATH.lock is held from OpenInventory to Close, so two
// processes issuing from one CA never lose an entry or reuse a serial; the
// file itself is replaced by Save (temporary file, fsync, rename), so a
// reader without the lock sees the old or the new inventory, never a mix.
type InventoryFile struct {
	Path string
	*Inventory
	CA *x509.Certificate
	// Created is set when the file did not exist and OpenInventory
	// started a new inventory (from the CRL given, if any).
	Created bool
	lock    *os.File
}

// OpenInventory locks and reads the inventory of ca at path. When the file
// does not exist and create is set, a new inventory is started, importing
// crl (the CA's current CRL, may be nil): its number and its revoked
// serials (certificates issued before are not known; `pki revoke` adds one
// when it revokes it). Without create, a missing file is ErrNoInventory.
// Close releases the lock.
func OpenInventory(path string, ca *x509.Certificate, create bool, crl *x509.RevocationList) (*InventoryFile, error) {
	lock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, err
	}
	f := &InventoryFile{Path: path, CA: ca, lock: lock}
	inv, err := ReadInventory(path, ca)
	switch {
	case err == nil:
		f.Inventory = inv
	case errors.Is(err, ErrNoInventory) && create:
		f.Inventory, f.Created = NewInventory(ca), true
		if crl != nil {
			f.ImportCRL(crl)
		}
	default:
		f.Close()
		return nil, err
	}
	return f, nil
}

// ReadInventory reads the inventory of ca at path without taking its lock
// (Save replaces the file in one rename) and checks that it is ca's.
func ReadInventory(path string, ca *x509.Certificate) (*Inventory, error) {
	data, err := boundedfile.ReadFile(path, boundedfile.CRLLimit)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoInventory)
	}
	if err != nil {
		return nil, err
	}
	inv, err := ParseInventory(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := inv.CheckCA(ca); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return inv, nil
}

// lockFile takes an exclusive flock on path (created 0644 if missing),
// waiting up to LockTimeout. The lock file stays: removing it would let a
// waiter lock a file no longer at the path.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	deadline := time.Now().Add(LockTimeout)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			holder, _ := os.ReadFile(path)
			f.Close()
			who := "another process"
			if pid := strings.TrimSpace(string(holder)); pid != "" {
				who = "process " + pid
			}
			return nil, fmt.Errorf("%s: %w: %s has held it for %v", path, ErrInventoryBusy, who, LockTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// Save writes the inventory (temporary file, fsync, rename).
func (f *InventoryFile) Save() error {
	if f.lock == nil {
		return fmt.Errorf("%s: %w: not locked (closed)", f.Path, ErrInventory)
	}
	return atomicfile.WriteFile(f.Path, f.Marshal(), 0o644)
}

// Close releases the lock without saving.
func (f *InventoryFile) Close() {
	if f.lock != nil {
		f.lock.Truncate(0)
		f.lock.Close()
		f.lock = nil
	}
}

// maxSerialTries bounds the search for a serial number not yet in the
// inventory (128 random bits: a second try is already astronomically rare).
const maxSerialTries = 8

// Issue issues req with f's CA (issuer.Cert must be f.CA or a certificate
// of the same key) under a serial number the inventory has not seen, records
// the certificate and saves the inventory before returning it, so that no
// certificate leaves the CA unrecorded.
func (f *InventoryFile) Issue(req Request, issuer Issuer, opts Options) (*Issued, error) {
	if req.Serial == nil {
		for i := 0; ; i++ {
			s, err := randomSerial(opts.rand())
			if err != nil {
				return nil, err
			}
			if f.Lookup(s) == nil {
				req.Serial = s
				break
			}
			if i == maxSerialTries {
				return nil, fmt.Errorf("%w: %d random serial numbers in a row are already in %s (broken random source?)", ErrIssue, maxSerialTries+1, f.Path)
			}
		}
	} else if f.Lookup(req.Serial) != nil {
		return nil, fmt.Errorf("%w: serial %s is already in %s", ErrIssue, req.Serial.Text(16), f.Path)
	}
	iss, err := Issue(req, issuer, opts)
	if err != nil {
		return nil, err
	}
	if err := f.Add(iss.Cert); err != nil {
		return nil, err
	}
	if err := f.Save(); err != nil {
		return nil, err
	}
	return iss, nil
}

// UpdateCRL records u.Revoke as revoked in the inventory (adding
// certificates it did not know, after checking the CA issued them), signs
// the CA's next CRL and saves the inventory. The CRL lists every revoked
// entry of the inventory and of prev (the CA's current CRL file, may be
// nil), and its number is one more than the largest of prev's and the
// inventory's, so numbering never goes back even when the CRL file was
// lost or replaced by an older one. Write the CRL after this returns.
func (f *InventoryFile) UpdateCRL(prev *x509.RevocationList, issuer Issuer, u CRLUpdate, opts Options) (*x509.RevocationList, int, error) {
	now := opts.now().UTC().Truncate(time.Second)
	for _, c := range u.Revoke {
		if err := c.CheckSignatureFrom(issuer.Cert); err != nil || string(c.RawIssuer) != string(issuer.Cert.RawSubject) {
			return nil, 0, &CertError{Cert: c, Reason: fmt.Sprintf("not issued by %s, so its CRL cannot revoke it", subjectOf(issuer.Cert)), Err: ErrUnknownIssuer}
		}
		if err := f.Add(c); err != nil {
			return nil, 0, err
		}
		f.revoke(c.SerialNumber, now, u.Reason)
	}
	if prev != nil {
		if err := prev.CheckSignatureFrom(issuer.Cert); err != nil {
			return nil, 0, fmt.Errorf("%w: the existing CRL is not signed by %s: %w", ErrCRL, subjectOf(issuer.Cert), err)
		}
		f.ImportCRL(prev)
	}
	u.Known = f.RevocationEntries()
	u.After = f.CRLNumber
	crl, added, err := UpdateCRL(prev, issuer, u, opts)
	if err != nil {
		return nil, 0, err
	}
	f.CRLNumber = new(big.Int).Set(crl.Number)
	if err := f.Save(); err != nil {
		return nil, 0, err
	}
	return crl, added, nil
}

// CreateInventory writes a new inventory of ca at path, importing crl (the
// CA's first CRL, may be nil). An existing file is replaced only when
// overwrite is set (a new CA written with --force over an old one).
func CreateInventory(path string, ca *x509.Certificate, crl *x509.RevocationList, overwrite bool) error {
	lock, err := lockFile(path + ".lock")
	if err != nil {
		return err
	}
	f := &InventoryFile{Path: path, CA: ca, lock: lock, Inventory: NewInventory(ca), Created: true}
	defer f.Close()
	if _, err := os.Lstat(path); err == nil && !overwrite {
		return fmt.Errorf("%s: %w", path, ErrExists)
	}
	if crl != nil {
		f.ImportCRL(crl)
	}
	return f.Save()
}
