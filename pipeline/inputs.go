package pipeline

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/imaforge/imaforge/internal/publish"
	"github.com/imaforge/imaforge/manifest"
)

// ErrOutputIsInput is wrapped by the error of a build whose outputs would
// overwrite one of its inputs.
var ErrOutputIsInput = errors.New("an output would overwrite an input")

// ErrKeyInSource is wrapped by the error of a build whose sources would pack
// a private key file the manifest names.
var ErrKeyInSource = errors.New("a source contains a private key of the manifest")

// input is a host file the build reads, and the manifest field naming it.
type input struct {
	path string
	pos  manifest.Pos
	what string
}

// inputs lists the host files and directories the manifest names.
func inputs(m *manifest.Manifest) []input {
	in := []input{{m.File, m.Pos, "the manifest"}}
	for _, name := range m.KeyNames() {
		k := m.Keys[name]
		for _, f := range []struct{ p, what string }{{k.Cert, "cert"}, {k.Key, "key"}, {k.PassphraseFile, "passphrase_file"}, {k.RelicConfig, "relic_config"}} {
			if f.p != "" && (f.what != "key" || k.Backend() == "file") {
				in = append(in, input{f.p, k.FieldPos(f.what), fmt.Sprintf("keys.%s.%s", name, f.what)})
			}
		}
	}
	if t := m.Trust; t != nil {
		for field, l := range map[string][]string{"roots": t.Roots, "intermediates": t.Intermediates, "crls": t.CRLs} {
			for _, p := range l {
				in = append(in, input{p, t.FieldPos(field), "trust." + field})
			}
		}
	}
	for i := range m.Sources {
		s := &m.Sources[i]
		in = append(in, input{s.From, s.FieldPos("from"), fmt.Sprintf("sources[%d].from", i)})
	}
	return in
}

// realPath resolves p's symlinks as far as p exists, so that two spellings
// of one file compare equal.
func realPath(p string) string {
	p = filepath.Clean(p)
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	if d := filepath.Dir(p); d != p {
		return filepath.Join(realPath(d), filepath.Base(p))
	}
	return p
}

// within reports whether p is dir or inside it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// checkOutputs refuses a build whose outputs (the image and every name
// beside it, OutputSuffixes) are, or contain, an input: the manifest, a key,
// certificate, passphrase or trust file, a source. An output inside a source
// directory is allowed: the walk skips the build's own outputs and temporary
// files there (rootfs.Options.Output).
func checkOutputs(m *manifest.Manifest, out string) error {
	ins := inputs(m)
	for _, suf := range OutputSuffixes {
		o := realPath(out + suf)
		ost, oerr := os.Stat(o)
		for _, in := range ins {
			ip := realPath(in.path)
			same := ip == o
			if !same && oerr == nil {
				if ist, err := os.Stat(ip); err == nil && os.SameFile(ost, ist) {
					same = true // a hard link
				}
			}
			if same || within(ip, o) {
				return m.Errorf(m.Image.FieldPos("output"), ErrOutputIsInput, "image.output: %s would overwrite %s (%s at %s:%s)", out+suf, in.path, in.what, filepath.Base(m.File), in.pos)
			}
			// Inside a source directory, a name is the build's to
			// replace only if it is a previous build's output (a
			// record lies beside the image).
			if oerr == nil && strings.HasPrefix(in.what, "sources[") && within(o, ip) && !previousOutputs(out) {
				return m.Errorf(m.Image.FieldPos("output"), ErrOutputIsInput, "image.output: %s would overwrite %s, a file of %s (at %s:%s), which no build made (no %s)", out+suf, out+suf, in.what, filepath.Base(m.File), in.pos, out+SuffixRecord)
			}
		}
	}
	return nil
}

// previousOutputs reports whether out's names are a previous build's: its
// record exists, or a publish of it is pending.
func previousOutputs(out string) bool {
	if _, err := os.Lstat(out + SuffixRecord); err == nil {
		return true
	}
	return publish.Interrupted(out) != nil
}

// keysInSources finds the private key files the manifest names that a
// source directory would pack (not excluded): an error, or, with allow, a
// warning each.
func keysInSources(m *manifest.Manifest, allow bool, logf func(string, ...any)) error {
	var errs []error
	for _, name := range m.KeyNames() {
		k := m.Keys[name]
		if k.Key == "" || k.Backend() != "file" {
			continue
		}
		kp := realPath(k.Key)
		for i := range m.Sources {
			s := &m.Sources[i]
			st, err := os.Stat(s.From)
			if err != nil || !st.IsDir() {
				continue
			}
			src := realPath(s.From)
			if !within(kp, src) || kp == src {
				continue
			}
			rel, _ := filepath.Rel(src, kp)
			ip := path.Join(s.To, filepath.ToSlash(rel))
			if excludedOrAncestor(m, ip, s.To) {
				continue
			}
			err = m.Errorf(s.FieldPos("from"), ErrKeyInSource, "sources[%d]: %s would pack the private key of key %q (%s) as %s; exclude it or move the key out of the tree", i, s.From, name, k.Key, ip)
			if allow {
				logf("warning: %v (allowed by --allow-key-in-source)", err)
				continue
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// excludedOrAncestor reports whether ip, or a directory above it below top,
// matches an exclude pattern (the walk does not descend into excluded
// directories).
func excludedOrAncestor(m *manifest.Manifest, ip, top string) bool {
	for p := ip; len(p) > len(top) && p != "/"; p = path.Dir(p) {
		if m.Excluded(p) {
			return true
		}
	}
	return false
}
