// Package blockcache is the on-disk store behind squashfs.BlockCache: the
// compressed form of SquashFS data, fragment and metadata blocks kept between builds
// (`imaforge build --cache DIR`, in DIR/blocks), so that a rebuild
// compresses only the blocks whose content changed.
//
// Layout: one file per block, DIR/blocks/<key hex[:2]>/<key hex>, where the
// key is squashfs.BlockKey (the block's CRCs and length and a hash of the
// codec's identity: it finds an entry, the squashfs Writer's check proves
// it). A file is the Entry record:
//
//	offset size
//	0      8    magic "IMFBLK2\n"
//	8      32   the key (a file under another name is not used)
//	40     4    CRC-32C of the stored bytes, little-endian
//	44     4    length of the stored bytes, little-endian
//	48     1    1: the bytes are compressed; 0: the block stored as is
//	49     3    zero
//	52     n    the stored bytes
//
// Version 1 ("IMFBLK1\n", a SHA-256 key and checksum) is not read: its
// entries have other names, so a rebuild with an old cache compresses
// every block once, and Trim removes the old entries as the least recently
// used. The checksum only tells damage (a torn or rotten file) apart from a
// wrong entry in the warning: the Writer's full check decides either way.
//
// Safety: entries are written to a temporary file in the same directory and
// renamed into place, so a reader sees a whole entry or none, and two builds
// sharing a cache need no lock (both write the same bytes for one key; the
// last rename wins). A file that does not parse or whose checksum fails is a
// miss, reported once per build and overwritten by the fresh entry; the
// squashfs Writer also decompresses every hit and compares it with the
// block, so not even a well-formed wrong entry reaches an image. An
// unwritable or full cache directory is reported once and the build goes on
// without storing.
//
// Size: Trim removes the least recently used entries (by modification time,
// which a hit refreshes when it is more than an hour old) until the blocks
// take at most the limit, and temporary files older than a day that a killed
// build left.
package blockcache

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imaforge/imaforge/internal/rawfd"
	"github.com/imaforge/imaforge/squashfs"
	"golang.org/x/sys/unix"
)

// DefaultMaxBytes is the size the blocks are trimmed to when Open is given
// no limit: 2 GiB, the compressed blocks of several large images.
const DefaultMaxBytes = 2 << 30

// Entry is one cache file's record (see the package comment).
type Entry struct {
	Key        squashfs.BlockKey
	Compressed bool
	Stored     []byte
}

const (
	magic      = "IMFBLK2\n"
	headerSize = 52
	// maxStored bounds what Decode accepts: a block is at most 1 MiB, and
	// its stored form is never larger than the block.
	maxStored = squashfs.MaxBlockSize
)

var errBadEntry = errors.New("not a valid block cache entry")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// AppendTo encodes e after b.
func (e *Entry) AppendTo(b []byte) []byte {
	b = append(b, magic...)
	b = append(b, e.Key[:]...)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(e.Stored, castagnoli))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(e.Stored)))
	var flag byte
	if e.Compressed {
		flag = 1
	}
	b = append(b, flag, 0, 0, 0)
	return append(b, e.Stored...)
}

// Decode parses an entry; Stored aliases b. It checks the magic, the
// length, the flags and the checksum of the stored bytes.
func Decode(b []byte) (Entry, error) {
	var e Entry
	if len(b) < headerSize || string(b[:8]) != magic {
		return e, fmt.Errorf("%w: no header", errBadEntry)
	}
	copy(e.Key[:], b[8:40])
	n := binary.LittleEndian.Uint32(b[44:48])
	if n == 0 || n > maxStored || uint64(len(b)-headerSize) != uint64(n) {
		return e, fmt.Errorf("%w: length %d for %d bytes", errBadEntry, n, len(b)-headerSize)
	}
	if b[48] > 1 || b[49] != 0 || b[50] != 0 || b[51] != 0 {
		return e, fmt.Errorf("%w: unknown flags", errBadEntry)
	}
	e.Compressed = b[48] == 1
	e.Stored = b[headerSize:]
	if crc32.Checksum(e.Stored, castagnoli) != binary.LittleEndian.Uint32(b[40:44]) {
		return e, fmt.Errorf("%w: checksum mismatch", errBadEntry)
	}
	return e, nil
}

// Cache is a block store in a directory. It implements squashfs.BlockCache
// and is safe for concurrent use, also by several processes.
type Cache struct {
	dir  string // DIR/blocks
	max  int64
	warn func(string)

	readOnly atomic.Bool // writing failed once: store nothing more
	absent   bool        // the directory could not be made: read nothing either
	warned   sync.Map    // warning kinds already given

	hits, misses, damaged, stored atomic.Int64
	bufs                          sync.Pool
}

// Open uses dir/blocks as the block store (creating it), trimmed to max
// bytes by Trim (0: DefaultMaxBytes). It does not fail: a directory that
// cannot be created or written is reported through warn and the Cache then
// only misses (or only reads). warn may be nil.
func Open(dir string, max int64, warn func(string)) *Cache {
	if max <= 0 {
		max = DefaultMaxBytes
	}
	if warn == nil {
		warn = func(string) {}
	}
	c := &Cache{dir: filepath.Join(dir, "blocks"), max: max, warn: warn}
	c.bufs.New = func() any { return make([]byte, 0, headerSize+maxStored+1) }
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		c.absent = true
		c.disable(err)
		return c
	}
	// Probe writability now, so the warning comes before the build.
	f, err := os.CreateTemp(c.dir, ".tmp-*")
	if err != nil {
		c.disable(err)
		return c
	}
	f.Close()
	os.Remove(f.Name())
	return c
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

