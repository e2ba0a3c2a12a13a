//go:build cgo

package signer

// PKCS#11 tokens need cgo (relic's p11token loads the module with dlopen).
import _ "github.com/sassoftware/relic/v8/token/p11token"
