// Package blockcache is the on-disk store behind squashfs.BlockCache: the
// compressed form of SquashFS data, fragment and metadata blocks kept between builds
// (`imaforge build --cache DIR`, in DIR/blocks), so that a rebuild
// compresses only the blocks whose content changed.
//
// Layout (version 3): a few pack files, DIR/blocks/<time>-<random>.bpk,
// each holding many entries and a sorted index of them (pack.go gives the
// format). An entry is found by its squashfs.BlockKey (the block's CRCs
// and length and a hash of the codec's identity: it finds an entry, the
// squashfs Writer's check proves it). A build opens the packs once (a
// header and an index read each), reads each hit with one pread, and
// writes the blocks it compressed into one new pack. Version 2 kept one
// file per block (DIR/blocks/<kk>/<key>: 2,627 opens, reads and closes for
// the Go tree, and a walk of them all to trim); its entries are not read,
// a rebuild with such a cache compresses every block once, and Close
// removes them.
//
// Safety: a pack is written whole to a temporary file and renamed into
// place, and never changed after, so readers need no lock, and two builds
// sharing a cache each write their own pack. A pack whose header or index
// does not parse, or whose index CRC fails, is reported once, not used and
// removed at Close; an entry whose CRC-32C fails (or that cannot be read:
// a pack cut short) is a miss, reported once per build, and the fresh entry
// goes into the new pack, which is searched first from then on. The CRCs
// only tell damage apart from a wrong entry in the warning: the squashfs
// Writer decompresses every hit and compares it with the block, so not
// even a well-formed wrong entry reaches an image. An unwritable or full
// cache directory is reported once and the build goes on without storing.
//
// Size: Close merges the packs into one when there are more than maxPacks
// (all but the largest, when it holds most of the bytes) and, when the
// packs take more than the limit, rewrites them to at most three quarters
// of it: first the entries this build used or stored, then the others,
// newest pack first (the least recently used are dropped first). Packs
// another build removes meanwhile stay readable through their open
// descriptors; one removed before it was opened is a miss.
package blockcache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imaforge/imaforge/internal/packfile"
	"github.com/imaforge/imaforge/squashfs"
)

// DefaultMaxBytes is the size the packs are trimmed to when Open is given
// no limit: 2 GiB, the compressed blocks of several large images.
const DefaultMaxBytes = 2 << 30

// maxPacks is how many packs Close leaves before it merges them.
const maxPacks = 8

// tmpPrefix begins the names of packs being written.
const tmpPrefix = ".tmp-"

// Cache is a block store in a directory. It implements squashfs.BlockCache
// and is safe for concurrent use, also by several processes.
type Cache struct {
	dir  string // DIR/blocks
	max  int64
	warn func(string)

	readOnly atomic.Bool // writing failed once: store nothing more
	absent   bool        // the directory could not be made: read nothing either
	warned   sync.Map    // warning kinds already given

	packs   []*pack  // newest first; read-only after Open
	damaged []string // packs that did not parse: removed at Close
	legacy  []string // version 2 fan-out directories: removed at Close

	mu     sync.Mutex
	w      *packWriter // this build's new pack, nil until the first Put
	closed bool
	kept   int // the entries of the pack Close kept

	hits, misses, damagedN atomic.Int64
}

