package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/imaforge/imaforge/integrity"
	"github.com/imaforge/imaforge/verify"
)

// integrityFlags are `imaforge verify`'s flags for the whole-image
// signatures (docs/integrity.md).
var integrityFlags = []cli.Flag{
	&cli.StringFlag{Name: "signature", Usage: "detached CMS signature `FILE` over the whole image (default: IMAGE.cms if it exists)"},
	&cli.StringFlag{Name: "verity-descriptor", Usage: "dm-verity descriptor `FILE`, signed by FILE.cms (default: IMAGE.verity if it exists)"},
	&cli.BoolFlag{Name: "require-image-signature", Usage: "fail an image without a whole-image signature"},
}

// checkImageIntegrity checks an image's whole-image signatures before any
// file is: the CMS signer against opts.Trust at opts.At, then the image
// (every dm-verity block against the signed root hash, or the image's
// SHA-256). Tampering that no security.ima can show (a setuid bit, an
// owner, an added file) fails here with exit status 1, naming the changed
// SquashFS structures. With no signature it notes that metadata is not
// covered, unless --require-image-signature makes that an error.
func checkImageIntegrity(c *cli.Context, image string, opts verify.Options) error {
	w := c.App.Writer
	if c.Bool("json") {
		w = c.App.ErrWriter // keep stdout JSON
	}
	sigPath, descPath := c.String("signature"), c.String("verity-descriptor")
	if descPath == "" && sigPath == "" && integrityFileExists(image+integrity.SuffixDescriptor) && integrityFileExists(image+integrity.SuffixDescriptorSig) {
		descPath = image + integrity.SuffixDescriptor
	}
	if sigPath == "" && descPath == "" && integrityFileExists(image+integrity.SuffixImageSig) {
		sigPath = image + integrity.SuffixImageSig
	}
	if sigPath == "" && descPath == "" {
		if c.Bool("require-image-signature") {
			return &exitError{code: 1, err: fmt.Errorf("verify %s: no whole-image signature (%s or %s)", image, image+integrity.SuffixImageSig, image+integrity.SuffixDescriptorSig)}
		}
		fmt.Fprintf(w, "image signature: none (modes, owners and unsigned files are not covered)\n")
		return nil
	}
	f, err := os.Open(image)
	if err != nil {
		return usageErr(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	var res *integrity.Result
	what := ""
	if descPath != "" {
		desc, err := os.ReadFile(descPath)
		if err != nil {
			return usageErr(err)
		}
		sig, err := os.ReadFile(descPath + ".cms")
		if err != nil {
			return usageErr(err)
		}
		what = "dm-verity root hash (" + descPath + ")"
		res, err = integrity.VerifyVerity(f, st.Size(), desc, sig, opts.Trust, opts.At)
		if err != nil {
			return integrityError(image, what, err)
		}
	} else {
		sig, err := os.ReadFile(sigPath)
		if err != nil {
			return usageErr(err)
		}
		what = "image (" + sigPath + ")"
		res, err = integrity.VerifyImage(f, st.Size(), sig, opts.Trust, opts.At)
		if err != nil {
			return integrityError(image, what, err)
		}
	}
	fmt.Fprintf(w, "image signature: ok: %s signed by %q\n", what, res.Signer.Subject.String())
	return nil
}

func integrityError(image, what string, err error) error {
	var te *integrity.TamperedError
	if errors.As(err, &te) {
		var b strings.Builder
		fmt.Fprintf(&b, "verify %s: TAMPERED: %s: %s", image, what, te.Reason)
		for _, ch := range te.Changes {
			b.WriteString("\n  changed " + ch.String())
		}
		return &exitError{code: 1, err: errors.New(b.String())}
	}
	return &exitError{code: 1, err: fmt.Errorf("verify %s: %s: %w", image, what, err)}
}

func integrityFileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
