//go:build !amd64 || purego

package sha256x2

// useAsm is false: there is no two-lane routine for this architecture, and
// WriteBoth writes one digest after the other.
var useAsm = false

func blocks2(ha, hb *[8]uint32, pa, pb []byte) {
	panic("sha256x2: blocks2 without an assembly routine")
}
