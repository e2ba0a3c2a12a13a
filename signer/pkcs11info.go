//go:build cgo

package signer

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

// imaforge_dlopen_error loads path as the PKCS#11 loader would and returns
// dlerror()'s reason when it fails, NULL when it loads.
static const char *imaforge_dlopen_error(const char *path) {
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL)
		return dlerror();
	dlclose(h);
	return NULL;
}
*/
import "C"

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"github.com/miekg/pkcs11"
)

// moduleLoadError returns why the module at path does not load, or nil.
func moduleLoadError(path string) error {
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	if r := C.imaforge_dlopen_error(cp); r != nil {
		return &ModuleLoadError{Path: path, Reason: C.GoString(r)}
	}
	return nil
}

// PKCS11Tokens lists the tokens present in the slots of the PKCS#11 module
// at path, each with its public key and certificate objects. It needs no
// PIN. A module that does not load is a *ModuleLoadError. If this process
// has not initialized the module yet, it is finalized again afterwards.
func PKCS11Tokens(module string) ([]TokenInfo, error) {
	if err := moduleLoadError(module); err != nil {
		return nil, err
	}
	ctx := pkcs11.New(module)
	if ctx == nil {
		return nil, &ModuleLoadError{Path: module, Reason: "no C_GetFunctionList"}
	}
	defer ctx.Destroy()
	if err := ctx.Initialize(); err != nil {
		var perr pkcs11.Error
		if !errors.As(err, &perr) || perr != pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED {
			return nil, fmt.Errorf("%w: PKCS#11 module %s: C_Initialize: %w", ErrToken, module, err)
		}
	} else {
		defer ctx.Finalize()
	}
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return nil, fmt.Errorf("%w: PKCS#11 module %s: C_GetSlotList: %w", ErrToken, module, err)
	}
	var out []TokenInfo
	for _, slot := range slots {
		ti, err := ctx.GetTokenInfo(slot)
		if err != nil {
			continue // not present (any more)
		}
		if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			continue // a free slot, as SoftHSM2 always offers one
		}
		info := TokenInfo{
			Module: module, Slot: slot, Label: strings.TrimRight(ti.Label, " \x00"), Serial: strings.TrimRight(ti.SerialNumber, " \x00"),
			Manufacturer: strings.TrimRight(ti.ManufacturerID, " \x00"), Model: strings.TrimRight(ti.Model, " \x00"),
		}
		info.Objects, _ = publicObjects(ctx, slot)
		out = append(out, info)
	}
	return out, nil
}

func publicObjects(ctx *pkcs11.Ctx, slot uint) ([]TokenObject, error) {
	sh, err := ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		return nil, err
	}
	defer ctx.CloseSession(sh)
	var out []TokenObject
	for _, c := range []struct {
		class uint
		name  string
	}{{pkcs11.CKO_PUBLIC_KEY, "public-key"}, {pkcs11.CKO_CERTIFICATE, "certificate"}} {
		if err := ctx.FindObjectsInit(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, c.class)}); err != nil {
			return out, err
		}
		hs, _, err := ctx.FindObjects(sh, 1000)
		ctx.FindObjectsFinal(sh)
		if err != nil {
			return out, err
		}
		for _, h := range hs {
			attrs, err := ctx.GetAttributeValue(sh, h, []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil), pkcs11.NewAttribute(pkcs11.CKA_ID, nil),
			})
			if err != nil || len(attrs) != 2 {
				continue
			}
			out = append(out, TokenObject{Class: c.name, Label: string(attrs[0].Value), ID: hex.EncodeToString(attrs[1].Value)})
		}
	}
	return out, nil
}

// reportedToken finds the token a configuration's label and serial select
// (as relic does) and returns what it reports, or nil.
func reportedToken(module, label, serial string) *TokenInfo {
	ts, err := PKCS11Tokens(module)
	if err != nil {
		return nil
	}
	var found *TokenInfo
	for i, t := range ts {
		if (label == "" || t.Label == label) && (serial == "" || t.Serial == serial) {
			if found != nil {
				return nil
			}
			found = &ts[i]
		}
	}
	if found != nil {
		found.Objects = nil // the token's identity only
	}
	return found
}

// knownModules are PKCS#11 module paths of common Debian packages.
var knownModules = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
	"/usr/lib/x86_64-linux-gnu/libykcs11.so",
	"/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so",
}

// InstalledPKCS11Modules returns the PKCS#11 modules of common packages
// (SoftHSM2, OpenSC, YubiKey) present on this machine.
func InstalledPKCS11Modules() []string {
	var out []string
	for _, m := range knownModules {
		if _, err := os.Stat(m); err == nil {
			out = append(out, m)
		}
	}
	return out
}
