package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/rootfs"
)

// writeKeyListing prints, for every regular file of the tree in image
// order, the rule that decides its signature (file:line:col and pattern) and
// the key that signs it, or "unsigned"; a file no rule matches is an input
// error, as in a build.
func writeKeyListing(w io.Writer, m *manifest.Manifest, t *rootfs.Tree) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "PATH\tRULE\tKEY\n")
	for i := range t.Entries {
		e := &t.Entries[i]
		if e.Type != rootfs.TypeReg {
			continue
		}
		r, err := m.RuleFor(e.Path)
		if err != nil {
			return usageErr(err)
		}
		key := "unsigned"
		if r.Sign == nil || *r.Sign {
			key = r.Key
			if k, ok := m.Keys[r.Key]; ok && k.Cert != "" {
				key += " (" + k.Cert + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%s:%d:%d %s\t%s\n", e.Path, m.File, r.Pos.Line, r.Pos.Col, r.Match, key)
	}
	return tw.Flush()
}
