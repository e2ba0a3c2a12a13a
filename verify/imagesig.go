package verify

import (
	"errors"
	"fmt"
	"io"

	"github.com/imaforge/imaforge/integrity"
	"github.com/imaforge/imaforge/pki"
)

// ImageSignatureInput is a whole-image signature to check
// (docs/integrity.md): a detached CMS signature over the image file
// (IMAGE.cms), or a dm-verity descriptor with its detached CMS signature
// (IMAGE.verity, IMAGE.verity.cms). The descriptor is checked when both are
// given.
type ImageSignatureInput struct {
	CMS     []byte
	CMSName string // the file it came from, for the report

	Descriptor, DescriptorSig []byte
	DescriptorName            string
}

// Image signature statuses (ImageSignatureResult.Status).
const (
	ImageSigOK     = "ok"     // a valid signature by a trusted key, over this image
	ImageSigNone   = "none"   // no signature given, and none required
	ImageSigFailed = "failed" // see Reason and Message
)

// Reasons an image signature fails, besides the certificate reasons
// (untrusted-chain, expired, not-yet-valid, revoked, out-of-scope).
const (
	// ReasonMissing: no whole-image signature while one is required
	// (Options.RequireImageSignature, or the image carries a dm-verity
	// tree the manifest asks to be signed).
	ReasonMissing Reason = "missing"
	// ReasonTampered: the image is not the one that was signed.
	ReasonTampered Reason = "tampered"
	// ReasonUnreadable: a block of the image could not be read or
	// decompressed (for a file: its content; for the image signature: the
	// image while it was hashed).
	ReasonUnreadable Reason = "unreadable"
)

// ImageSignatureResult is the verdict on the whole-image signature.
type ImageSignatureResult struct {
	Status string `json:"status"` // ok, none, failed
	// Kind is "verity" (a signed dm-verity descriptor) or "cms" (a
	// detached signature over the image file); File the file it came from.
	Kind   string `json:"kind,omitempty"`
	File   string `json:"file,omitempty"`
	Signer string `json:"signer,omitempty"`
	// Reason and Message say why it failed (or, for none, what is not
	// covered).
	Reason  Reason `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// Changes lists the changed byte ranges of a tampered image.
	Changes []string `json:"changes,omitempty"`
	// VerityTree: the image carries an appended dm-verity hash tree (found
	// from the image itself, whatever its name); VerityHashOffset is where
	// its superblock is.
	VerityTree       bool   `json:"verity_tree,omitempty"`
	VerityHashOffset uint64 `json:"verity_hash_offset,omitempty"`
}

// Failed reports whether the image signature check failed.
func (r *ImageSignatureResult) Failed() bool { return r != nil && r.Status == ImageSigFailed }

// checkImageSignature checks the whole-image signature opts give (or its
// absence) before any file is read.
func checkImageSignature(r io.ReaderAt, size int64, opts Options) *ImageSignatureResult {
	res := &ImageSignatureResult{}
	if p, ok := integrity.FindTree(r, size); ok {
		res.VerityTree, res.VerityHashOffset = true, p.HashOffset
	}
	in := opts.ImageSignature
	fail := func(reason Reason, msg string) *ImageSignatureResult {
		res.Status, res.Reason, res.Message = ImageSigFailed, reason, msg
		return res
	}
	if opts.RequireVerityTree && !res.VerityTree {
		// A tree stripped off (or never appended) is not what was built.
		return fail(ReasonMissing, "the manifest asks for a dm-verity hash tree (image.verity), the image carries none")
	}
	var ir *integrity.Result
	var err error
	switch {
	case in != nil && in.Descriptor != nil:
		res.Kind, res.File = "verity", in.DescriptorName
		ir, err = integrity.VerifyVerity(r, size, in.Descriptor, in.DescriptorSig, opts.Trust, opts.At)
	case in != nil && in.CMS != nil:
		res.Kind, res.File = "cms", in.CMSName
		ir, err = integrity.VerifyImage(r, size, in.CMS, opts.Trust, opts.At)
	case opts.RequireImageSignature:
		msg := "no whole-image signature was given, and one is required"
		if res.VerityTree {
			msg += fmt.Sprintf(" (the image carries a dm-verity hash tree at byte %d: give its signed descriptor, --verity-descriptor)", res.VerityHashOffset)
		}
		return fail(ReasonMissing, msg)
	default:
		res.Status = ImageSigNone
		res.Message = "modes, owners and unsigned files are not covered"
		if res.VerityTree {
			res.Message += fmt.Sprintf("; the image carries a dm-verity hash tree at byte %d, but no signed descriptor was given", res.VerityHashOffset)
		}
		return res
	}
	if ir != nil && ir.Signer != nil {
		res.Signer = ir.Signer.Subject.String()
	}
	if err != nil {
		var te *integrity.TamperedError
		switch {
		case errors.As(err, &te):
			for _, ch := range te.Changes {
				res.Changes = append(res.Changes, ch.String())
			}
			return fail(ReasonTampered, te.Reason)
		case errors.Is(err, integrity.ErrUntrusted):
			return fail(chainReason(err), err.Error())
		case errors.Is(err, pki.ErrOutOfScope):
			return fail(ReasonOutOfScope, err.Error())
		default:
			return fail(ReasonBadSignature, err.Error())
		}
	}
	res.Status = ImageSigOK
	return res
}

// Line describes the result in one line (more for a tampered image, one
// per changed range), as the text report prints it.
func (r *ImageSignatureResult) Line() string {
	what := r.Kind
	switch r.Kind {
	case "verity":
		what = "dm-verity root hash (" + r.File + ")"
	case "cms":
		what = "image (" + r.File + ")"
	}
	switch r.Status {
	case ImageSigOK:
		return fmt.Sprintf("image signature: ok: %s signed by %q", what, r.Signer)
	case ImageSigNone:
		return "image signature: none (" + r.Message + ")"
	}
	if r.Reason == ReasonTampered {
		s := fmt.Sprintf("image signature: TAMPERED: %s: %s", what, r.Message)
		for _, c := range r.Changes {
			s += "\n  changed " + c
		}
		return s
	}
	if what != "" {
		what += ": "
	}
	return fmt.Sprintf("image signature: FAILED: %s%s: %s", what, r.Reason, r.Message)
}
