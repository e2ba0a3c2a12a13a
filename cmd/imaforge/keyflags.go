package main

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"runtime"

	"github.com/urfave/cli/v2"

	"github.com/imaforge/imaforge/signer"
	"github.com/imaforge/imaforge/signer/keyref"
)

// passphraseFlags are --passphrase-env and --passphrase-file for a
// command that reads an existing private key (see passphrase).
func passphraseFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "passphrase-env", Usage: "read the key's passphrase from environment variable `VAR`"},
		&cli.StringFlag{Name: "passphrase-file", Usage: "read the key's passphrase from the first line of `FILE`"},
	}
}

// passphrase returns the passphrase source named by the flags prefix+"passphrase-env"
// and prefix+"passphrase-file", or prompt when neither is given (nil prompt:
// none).
func passphrase(c *cli.Context, prefix string, prompt string) (signer.Passphrase, error) {
	env, file := c.String(prefix+"passphrase-env"), c.String(prefix+"passphrase-file")
	switch {
	case env != "" && file != "":
		return nil, usageErrf("give either --%spassphrase-env or --%spassphrase-file, not both", prefix, prefix)
	case env != "":
		return signer.PassphraseFromEnv(env), nil
	case file != "":
		return signer.PassphraseFromFile(file), nil
	case prompt != "":
		return signer.PassphraseFromTerminal(prompt), nil
	}
	return nil, nil
}

// warnFunc prints a key loader's warnings to the app's error writer.
func warnFunc(c *cli.Context) func(msg string) {
	return func(msg string) { fmt.Fprintf(c.App.ErrWriter, "imaforge: warning: %s\n", msg) }
}

// keyRefUsage describes a key reference flag: every command that signs
// takes the same references (keyref.Parse).
const keyRefUsage = "a key file (PEM or DER; PKCS#1, PKCS#8, SEC1, encrypted), relic:NAME (with --relic-config) or a pkcs11: URI"

// relicConfigFlag is --relic-config, the relic configuration relic:NAME
// key references are read from.
func relicConfigFlag() cli.Flag {
	return &cli.StringFlag{Name: "relic-config", Usage: "relic configuration `FILE` naming the tokens and keys of relic:NAME references"}
}

// parseKeyRef parses the key reference of flag name; a bad one is a usage
// error.
func parseKeyRef(c *cli.Context, name string) (keyref.Ref, error) {
	ref, err := keyref.Parse(c.String(name))
	if err != nil {
		return ref, usageErr(fmt.Errorf("--%s: %w", name, err))
	}
	return ref, nil
}

// keyPrompt is the terminal prompt for a key's passphrase or token PIN.
func keyPrompt(ref keyref.Ref) string {
	if ref.IsToken() {
		return "PIN for " + ref.String() + ": "
	}
	return "Passphrase for " + ref.String() + ": "
}

// openKey opens the key of flag name (prefix+"passphrase-env"/"-file" or
// the terminal give its passphrase or PIN, --relic-config its relic
// configuration). Close the returned key if it is an io.Closer (a token).
func openKey(c *cli.Context, name, prefix string) (crypto.Signer, error) {
	ref, err := parseKeyRef(c, name)
	if err != nil {
		return nil, err
	}
	pass, err := passphrase(c, prefix, keyPrompt(ref))
	if err != nil {
		return nil, err
	}
	key, _, err := signer.Open(c.Context, ref, &signer.OpenOptions{
		PIN: pass, RelicConfig: c.String("relic-config"), Warn: warnFunc(c),
	})
	return key, err
}

// loadSigner opens the signer of --key (a key reference) and --cert,
// asking for the key's passphrase or PIN as passphraseFlags say (default:
// on the terminal). Without --cert the certificate is the one the token or
// relic configuration holds, else there is none and the key id comes from
// the public key, as evmctl's without --keyid. Close it when done (a token
// key's sessions end).
func loadSigner(c *cli.Context) (*signer.Signer, error) {
	ref, err := parseKeyRef(c, "key")
	if err != nil {
		return nil, err
	}
	pass, err := passphrase(c, "", keyPrompt(ref))
	if err != nil {
		return nil, err
	}
	return signer.OpenSigner(c.Context, ref, c.String("cert"), &signer.OpenOptions{
		PIN: pass, RelicConfig: c.String("relic-config"), Sessions: runtime.GOMAXPROCS(0), Warn: warnFunc(c),
		KeyOnly: true,
	})
}

// addCertFiles passes every certificate of each file in paths (PEM or DER,
// several per file) to add; an error from add names the file.
func addCertFiles(paths []string, add func(*x509.Certificate) error) error {
	for _, p := range paths {
		certs, err := signer.LoadCertificates(p)
		if err != nil {
			return inputErr(err)
		}
		for _, cert := range certs {
			if err := add(cert); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
	}
	return nil
}
