package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/imaforge/imaforge/internal/atomicfile"
	"github.com/imaforge/imaforge/pki"
)

func init() {
	register(&cli.Command{
		Name:      "init",
		Usage:     "start a project in DIR: a commented manifest, development keys and the next commands",
		ArgsUsage: "[DIR]",
		Description: "Creates in DIR (default: the current directory), keeping whatever is already there:\n" +
			"   rootfs/              the tree to put into the image (empty: copy your files in)\n" +
			"   dev-keys/            a DEVELOPMENT root CA and IMA signing key, unencrypted: for trying\n" +
			"                        things out only, never for products (see docs/pki.md)\n" +
			"   firmware.yaml        a commented manifest signing every file of rootfs/ with dev-keys/ima\n" +
			"and prints the three commands that follow. A second run changes nothing and says so.",
		Action: runInit,
	})
}

// initManifest is the starter manifest; docs/manifest.md has every field.
const initManifest = `# imaforge manifest: what goes into the image and which key signs what.
# Every field: docs/manifest.md; JSON Schema: imaforge manifest schema.
version: 1

image:
  output: out/firmware.sqsh    # the image; out/firmware.sqsh.record.json is written beside it
  compression: zstd            # gzip | zstd | xz | lz4 | none
  block_size: 128K
  epoch: 0                     # every timestamp; SOURCE_DATE_EPOCH overrides it
  owner: {uid: 0, gid: 0}      # files owned by root whoever runs the build; drop to keep owners

hash: sha256                   # digest of the IMA signatures: sha256 | sha384 | sha512

# Checked before anything is signed: the chain of every key, its dates and revocation.
trust:
  roots: [dev-keys/root.pem]
  crls: [dev-keys/root.crl]

# DEVELOPMENT keys made by imaforge init: unencrypted, for trying things out only.
# For products: an owner CA, encrypted or HSM keys, scopes (docs/pki.md, docs/ceremony.md).
keys:
  dev: {cert: dev-keys/ima.pem, key: dev-keys/ima.key}

sources:
  - from: rootfs/              # a directory or a tarball; several merge
    to: /

rules:                         # first match wins; every regular file must match one
  # - match: /var/**           # leave files unsigned
  #   sign: false
  - match: /**
    key: dev

# A signed IMA policy inside the image (docs/policy.md):
# policy:
#   - name: exec
#     path: /etc/ima/policy.d/50-exec.policy
#     key: dev
#     presets: [squashfs-exec]
`

// initKeysReadme marks the development keys as such.
const initKeysReadme = `DEVELOPMENT KEYS - made by "imaforge init" for trying imaforge out.

The private keys here are unencrypted files. Do not sign products with them and do not load
root.pem into a device you ship. For products see docs/pki.md (encrypted keys, owner CAs, scopes)
and docs/ceremony.md (keys in an HSM, signed offline).
`

func runInit(c *cli.Context) error {
	dir := c.Args().First()
	if dir == "" {
		dir = "."
	}
	w := c.App.Writer
	var made []string
	if err := os.MkdirAll(filepath.Join(dir, "rootfs"), 0o755); err != nil {
		return err
	}
	keys := filepath.Join(dir, "dev-keys")
	newKeys, err := initDevKeys(keys)
	if err != nil {
		return err
	}
	if newKeys {
		made = append(made, "dev-keys/ (DEVELOPMENT root CA and IMA key)")
	}
	for _, f := range []struct{ path, text, desc string }{
		{filepath.Join(keys, "README"), initKeysReadme, ""},
		{filepath.Join(dir, "firmware.yaml"), initManifest, "firmware.yaml"},
	} {
		if _, err := os.Lstat(f.path); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := atomicfile.WriteFile(f.path, []byte(f.text), 0o644); err != nil {
			return err
		}
		if f.desc != "" {
			made = append(made, f.desc)
		}
	}
	if len(made) == 0 {
		fmt.Fprintf(w, "%s: already initialized, nothing changed\n", dir)
	} else {
		fmt.Fprintf(w, "%s: created %s\n", dir, strings.Join(made, ", "))
	}
	cd := ""
	if dir != "." {
		cd = "cd " + dir + " && "
	}
	fmt.Fprintf(w, "next: put your files into %s, then\n", filepath.Join(dir, "rootfs"))
	fmt.Fprintf(w, "  %simaforge manifest check --walk firmware.yaml\n", cd)
	fmt.Fprintf(w, "  %simaforge build firmware.yaml\n", cd)
	fmt.Fprintf(w, "  %simaforge verify out/firmware.sqsh --root dev-keys/root.pem --crl dev-keys/root.crl --cert dev-keys/ima.pem\n", cd)
	return nil
}

// initDevKeys makes a development root CA (with its empty CRL) and an IMA
// signing certificate under it in dir, unless they are there; half a set is
// an error rather than something to overwrite.
func initDevKeys(dir string) (made bool, err error) {
	names := []string{"root.key", "root.pem", "root.crl", "ima.key", "ima.pem"}
	have := 0
	for _, n := range names {
		if _, err := os.Lstat(filepath.Join(dir, n)); err == nil {
			have++
		}
	}
	switch have {
	case len(names):
		return false, nil
	case 0:
	default:
		return false, usageErrf("%s: some development keys are missing (want %s); remove the directory to make new ones", dir, strings.Join(names, ", "))
	}
	root, err := pki.NewRoot(pki.Request{Name: "imaforge DEVELOPMENT root (do not ship)"}, pki.Options{})
	if err != nil {
		return false, err
	}
	if _, err := pki.WriteIssued(dir, "root", root, pki.KeyFileOptions{}, false); err != nil {
		return false, err
	}
	ca := pki.Issuer{Cert: root.Cert, Key: root.Key}
	index := filepath.Join(dir, "root.index")
	if err := writeNewCA(filepath.Join(dir, "root.crl"), index, ca, false); err != nil {
		return false, err
	}
	inv, err := pki.OpenInventory(index, root.Cert, false, nil)
	if err != nil {
		return false, err
	}
	defer inv.Close()
	ima, err := inv.Issue(pki.Request{Role: pki.RoleIMA, Name: "imaforge DEVELOPMENT signing key (do not ship)"}, ca, pki.Options{})
	if err != nil {
		return false, err
	}
	if _, err := pki.WriteIssued(dir, "ima", ima, pki.KeyFileOptions{}, false); err != nil {
		return false, err
	}
	return true, nil
}
