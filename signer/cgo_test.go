//go:build cgo

package signer

// withCgo: this test binary has cgo, so PKCS#11 tokens are linked.
const withCgo = true
