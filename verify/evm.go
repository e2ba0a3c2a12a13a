package verify

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/fsmode"
	"github.com/imaforge/imaforge/policy"
	"github.com/imaforge/imaforge/squashfs"
	"github.com/imaforge/imaforge/tarimage"
)

// checkEVM checks a file's portable EVM signature (security.evm type 0x05)
// as the kernel's evm_verify_hmac does, over the image's owner, mode and
// xattrs with Options.EVMXattrs, against the trust store like security.ima.
func (v *verifier) checkEVM(f *FileResult) {
	if f.evm == nil {
		return
	}
	val := f.evm
	f.evm = nil
	fail := func(format string, args ...any) {
		f.EVM = "failed"
		f.add(ReasonEVM, "security.evm: "+fmt.Sprintf(format, args...))
	}
	sig, err := imasig.ParseEVMSignature(val)
	if err != nil {
		fail("%v", err)
		return
	}
	f.EVMKeyID = fmt.Sprintf("%x", sig.KeyID[:])
	l := v.opts.EVMXattrs
	if l == nil {
		l = imasig.EVMXattrsDebian61
	}
	ks := v.key(sig.KeyID)
	if ks.cert == nil {
		fail("no trusted certificate with key id %s", f.EVMKeyID)
		return
	}
	if err := imasig.VerifyEVM(val, l, f.evmMeta, ks.cert); err != nil {
		fail("%v (owner %d:%d, mode %o, protected xattrs %s)", err, f.evmMeta.UID, f.evmMeta.GID, f.evmMeta.Mode, strings.Join(l, ", "))
		return
	}
	if ks.chainErr != nil {
		fail("key %s: %v", ks.subject, ks.chainErr)
		return
	}
	if ks.chain != nil {
		if err := ks.chain.CheckPath(f.Path); err != nil {
			fail("key %s: %v", ks.subject, err)
			return
		}
	}
	f.EVM = "ok"
	f.evmMeta = imasig.EVMMeta{}
}

// unixMode is st_mode for an fs.FileMode.
func unixMode(m fs.FileMode) uint32 {
	t := uint32(unix.S_IFREG)
	switch {
	case m.IsDir():
		t = unix.S_IFDIR
	case m&fs.ModeSymlink != 0:
		t = unix.S_IFLNK
	case m&fs.ModeCharDevice != 0:
		t = unix.S_IFCHR
	case m&fs.ModeDevice != 0:
		t = unix.S_IFBLK
	case m&fs.ModeNamedPipe != 0:
		t = unix.S_IFIFO
	case m&fs.ModeSocket != 0:
		t = unix.S_IFSOCK
	}
	return t | fsmode.Perm(m)
}

// tarArchive verifies a tar, tar.gz or tar.zst archive (package tarimage)
// like an image: every regular file's security.ima and security.evm from
// its SCHILY.xattr records, the policy fragments and the coverage.
func tarArchive(ctx context.Context, r io.ReaderAt, size int64, opts Options) (*Report, error) {
	a, err := tarimage.Open(r, size, opts.TempDir)
	if err != nil {
		return nil, &ImageError{Err: err}
	}
	defer a.Close()
	if opts.Kernel == 0 {
		opts.Kernel = policy.DefaultVersion
	}
	if !opts.Kernel.Valid() {
		return nil, fmt.Errorf("verify: invalid kernel series %d", opts.Kernel)
	}
	format := "tar"
	if c := a.Compression.String(); c != "" {
		format += "." + c
	}
	rep := &Report{
		Format: ReportFormat,
		Image:  ImageInfo{Path: opts.ImagePath, Size: size, Compression: format, Inodes: uint32(len(a.Members))},
		Kernel: opts.Kernel.String(),
	}
	if !opts.At.IsZero() {
		t := opts.At.UTC().Truncate(time.Second)
		rep.CheckedAt = &t
	}
	rep.ImageSignature = checkImageSignature(r, size, opts)
	v := &verifier{opts: opts, z: a, keys: map[[4]byte]*keyState{}, policyData: map[*FileResult][]byte{}}
	extra := map[string]bool{}
	for _, p := range opts.PolicyPaths {
		extra[cleanPath(p)] = true
	}
	var names []string
	first := map[string]*tarimage.Member{}
	for i := range a.Members {
		m := &a.Members[i]
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if opts.Record != nil && m.Typeflag != tar.TypeReg && m.Typeflag != tar.TypeLink {
			e := entryOf(m.Path, tarFileMode(m), m.UID, m.GID)
			e.Target, e.Major, e.Minor = m.Linkname, m.Devmajor, m.Devminor
			if m.Typeflag != tar.TypeSymlink {
				e.Target = ""
			}
			v.entries = append(v.entries, e)
		}
		if m.Typeflag != tar.TypeReg && m.Typeflag != tar.TypeLink {
			continue
		}
		src := m
		if m.Typeflag == tar.TypeLink {
			// A hard link shares its target's inode: owner, mode, xattrs.
			t, ok := first["/"+strings.TrimPrefix(strings.TrimPrefix(m.Linkname, "./"), "/")]
			if !ok {
				return nil, &ImageError{Err: fmt.Errorf("%w: hard link %s to %q, which is no earlier regular file", tarimage.ErrFormat, m.Path, m.Linkname)}
			}
			src = t
		} else {
			first[m.Path] = m
		}
		mode := tarFileMode(src)
		f := &FileResult{Path: m.Path, Size: src.Size, Mode: squashfs.ModeString(mode), UID: src.UID, GID: src.GID,
			exec: mode.Perm()&0o111 != 0, perm: src.Mode & 0o7777}
		if opts.Record != nil {
			e := entryOf(m.Path, mode, src.UID, src.GID)
			e.Size = src.Size
			v.entries = append(v.entries, e)
		}
		f.setXattrs(src.Xattrs, unixMode(mode))
		f.Policy = extra[f.Path] || IsPolicyPath(f.Path)
		rep.Files = append(rep.Files, f)
		names = append(names, strings.TrimPrefix(m.Path, "/"))
	}
	return v.finish(ctx, rep, names)
}

// tarFileMode is a member's type and permission bits as an fs.FileMode (a
// hard link is its target's regular file), as archive/tar maps them.
func tarFileMode(m *tarimage.Member) fs.FileMode {
	return (&tar.Header{Typeflag: m.Typeflag, Mode: int64(m.Mode)}).FileInfo().Mode()
}
