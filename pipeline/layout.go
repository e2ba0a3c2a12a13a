package pipeline

import (
	"context"
	"errors"
	"slices"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/rootfs"
)

// walkManifest checks the manifest's digest algorithm and walks its
// sources (strict: walk warnings are errors), as Build and MakePlan both
// begin. The caller closes the tree.
func walkManifest(ctx context.Context, m *manifest.Manifest, strict bool, maxSpool int64) (imasig.Hash, *rootfs.Tree, error) {
	if m == nil {
		return 0, nil, errors.New("pipeline: no manifest")
	}
	h, err := imasig.ParseHash(string(m.Hash))
	if err != nil {
		return 0, nil, m.Errorf(m.Pos, err, "hash %q", m.Hash)
	}
	ro := rootfs.Options{Strict: strict, MaxSpool: maxSpool}
	if m.Image.Output != "" {
		// The build's own outputs in a source directory are never packed.
		ro.Output, ro.OutputSuffixes = OutputPath(m), OutputSuffixes
	}
	tree, err := rootfs.Walk(ctx, m, ro)
	if err != nil {
		return 0, nil, err
	}
	return h, tree, nil
}

// layout is an image's content decided before any file is read: every
// entry in image order and the key of every regular file. Build and
// MakePlan both start from layOut, so a plan lists exactly the files, keys
// and digests a build of the same manifest signs.
type layout struct {
	frags []*fragment
	// entries are the tree's and the policy fragments', sorted by
	// rootfs.ComparePaths.
	entries []*rootfs.Entry
	// files holds every regular file with its key ("": unsigned) and the
	// rule or policy fragment that set it, in the order of entries.
	files fileStates
	// primary maps a hard-link group to its first file, the one whose
	// content is read.
	primary map[uint32]*fileState
	// used names the keys that sign at least one file.
	used map[string]bool
	// hits counts the regular files each rule decided (first match).
	hits map[*manifest.Rule]int
	// toRead counts the regular files whose content is read (a hard-link
	// group once) and total their bytes.
	toRead int
	total  int64
}

// layOut renders the manifest's policy fragments (logging through logf),
// merges them with the walked tree and assigns a key to every regular file
// before any byte is read, so that a file matching no rule fails at once.
// Policy fragments are signed by the key their manifest entry names.
func layOut(m *manifest.Manifest, tree *rootfs.Tree, logf func(string, ...any)) (*layout, error) {
	frags, err := renderPolicy(m, tree, logf)
	if err != nil {
		return nil, err
	}
	entries := make([]*rootfs.Entry, 0, len(tree.Entries)+len(frags))
	for i := range tree.Entries {
		entries = append(entries, &tree.Entries[i])
	}
	for _, f := range frags {
		entries = append(entries, &f.entry)
	}
	slices.SortFunc(entries, func(a, b *rootfs.Entry) int { return rootfs.ComparePaths(a.Path, b.Path) })

	regular := 0
	for _, e := range entries {
		if e.Type == rootfs.TypeReg {
			regular++
		}
	}
	l := &layout{
		frags:   frags,
		entries: entries,
		files:   make(fileStates, 0, regular), // never grown: pointers into it stay valid
		primary: make(map[uint32]*fileState),
		used:    make(map[string]bool),
		hits:    make(map[*manifest.Rule]int),
	}
	rules := make(map[fileRule]*fileRule)
	intern := func(r fileRule) *fileRule {
		if p, ok := rules[r]; ok {
			return p
		}
		p := &r
		rules[r] = p
		return p
	}
	fragOf := make(map[*rootfs.Entry]*fragment, len(frags))
	for _, f := range frags {
		fragOf[&f.entry] = f
	}
	for _, e := range entries {
		if e.Type != rootfs.TypeReg {
			continue
		}
		var fr fileRule
		if f, ok := fragOf[e]; ok {
			fr.key, fr.pos, fr.fragment = f.src.Key, &f.src.Pos, true
		} else {
			r, err := m.RuleFor(e.Path)
			if err != nil {
				return nil, err
			}
			l.hits[r]++
			fr.pos = &r.Pos
			if r.Sign == nil || *r.Sign {
				fr.key = r.Key
				fr.evmKey = r.EVMKeyName()
			}
		}
		l.files = append(l.files, fileState{fileRule: intern(fr), entry: e})
		fs := &l.files[len(l.files)-1]
		if fs.key != "" {
			l.used[fs.key] = true
		}
		if fs.evmKey != "" {
			l.used[fs.evmKey] = true
		}
		if e.Link() != 0 {
			if first, ok := l.primary[e.Link()]; ok {
				// Hard links share one inode, so one security.ima.
				if k := first.key; k != fs.key {
					return nil, m.Errorf(*fs.pos, nil, "%s is a hard link to %s, which the rules sign with key %q, not %q",
						e.Path, first.entry.Path, k, fs.key)
				}
				if k := first.evmKey; k != fs.evmKey {
					return nil, m.Errorf(*fs.pos, nil, "%s is a hard link to %s, whose EVM key the rules make %q, not %q",
						e.Path, first.entry.Path, k, fs.evmKey)
				}
				continue
			}
			l.primary[e.Link()] = fs
		}
		l.toRead++
		l.total += e.Size
	}
	return l, nil
}

// fileStates is the layout's regular files in image order
// (rootfs.ComparePaths), held by value: a build of a million files keeps
// one small struct per file, not a pointer, an allocation and a map entry.
type fileStates []fileState

// lookup returns the state of the regular file at image path p, or nil.
func (fs fileStates) lookup(p string) *fileState {
	i, ok := slices.BinarySearchFunc(fs, p, func(f fileState, p string) int { return rootfs.ComparePaths(f.entry.Path, p) })
	if !ok {
		return nil
	}
	return &fs[i]
}
