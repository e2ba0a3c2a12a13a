package main

import (
	"crypto/x509"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/imaforge/imaforge/signer"
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

// loadSigner loads the signer of --key and --cert, asking for the key's
// passphrase as passphraseFlags say (default: on the terminal).
func loadSigner(c *cli.Context) (*signer.Signer, error) {
	pass, err := passphrase(c, "", "Passphrase for "+c.String("key")+": ")
	if err != nil {
		return nil, err
	}
	return signer.LoadSigner(c.String("key"), c.String("cert"), &signer.KeyOptions{
		Passphrase: pass,
		Warn:       warnFunc(c),
	})
}

// addCertFiles passes every certificate of each file in paths (PEM or DER,
// several per file) to add; an error from add names the file.
func addCertFiles(paths []string, add func(*x509.Certificate) error) error {
	for _, p := range paths {
		certs, err := signer.LoadCertificates(p)
		if err != nil {
			return err
		}
		for _, cert := range certs {
			if err := add(cert); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
	}
	return nil
}
