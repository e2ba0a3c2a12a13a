package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/imaforge/imaforge/integrity"
	"github.com/imaforge/imaforge/internal/publish"
	"github.com/imaforge/imaforge/verify"
)

// integrityFlags are `imaforge verify`'s flags for the whole-image
// signatures (docs/integrity.md).
var integrityFlags = []cli.Flag{
	&cli.StringFlag{Name: "signature", Usage: "detached CMS signature `FILE` over the whole image (default: IMAGE.cms if it exists)"},
	&cli.StringFlag{Name: "verity-descriptor", Usage: "dm-verity descriptor `FILE` (default: IMAGE.verity if it exists)"},
	&cli.StringFlag{Name: "verity-signature", Usage: "CMS signature `FILE` over the verity descriptor (default: DESCRIPTOR.cms)"},
	&cli.BoolFlag{Name: "require-image-signature", Usage: "fail an image without a whole-image signature (implied by --trust-manifest with image.signature_key)"},
}

// imageSignatureInput reads the whole-image signature files the flags name
// or, without flags, the ones beside the image (IMAGE.verity with
// IMAGE.verity.cms, else IMAGE.cms). A file named by a flag that cannot be
// read is an input error (exit 2); nil means none was found.
func imageSignatureInput(c *cli.Context, image string) (*verify.ImageSignatureInput, error) {
	sigPath, descPath, descSig := c.String("signature"), c.String("verity-descriptor"), c.String("verity-signature")
	if descSig != "" && descPath == "" {
		return nil, usageErrf("verify: --verity-signature needs --verity-descriptor")
	}
	if sigPath == "" && descPath == "" {
		// The sidecars beside the image belong to its build only when
		// no publish of it was interrupted.
		if err := publish.Interrupted(image); err != nil {
			return nil, &exitError{code: 1, err: fmt.Errorf("verify: %w", err)}
		}
	}
	if descPath == "" && sigPath == "" && integrityFileExists(image+integrity.SuffixDescriptor) && integrityFileExists(image+integrity.SuffixDescriptorSig) {
		descPath = image + integrity.SuffixDescriptor
	}
	if sigPath == "" && descPath == "" && integrityFileExists(image+integrity.SuffixImageSig) {
		sigPath = image + integrity.SuffixImageSig
	}
	if sigPath == "" && descPath == "" {
		return nil, nil
	}
	in := &verify.ImageSignatureInput{}
	var err error
	if descPath != "" {
		if descSig == "" {
			descSig = descPath + ".cms"
		}
		if in.Descriptor, err = os.ReadFile(descPath); err != nil {
			return nil, usageErr(fmt.Errorf("--verity-descriptor: %w", err))
		}
		if in.DescriptorSig, err = os.ReadFile(descSig); err != nil {
			return nil, usageErr(fmt.Errorf("--verity-signature: %w", err))
		}
		in.DescriptorName = descPath
		return in, nil
	}
	if in.CMS, err = os.ReadFile(sigPath); err != nil {
		return nil, usageErr(fmt.Errorf("--signature: %w", err))
	}
	in.CMSName = sigPath
	return in, nil
}

func integrityFileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
