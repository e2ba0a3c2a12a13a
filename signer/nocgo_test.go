//go:build !cgo

package signer

// withCgo: this test binary has no cgo, so PKCS#11 tokens are not linked and
// every PKCS#11 key fails to open, naming the cause.
const withCgo = false
