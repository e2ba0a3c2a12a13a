//go:build !amd64 || !cgo

package sha256x2

// haveCPU is false: the interleaved code needs amd64 and cgo.
func haveCPU() bool { return false }

// compress is never called: without haveCPU every Digest is crypto/sha256's.
func compress(a *Digest, headA *[blockSize]byte, bodyA []byte, b *Digest, headB *[blockSize]byte, bodyB []byte) {
	panic("sha256x2: no interleaved code on this platform")
}
