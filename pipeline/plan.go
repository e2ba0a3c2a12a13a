package pipeline

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"time"

	"github.com/imaforge/imaforge/ceremony"
	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/parallel"
	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/rootfs"
)

// PlanOptions configure MakePlan.
type PlanOptions struct {
	Manifest    *manifest.Manifest
	ToolVersion string
	// Workers bounds the goroutines reading files (0: GOMAXPROCS).
	Workers int
	// Strict turns walk warnings into errors, as for Build.
	Strict   bool
	Progress Progress
	Logf     func(format string, args ...any)
	// Now is the time certificates must be valid at (nil: time.Now), as
	// for Build.
	Now func() time.Time
}

// Plan is what a build would sign: every signed regular file with its key
// and digest, and the signing request for an offline ceremony.
type Plan struct {
	Request *ceremony.Request
	// Files lists the signed files in tree order (hard links to a signed
	// file included).
	Files []PlannedFile
}

// PlannedFile is one signed file.
type PlannedFile struct {
	Path   string
	Key    string
	Digest []byte
}

// MakePlan walks the manifest's sources as Build does, reads every regular
// file once to digest it, and returns the signing request: per key, the
// unique digests Build would ask it to sign. No image is written and no
// private key is needed, only the keys' certificates.
func MakePlan(ctx context.Context, opts PlanOptions) (*Plan, error) {
	m := opts.Manifest
	h, tree, err := walkManifest(ctx, m, opts.Strict, 0)
	if err != nil {
		return nil, err
	}
	defer tree.Close()
	for _, w := range tree.Warnings {
		if opts.Logf != nil {
			opts.Logf("warning: %v", w)
		}
	}

	// The same entries and keys as Build (layOut); hard links share their
	// primary's digest (and need its key).
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	lay, err := layOut(m, tree, logf)
	if err != nil {
		return nil, err
	}
	if err := checkIntent(m, lay, opts.Strict, logf); err != nil { // the build's warnings (intent.go)
		return nil, err
	}
	frags, used := lay.frags, lay.used
	type item struct {
		e      *rootfs.Entry
		key    string
		digest []byte
		link   *item
	}
	var items []*item
	primary := map[uint32]*item{}
	var toRead []*item
	var total int64
	files := 0
	for i := range lay.files {
		e := lay.entry(&lay.files[i])
		files++
		it := &item{e: e, key: lay.rule(&lay.files[i]).key}
		items = append(items, it)
		if e.Link() != 0 {
			if p, ok := primary[e.Link()]; ok {
				if p.key != it.key {
					return nil, fmt.Errorf("%s: hard link to %s needs the same key (%q) as the file it links to (%q)", e.Path, p.e.Path, it.key, p.key)
				}
				it.link = p
				continue
			}
			primary[e.Link()] = it
		}
		if it.key != "" {
			toRead = append(toRead, it)
			total += e.Size
		}
	}

	req := &ceremony.Request{
		Tool:     "imaforge " + opts.ToolVersion,
		Image:    filepath.Base(m.Image.Output),
		Manifest: ceremony.ManifestRef{Name: filepath.Base(m.File), SHA256: hex.EncodeToString(m.Digest[:])},
		Hash:     h.String(),
		Files:    files,
		Keys:     []ceremony.RequestKey{},
	}
	keyIndex := map[string]int{}
	certs := map[string]Key{}
	for _, name := range m.KeyNames() {
		if !used[name] {
			continue
		}
		k := m.Keys[name]
		cert, err := keyCert(m, k)
		if err != nil {
			return nil, err
		}
		ref := ""
		if k.Backend() != "file" {
			ref = k.Key
		}
		keyIndex[name] = len(req.Keys)
		req.Keys = append(req.Keys, ceremony.NewRequestKey(name, ref, cert))
		certs[name] = &precomputed{name: name, cert: cert, hash: h}
	}
	// Refuse now what Build would refuse (trust store, dates, scopes),
	// before a ceremony is spent on it.
	if err := (&Options{Now: opts.Now}).checkKeys(m, certs, lay); err != nil {
		return nil, err
	}

	// Read and digest, in parallel.
	if opts.Progress != nil {
		opts.Progress.Start(len(toRead), total)
		defer opts.Progress.Done()
	}
	err = parallel.ForEach(ctx, len(toRead), opts.Workers, func(_ context.Context, i int) error {
		it := toRead[i]
		d, err := digestEntry(it.e, h)
		if err != nil {
			return err
		}
		it.digest = d
		if opts.Progress != nil {
			opts.Progress.Add(1, it.e.Size)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	plan := &Plan{Request: req}
	for _, it := range items {
		if it.key == "" {
			continue
		}
		d := it.digest
		if it.link != nil {
			d = it.link.digest
		}
		plan.Files = append(plan.Files, PlannedFile{Path: it.e.Path, Key: it.key, Digest: d})
		rk := &req.Keys[keyIndex[it.key]]
		rk.Files++
		dh := hex.EncodeToString(d)
		rk.Digests = append(rk.Digests, dh)
		if rk.Paths == nil {
			rk.Paths = map[string][]string{}
		}
		rk.Paths[dh] = append(rk.Paths[dh], it.e.Path)
	}
	for i := range req.Keys {
		req.Keys[i].Digests = ceremony.SortDigests(req.Keys[i].Digests)
		for _, ps := range req.Keys[i].Paths {
			slices.Sort(ps)
		}
	}
	for _, f := range frags {
		d, err := imasig.DigestReader(h, bytes.NewReader(f.data))
		if err != nil {
			return nil, err
		}
		req.Policy = append(req.Policy, ceremony.RequestPolicy{Name: f.src.Name, Path: f.src.Path, Key: f.src.Key, Digest: hex.EncodeToString(d)})
	}
	if _, err := req.Marshal(); err != nil { // sets req.SHA256
		return nil, err
	}
	return plan, nil
}

// digestEntry reads a regular file's content once and returns its digest.
func digestEntry(e *rootfs.Entry, h imasig.Hash) ([]byte, error) {
	rc, err := e.Content.Open()
	if err != nil {
		return nil, err
	}
	hh, err := h.New()
	if err != nil {
		rc.Close()
		return nil, err
	}
	n, err := io.Copy(hh, rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.Path, err)
	}
	if n != e.Size {
		return nil, fmt.Errorf("%s: read %d bytes, expected %d: %w", e.Path, n, e.Size, rootfs.ErrModified)
	}
	return hh.Sum(nil), nil
}

// Sums returns the key's unique digests, each with the first file that has
// it, in tree order: the lines `evmctl sign_hash` signs (ceremony.WriteSums).
// An empty key is allowed when the plan has one signing key.
func (p *Plan) Sums(key string) ([]ceremony.SumLine, error) {
	if key == "" {
		switch len(p.Request.Keys) {
		case 0:
			return nil, nil
		case 1:
			key = p.Request.Keys[0].Name
		default:
			names := []string{}
			for _, k := range p.Request.Keys {
				names = append(names, k.Name)
			}
			return nil, fmt.Errorf("the manifest signs with %d keys %q: choose one (evmctl sign_hash signs with one key)", len(names), names)
		}
	}
	if p.Request.Key(key) == nil {
		return nil, fmt.Errorf("key %q signs no file of this manifest", key)
	}
	seen := map[string]bool{}
	var out []ceremony.SumLine
	for _, f := range p.Files {
		if f.Key != key || seen[string(f.Digest)] {
			continue
		}
		seen[string(f.Digest)] = true
		out = append(out, ceremony.SumLine{Digest: f.Digest, Name: f.Path})
	}
	return out, nil
}
