// Package packfile holds what the caches' pack files share (the signature
// packs of internal/sigpack and the block packs of internal/blockcache):
// a pack's name, opening a pack as a regular file for its parser, and the
// CRC-32C that covers a pack's header and index.
package packfile

import (
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/imaforge/imaforge/internal/boundedfile"
)

// NewName returns the path in dir for a new pack with the file name ending
// ext: the time in nanoseconds and a random number, in hex, so that names
// sort in the order their packs were written and two writers at once do not
// pick the same one.
func NewName(dir, ext string) string {
	return filepath.Join(dir, fmt.Sprintf("%016x-%08x%s", time.Now().UnixNano(), rand.Uint32(), ext))
}

// IsName reports whether the file name is a pack's with the ending ext; a
// temporary file (a name beginning with a dot) is not.
func IsName(name, ext string) bool {
	return strings.HasSuffix(name, ext) && !strings.HasPrefix(name, ".")
}

// Castagnoli is the CRC-32C table (hash/crc32 uses the SSE4.2 or ARMv8 CRC
// instructions for it where they exist).
var Castagnoli = crc32.MakeTable(crc32.Castagnoli)

// IndexCRC is the CRC-32C of a pack's header fields before the CRC and of
// its index.
func IndexCRC(head, index []byte) uint32 {
	return crc32.Update(crc32.Checksum(head, Castagnoli), Castagnoli, index)
}

// Open opens the pack at path and hands the file and its size to parse. A
// path that is not a regular file is an error wrapping bad, refused without
// being opened where possible (boundedfile.Open: a FIFO under a pack's name
// hung the build, deaf to SIGTERM, in open(2)). The file is closed when
// parse (or anything before it) fails; else what parse returns owns it.
func Open[T any](path string, bad error, parse func(path string, f *os.File, size int64) (T, error)) (T, error) {
	var zero T
	f, size, err := boundedfile.Open(path)
	if errors.Is(err, boundedfile.ErrNotRegular) {
		return zero, fmt.Errorf("%s: %w: %w", path, bad, errors.Unwrap(err))
	}
	if err != nil {
		return zero, err
	}
	p, err := parse(path, f, size)
	if err != nil {
		f.Close()
		return zero, err
	}
	return p, nil
}
