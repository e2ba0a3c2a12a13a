package verify

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText writes the report for people: one line per problem of each
// failed file, the policy files, a table of signers and a summary. With
// verbose, every file is listed with its status.
func (r *Report) WriteText(w io.Writer, verbose bool) error {
	b := &strings.Builder{}
	name := r.Image.Path
	if name == "" {
		name = "image"
	}
	at := "dates not checked"
	if r.CheckedAt != nil {
		at = "certificates checked at " + r.CheckedAt.Format(time.RFC3339)
	}
	fmt.Fprintf(b, "verify %s: %d bytes, %s, %d inodes; %s; kernel %s\n", name, r.Image.Size, r.Image.Compression, r.Image.Inodes, at, r.Kernel)
	if r.ImageSignature != nil {
		b.WriteString(r.ImageSignature.Line() + "\n")
	}
	if rr := r.Record; rr != nil {
		fmt.Fprintf(b, "record %s: %d entries, image %d: %d differences\n", rr.Name, rr.Entries, rr.Image, len(rr.Problems))
		for _, p := range rr.Problems {
			fmt.Fprintf(b, "FAIL     %s: record-%s: %s\n", p.Path, p.Reason, p.Message)
		}
	}
	for _, s := range r.Setuid {
		if !s.Recorded && r.Record == nil {
			fmt.Fprintf(b, "warning: %s: %s %d:%d is setuid/setgid and no build record was given (--record) to check it against\n", s.Path, s.Mode, s.UID, s.GID)
		}
	}
	for _, f := range r.Files {
		if !f.Failed() {
			if verbose {
				fmt.Fprintf(b, "%-8s %s%s\n", f.Status, f.Path, signerNote(f))
			}
			continue
		}
		for _, p := range f.Problems {
			fmt.Fprintf(b, "FAIL     %s: %s: %s\n", f.Path, p.Reason, p.Message)
		}
	}
	if len(r.Policies) > 0 {
		b.WriteString("\npolicies:\n")
		for _, p := range r.Policies {
			state := "in force"
			if !p.Loaded {
				state = "NOT LOADED"
			}
			fmt.Fprintf(b, "  %s (%s): %d rules, %s\n", p.Path, p.Source, p.Rules, state)
			for _, d := range p.Diagnostics {
				fmt.Fprintf(b, "    %s: %s: %s\n", d.Pos, d.Severity, d.Message)
			}
		}
	}
	if len(r.Signers) > 0 {
		b.WriteString("\nsigners:\n")
		tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  KEY ID\tFILES\tFAILED\tTRUST\tSUBJECT\n")
		for _, s := range r.Signers {
			trust := "trusted"
			if !s.Trusted {
				trust = "UNTRUSTED"
			}
			subj := s.Subject
			if subj == "" {
				subj = "(no certificate)"
			}
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\t%s\n", s.KeyID, s.Files, s.Failed, trust, subj)
		}
		tw.Flush()
		for _, s := range r.Signers {
			for _, w := range s.Warnings {
				fmt.Fprintf(b, "  warning: key %s: %s\n", s.KeyID, w)
			}
		}
	}
	s := r.Summary
	fmt.Fprintf(b, "\nsummary: %d files (%d bytes): %d signed, %d digest only, %d unsigned, %d failed\n",
		s.Files, s.Bytes, s.Signed, s.Digest, s.Unsigned, s.Failed)
	if s.Rules > 0 {
		fmt.Fprintf(b, "policy: %d rules in force; %d files appraised, %d would be refused\n", s.Rules, s.Appraised, s.Refused)
	} else {
		b.WriteString("policy: no rules given or found: coverage not checked\n")
	}
	if len(r.Reasons) > 0 {
		var rs []string
		for k, n := range r.Reasons {
			rs = append(rs, fmt.Sprintf("%s %d", k, n))
		}
		sort.Strings(rs)
		fmt.Fprintf(b, "failures by reason: %s\n", strings.Join(rs, ", "))
	}
	if r.OK {
		b.WriteString("result: OK\n")
	} else {
		fmt.Fprintf(b, "result: FAILED (%d files, %d policy files", s.Failed, s.PolicyBad)
		if r.Record != nil {
			fmt.Fprintf(b, ", %d differences from the record", len(r.Record.Problems))
		}
		b.WriteString(")\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func signerNote(f *FileResult) string {
	if f.KeyID == "" {
		return ""
	}
	return fmt.Sprintf(" (key %s, %s)", f.KeyID, f.Signer)
}
