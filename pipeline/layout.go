package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
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
//
// What a build holds per file to its end is pointer-free (entryRef,
// fileState, digestStore; TestPerFileStatePointerFree): the garbage
// collector marks such an array once and never scans it, where it had to
// follow every pointer of a million files' state in every cycle.
type layout struct {
	frags []*fragment
	// tree is the walked tree's entries (rootfs.Tree.Entries, not
	// copied); an entryRef past them is a policy fragment's.
	tree []rootfs.Entry
	// entries are the tree's and the policy fragments', sorted by
	// rootfs.ComparePaths.
	entries []entryRef
	// rules are what the rules and policy fragments decide, each once
	// (fileState.rule).
	rules []fileRule
	// files holds every regular file with its key ("": unsigned) and the
	// rule or policy fragment that set it, in the order of entries.
	files fileStates
	// digests holds the files' digests, by file index (Build's, once
	// set by newDigests; MakePlan keeps its own).
	digests digestStore
	// primary maps a hard-link group to its first file (an index of
	// files), the one whose content is read.
	primary map[uint32]int32
	// used names the keys that sign at least one file.
	used map[string]bool
	// hits counts the regular files each rule decided (first match).
	hits map[*manifest.Rule]int
	// toRead counts the regular files whose content is read (a hard-link
	// group once) and total their bytes.
	toRead int
	total  int64
}

// entryRef is an entry of a layout: an index into its tree's entries or,
// from len(tree) on, into its policy fragments (layout.at).
type entryRef uint32

// at returns the entry r refers to.
func (l *layout) at(r entryRef) *rootfs.Entry {
	if int(r) < len(l.tree) {
		return &l.tree[r]
	}
	return &l.frags[int(r)-len(l.tree)].entry
}

// entry returns the walked entry (or policy fragment's) of a file.
func (l *layout) entry(fs *fileState) *rootfs.Entry { return l.at(fs.entry) }

// rule returns what the rule or policy fragment that decided a file
// decides.
func (l *layout) rule(fs *fileState) *fileRule { return &l.rules[fs.rule] }

// fragment returns the policy fragment a file is, or nil.
func (l *layout) fragment(fs *fileState) *fragment {
	if int(fs.entry) < len(l.tree) {
		return nil
	}
	return l.frags[int(fs.entry)-len(l.tree)]
}

// digest returns the digest of files[i], "" before its content was read.
// The string is the digest store's bytes, not a copy (digestStore.get).
func (l *layout) digest(i int32) string {
	if !l.files[i].read {
		return ""
	}
	return l.digests.get(i)
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
	n := len(tree.Entries) + len(frags)
	if n > math.MaxUint32 || n > math.MaxInt32 {
		return nil, fmt.Errorf("%d entries: more than an image holds", n)
	}
	l := &layout{
		frags:   frags,
		tree:    tree.Entries,
		entries: make([]entryRef, n),
		primary: make(map[uint32]int32),
		used:    make(map[string]bool),
		hits:    make(map[*manifest.Rule]int),
	}
	for i := range l.entries {
		l.entries[i] = entryRef(i)
	}
	slices.SortFunc(l.entries, func(a, b entryRef) int { return rootfs.ComparePaths(l.at(a).Path, l.at(b).Path) })

	regular := 0
	for _, r := range l.entries {
		if l.at(r).Type == rootfs.TypeReg {
			regular++
		}
	}
	l.files = make(fileStates, 0, regular)
	rules := make(map[fileRule]uint32)
	intern := func(r fileRule) uint32 {
		if i, ok := rules[r]; ok {
			return i
		}
		i := uint32(len(l.rules))
		rules[r] = i
		l.rules = append(l.rules, r)
		return i
	}
	for _, ref := range l.entries {
		e := l.at(ref)
		if e.Type != rootfs.TypeReg {
			continue
		}
		var fr fileRule
		if int(ref) >= len(l.tree) {
			f := l.frags[int(ref)-len(l.tree)]
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
		fi := int32(len(l.files))
		l.files = append(l.files, fileState{entry: ref, rule: intern(fr)})
		rule := &l.rules[l.files[fi].rule]
		if rule.key != "" {
			l.used[rule.key] = true
		}
		if rule.evmKey != "" {
			l.used[rule.evmKey] = true
		}
		if e.Link() != 0 {
			if first, ok := l.primary[e.Link()]; ok {
				// Hard links share one inode, so one security.ima.
				fr := l.rule(&l.files[first])
				if k := fr.key; k != rule.key {
					return nil, m.Errorf(*rule.pos, nil, "%s is a hard link to %s, which the rules sign with key %q, not %q",
						e.Path, l.entry(&l.files[first]).Path, k, rule.key)
				}
				if k := fr.evmKey; k != rule.evmKey {
					return nil, m.Errorf(*rule.pos, nil, "%s is a hard link to %s, whose EVM key the rules make %q, not %q",
						e.Path, l.entry(&l.files[first]).Path, k, rule.evmKey)
				}
				continue
			}
			l.primary[e.Link()] = fi
		}
		l.toRead++
		l.total += e.Size
	}
	return l, nil
}

// fileStates is the layout's regular files in image order
// (rootfs.ComparePaths), held by value: a build of a million files keeps
// one small pointer-free struct per file, not a pointer, an allocation and
// a map entry.
type fileStates []fileState

// find returns the index in l.files of the regular file at image path p,
// or -1.
func (l *layout) find(p string) int32 {
	i, ok := slices.BinarySearchFunc(l.files, p, func(f fileState, p string) int { return rootfs.ComparePaths(l.entry(&f).Path, p) })
	if !ok {
		return -1
	}
	return int32(i)
}