// Open uses dir/blocks as the block store (creating it), trimmed to max
// bytes by Close (0: DefaultMaxBytes), and opens its packs. It does not
// fail: a directory that cannot be created or written is reported through
// warn and the Cache then only misses (or only reads). warn may be nil.
func Open(dir string, max int64, warn func(string)) *Cache {
	if max <= 0 {
		max = DefaultMaxBytes
	}
	if warn == nil {
		warn = func(string) {}
	}
	c := &Cache{dir: filepath.Join(dir, "blocks"), max: max, warn: warn}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		c.absent = true
		c.disable(err)
		return c
	}
	// Probe writability now, so the warning comes before the build.
	if f, err := os.CreateTemp(c.dir, tmpPrefix+"*"); err != nil {
		c.disable(err)
	} else {
		f.Close()
		os.Remove(f.Name())
	}
	des, err := os.ReadDir(c.dir)
	if err != nil {
		c.warnOnce("read", fmt.Sprintf("block cache %s: %v; compressing instead", c.dir, err))
		return c
	}
	var names []string
	for _, de := range des {
		switch n := de.Name(); {
		case packfile.IsName(n, PackExt):
			names = append(names, filepath.Join(c.dir, n))
		case de.IsDir() && len(n) == 2 && isHex(n):
			c.legacy = append(c.legacy, filepath.Join(c.dir, n))
		}
	}
	slices.Sort(names) // names begin with the time they were written
	for _, n := range slices.Backward(names) {
		p, err := openPack(n)
		if errors.Is(err, fs.ErrNotExist) {
			continue // merged away by another build meanwhile
		}
		if err != nil {
			c.damagedN.Add(1)
			c.warnOnce("pack "+n, fmt.Sprintf("block cache: %v; not used, compressing its blocks again", err))
			if errors.Is(err, ErrBadPack) {
				c.damaged = append(c.damaged, n)
			}
			continue
		}
		c.packs = append(c.packs, p)
	}
	return c
}

func isHex(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}

// Dir is the directory the blocks are kept in.
func (c *Cache) Dir() string { return c.dir }

func (c *Cache) disable(err error) {
	if !c.readOnly.Swap(true) {
		c.warn(fmt.Sprintf("block cache %s: %v; building without storing blocks", c.dir, err))
	}
}

func (c *Cache) warnOnce(kind, msg string) {
	if _, loaded := c.warned.LoadOrStore(kind, true); !loaded {
		c.warn(msg)
	}
}

// Get implements squashfs.BlockCache.
func (c *Cache) Get(k squashfs.BlockKey, dst []byte) ([]byte, bool, bool) {
	for _, p := range c.packs {
		i := p.find(k)
		if i < 0 {
			continue
		}
		stored, rec, err := p.read(i, dst)
		if err != nil {
			c.bad(err)
			return nil, false, false
		}
		p.used[i].Store(true)
		c.hits.Add(1)
		return stored, rec.Compressed, true
	}
	c.misses.Add(1)
	return nil, false, false
}

func (c *Cache) bad(err error) {
	c.damagedN.Add(1)
	c.misses.Add(1)
	c.warnOnce("damaged", fmt.Sprintf("block cache: %v; not used, compressing the block again", err))
}

// Reject implements squashfs.BlockCache: the entry parsed but did not
// decompress to its block (Put stores a fresh one in the new pack, which
// is searched first from then on).
func (c *Cache) Reject(k squashfs.BlockKey) {
	c.hits.Add(-1)
	where := c.dir
	for _, p := range c.packs {
		if i := p.find(k); i >= 0 {
			p.used[i].Store(false)
			rec, _ := p.record(i)
			where = fmt.Sprintf("%s: entry at offset %d", p.path, rec.Off)
			break
		}
	}
	c.bad(fmt.Errorf("%s: %w: does not decompress to the block", where, ErrBadPack))
}

// Put implements squashfs.BlockCache.
func (c *Cache) Put(k squashfs.BlockKey, stored []byte, compressed bool) {
	if c.readOnly.Load() || len(stored) == 0 || len(stored) > maxStored {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.readOnly.Load() {
		return
	}
	if c.w == nil {
		w, err := createPack(c.dir)
		if err != nil {
			c.disable(err)
			return
		}
		c.w = w
	}
	if err := c.w.add(k, stored, compressed); err != nil {
		c.w.abort() // the pack is not kept
		c.w = nil
		c.disable(err)
	}
}

// Stats counts this process's use of the cache.
type Stats struct {
	Hits, Misses int64 // Misses include Damaged
	Damaged      int64 // entries (and packs) that failed a check, not used
	Stored       int64 // entries in the pack this build kept
}

// Stats returns the counts so far. Stored is derived from the pack: the
// entries of the one being written (a key put twice is one entry), then of
// the one Close kept; none of a pack a write failure dropped.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	stored := c.kept
	if c.w != nil {
		stored = len(c.w.recs)
	}
	c.mu.Unlock()
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), Damaged: c.damagedN.Load(), Stored: int64(stored)}
}

