package manifest_test

import (
	"fmt"

	"github.com/imaforge/imaforge/manifest"
)

func Example() {
	m, err := manifest.Parse("/src/firmware.yaml", []byte(`version: 1
image: {output: out/fw.sqsh, compression: zstd, block_size: 1M}
keys:
  vendor: {cert: pki/vendor.pem, key: pki/vendor.key}
sources:
  - from: rootfs/
rules:
  - {match: /var/**, sign: false}
  - {match: /**, key: vendor}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Image.Output, m.Image.Compression, m.Image.CompressionLevel(), m.Image.BlockSize, m.Hash)
	fmt.Println(m.Keys["vendor"].Key)
	for _, p := range []string{"/usr/bin/ls", "/var/log/messages"} {
		r, _ := m.Rule(p)
		fmt.Printf("%s: signed=%v key=%q (rule at line %d)\n", p, r.Signed(), r.Key, r.Pos.Line)
	}

	_, err = manifest.Parse("/src/firmware.yaml", []byte("version: 1\nimage: {compresion: zstd}\nsources: [{from: a}]\n"))
	fmt.Println(err)
	// Output:
	// /src/out/fw.sqsh zstd 15 1M sha256
	// /src/pki/vendor.key
	// /usr/bin/ls: signed=true key="vendor" (rule at line 9)
	// /var/log/messages: signed=false key="" (rule at line 8)
	// /src/firmware.yaml:2:9: unknown field "compresion" in image (did you mean "compression"?)
}
