// Package xzdec decodes .xz streams with the LZMA2 decoder of XZ Utils 5.8.3,
// vendored in upstream/: only the decoder's files of src/liblzma and the
// headers of src/common they include, verbatim from the release tag, never
// its build system or tests. UPSTREAM names the tag, its commit and every
// file's git blob id (TestUpstreamVerbatim checks them); gen.sh vendors
// them and writes the up_*.c files that compile them and xzdec_config.h.
//
// The system's liblzma (Debian 12: 5.4.1) still compresses xz blocks; this
// decoder checks the block cache's xz entries (squashfs's blockCacheUse):
// on the Go toolchain tree's 2,597 cached blocks it took 0.65 of 5.4.1's
// CPU time (XZ Utils 5.5 reworked the LZMA decoder, with x86-64 inline
// assembly for the range decoder). Its global symbols are renamed
// (xzdec_config.h), so both libraries link into one binary, statically
// too. Without cgo the package is empty.
package xzdec
