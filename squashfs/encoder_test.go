package squashfs

import (
	"errors"
	"regexp"
	"testing"
)

// TestEncoderOf pins what the build record says about each compressor's
// implementation: the C library and the version it reports at run time in
// the cgo build; ErrNoEncoder, naming the compressor and the way out, without
// cgo (the pure-Go encoders give other bytes, docs/reproducibility.md).
func TestEncoderOf(t *testing.T) {
	libs := map[Compression]string{Gzip: "libdeflate", Zstd: "libzstd", XZ: "liblzma", LZ4: "liblz4"}
	for comp, lib := range libs {
		e, err := EncoderOf(comp)
		if !cgoCompressors {
			if !errors.Is(err, ErrNoEncoder) || !regexp.MustCompile(comp.String()+` compression needs the cgo build`).MatchString(err.Error()) {
				t.Errorf("%v without cgo: %v, want ErrNoEncoder naming %v", comp, err, comp)
			}
			if _, err := newCodec(comp, 0, 4096); !errors.Is(err, ErrNoEncoder) {
				t.Errorf("%v without cgo: newCodec: %v, want ErrNoEncoder", comp, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", comp, err)
		}
		if e.Library != lib || !regexp.MustCompile(`^\d+\.\d+(\.\d+)?$`).MatchString(e.Version) ||
			!regexp.MustCompile(`^(static|shared lib[a-z0-9]+\.so[.0-9]*)$`).MatchString(e.Linkage) {
			t.Errorf("%v: %+v, want library %s, a version and a linkage", comp, e, lib)
		}
	}
	for _, c := range []Compression{Gzip, Zstd, XZ, LZ4} {
		e, _ := EncoderOf(c)
		t.Logf("%v: %+v", c, e)
	}
	// libzstd is bundled by github.com/DataDog/zstd: always in the executable.
	if e, err := EncoderOf(Zstd); cgoCompressors && (err != nil || e.Linkage != "static") {
		t.Errorf("zstd: %+v, %v; want static (bundled)", e, err)
	}
	if e, err := EncoderOf(CompNone); err != nil || e != (Encoder{}) {
		t.Errorf("none: %+v, %v; want the zero Encoder", e, err)
	}
}
