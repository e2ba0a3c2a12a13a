package rootfs

import (
	"strings"

	"github.com/imaforge/imaforge/manifest"
)

// tarSuffixes are the names recognised as tarballs.
var tarSuffixes = []string{".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.zstd", ".tzst", ".tar.xz", ".txz"}

func isTarName(p string) bool {
	for _, s := range tarSuffixes {
		if strings.HasSuffix(p, s) {
			return true
		}
	}
	return false
}

func (b *builder) walkTar(s *manifest.Source, o *Origin) error {
	return b.m.Errorf(s.FieldPos("from"), manifest.ErrUnsupported, "sources[%d]: tarball sources are not implemented yet", o.Index)
}