// Close writes the new pack of the blocks this build stored, removes
// damaged packs, version 2 entries and temporary files older than a day
// that killed builds left, merges the packs when there are too many and
// trims them to the limit (see the package comment). It returns the bytes
// the packs take. The Cache is not used after Close.
func (c *Cache) Close() (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, errors.New("block cache: closed twice")
	}
	c.closed = true
	defer func() {
		for _, p := range c.packs {
			p.close()
		}
	}()
	if c.absent {
		return 0, nil
	}
	var fresh *pack
	if c.w != nil {
		path, err := c.w.finish()
		c.w = nil
		if err != nil {
			c.disable(err) // the pack is not kept
		} else if fresh, err = openPack(path); err != nil {
			return 0, fmt.Errorf("block cache: the pack just written: %w", err)
		} else {
			c.packs = append([]*pack{fresh}, c.packs...)
			c.kept = fresh.n
			for i := range fresh.used {
				fresh.used[i].Store(true)
			}
		}
	}
	var total int64
	for _, p := range c.packs {
		total += p.size
	}
	if c.readOnly.Load() {
		return total, nil
	}
	var errs []error
	for _, p := range append(c.damaged, c.legacy...) {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	c.removeStale()
	if len(c.packs) > maxPacks || total > c.max {
		kept, err := c.merge(total)
		if err != nil {
			errs = append(errs, err)
		} else {
			total = kept
		}
	}
	if err := errors.Join(errs...); err != nil {
		return total, fmt.Errorf("block cache %s: %w", c.dir, err)
	}
	return total, nil
}

// removeStale removes temporary files older than a day.
func (c *Cache) removeStale() {
	tmps, _ := filepath.Glob(filepath.Join(c.dir, tmpPrefix+"*"))
	for _, p := range tmps {
		if fi, err := os.Lstat(p); err == nil && time.Since(fi.ModTime()) > 24*time.Hour {
			os.Remove(p)
		}
	}
}

// merge writes one pack of the entries of some or all packs and removes
// those packs. Over the limit, it rewrites all of them, keeping at most
// three quarters of the limit: the entries this build used or stored,
// then the others, newest pack first. Else (too many packs) it merges all
// but the largest pack when that one holds more than half the bytes. It
// returns the bytes the packs then take.
func (c *Cache) merge(total int64) (int64, error) {
	from := c.packs
	budget := int64(-1)
	if total > c.max {
		budget = c.max / 4 * 3
	} else if big := slices.MaxFunc(c.packs, func(a, b *pack) int { return int(a.size - b.size) }); big.size*2 > total {
		from = slices.DeleteFunc(slices.Clone(c.packs), func(p *pack) bool { return p == big })
	}
	w, err := createPack(c.dir)
	if err != nil {
		return total, err
	}
	var buf []byte
	copyEntries := func(used bool) error {
		for _, p := range from {
			for i := range p.n {
				if p.used[i].Load() != used || w.has[squashfs.BlockKey(p.key(i))] {
					continue
				}
				stored, rec, err := p.read(i, buf)
				if err != nil {
					continue // damaged: not kept
				}
				buf = stored[:0]
				if budget >= 0 && w.size()+int64(len(stored))+recordSize > budget {
					continue
				}
				if err := w.add(rec.Key, stored, rec.Compressed); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := copyEntries(true); err != nil {
		w.abort()
		return total, err
	}
	if err := copyEntries(false); err != nil {
		w.abort()
		return total, err
	}
	newSize := w.size()
	if _, err := w.finish(); err != nil {
		return total, err
	}
	kept := newSize
	for _, p := range c.packs {
		if !slices.Contains(from, p) {
			kept += p.size
			continue
		}
		if err := os.Remove(p.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return kept, err
		}
	}
	return kept, nil
}