func (c *Cache) path(k squashfs.BlockKey) string {
	h := hex.EncodeToString(k[:])
	return filepath.Join(c.dir, h[:2], h)
}

// Get implements squashfs.BlockCache.
func (c *Cache) Get(k squashfs.BlockKey, dst []byte) ([]byte, bool, bool) {
	if c.absent {
		c.misses.Add(1)
		return nil, false, false
	}
	p := c.path(k)
	// A bare descriptor: os.Open would register the file with the poller
	// (fcntl and epoll_ctl calls) for nothing (internal/rawfd).
	r, err := rawfd.Open(p)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.warnOnce("read", fmt.Sprintf("block cache %s: %v; compressing instead", c.dir, err))
		}
		c.misses.Add(1)
		return nil, false, false
	}
	defer r.Close()
	buf := c.bufs.Get().([]byte)
	defer func() { c.bufs.Put(buf[:0]) }()
	n, err := io.ReadFull(r, buf[:cap(buf)])
	if err != io.ErrUnexpectedEOF && err != io.EOF {
		if err == nil {
			err = fmt.Errorf("%w: longer than any block", errBadEntry)
		}
		c.bad(p, err)
		return nil, false, false
	}
	e, err := Decode(buf[:n])
	if err == nil && e.Key != k {
		err = fmt.Errorf("%w: the entry of another key", errBadEntry)
	}
	if err != nil {
		c.bad(p, err)
		return nil, false, false
	}
	c.hits.Add(1)
	c.touch(r.Fd(), p)
	return append(dst[:0], e.Stored...), e.Compressed, true
}

// touch refreshes an entry's modification time (its last use, for Trim)
// when it is more than an hour old.
func (c *Cache) touch(fd int, p string) {
	if c.readOnly.Load() {
		return
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err == nil && time.Since(time.Unix(st.Mtim.Unix())) > time.Hour {
		now := time.Now()
		os.Chtimes(p, now, now)
	}
}

func (c *Cache) bad(p string, err error) {
	c.damaged.Add(1)
	c.misses.Add(1)
	c.warnOnce("damaged", fmt.Sprintf("block cache: %s: %v; not used, compressing the block again", p, err))
}

// Reject implements squashfs.BlockCache: the entry parsed but did not
// decompress to its block (Put replaces it).
func (c *Cache) Reject(k squashfs.BlockKey) {
	c.hits.Add(-1)
	c.bad(c.path(k), fmt.Errorf("%w: does not decompress to the block", errBadEntry))
}

// Put implements squashfs.BlockCache.
func (c *Cache) Put(k squashfs.BlockKey, stored []byte, compressed bool) {
	if c.readOnly.Load() || len(stored) == 0 || len(stored) > maxStored {
		return
	}
	buf := c.bufs.Get().([]byte)
	e := Entry{Key: k, Compressed: compressed, Stored: stored}
	buf = e.AppendTo(buf[:0])
	err := c.write(c.path(k), buf)
	c.bufs.Put(buf[:0])
	if err != nil {
		c.disable(err)
		return
	}
	c.stored.Add(1)
}

// write puts b at p through a temporary file and a rename. It does not
// sync: an entry lost in a crash is only compressed again, and a damaged
// one fails Decode.
func (c *Cache) write(p string, b []byte) error {
	dir := filepath.Dir(p)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(dir, 0o755); err == nil {
			f, err = os.CreateTemp(dir, ".tmp-*")
		}
	}
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// Stats counts this process's use of the cache.
type Stats struct {
	Hits, Misses int64 // Misses include Damaged
	Damaged      int64 // entries that failed a check, not used
	Stored       int64 // entries written
}

// Stats returns the counts so far.
func (c *Cache) Stats() Stats {
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), Damaged: c.damaged.Load(), Stored: c.stored.Load()}
}

// Trim removes least recently used entries until the blocks take at most
// the limit given to Open, and temporary files older than a day. Another
// build may use the cache meanwhile: an entry it is reading stays readable
// (POSIX unlink), one it is about to read is a miss. It returns the bytes
// kept.
func (c *Cache) Trim() (int64, error) {
	type ent struct {
		path  string
		size  int64
		mtime time.Time
	}
	var ents []ent
	var total int64
	now := time.Now()
	err := filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			if now.Sub(fi.ModTime()) > 24*time.Hour {
				os.Remove(p)
			}
			return nil
		}
		ents = append(ents, ent{p, fi.Size(), fi.ModTime()})
		total += fi.Size()
		return nil
	})
	if err != nil {
		return total, fmt.Errorf("block cache %s: %w", c.dir, err)
	}
	if total <= c.max {
		return total, nil
	}
	slices.SortFunc(ents, func(a, b ent) int { return a.mtime.Compare(b.mtime) })
	for _, e := range ents {
		if total <= c.max {
			break
		}
		if err := os.Remove(e.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return total, fmt.Errorf("block cache: %w", err)
		}
		total -= e.size
	}
	return total, nil
}
