package signer

import (
	"fmt"
	"sync"

	relicconfig "github.com/sassoftware/relic/v8/config"
	"github.com/sassoftware/relic/v8/lib/passprompt"
	"github.com/sassoftware/relic/v8/token"

	// Token types linked into every build: relic's file token and scdaemon
	// (OpenPGP cards). PKCS#11 is linked with cgo (tokens_pkcs11.go); the
	// cloud KMS types only with the imaforge_cloudkms build tag
	// (tokens_cloudkms.go). Each registers itself in token.Openers, as
	// relic's own token/open package does for all of them.
	_ "github.com/sassoftware/relic/v8/token/filetoken"
	_ "github.com/sassoftware/relic/v8/token/scdtoken"
)

// cloudKMSTypes are the relic token types linked only with the
// imaforge_cloudkms build tag.
var cloudKMSTypes = map[string]bool{"aws": true, "azure": true, "gcloud": true}

// tokenTypes returns the relic token types this program can open.
func tokenTypes() []string {
	var ts []string
	for t := range token.Openers {
		ts = append(ts, t)
	}
	return ts
}

// openMu serializes opening tokens. PKCS#11 login state belongs to the
// token and the process: relic logs a new session in unless the token
// already is, so two keys of one token opened side by side (a build opens
// its keys concurrently) both try C_Login and the second fails with
// CKR_USER_ALREADY_LOGGED_IN (seen with tpm2-pkcs11, TestBuildKeyInTPM).
var openMu sync.Mutex

// openToken opens the token named name of cfg with the token types linked
// into this program (relic's token/open.Token, without linking every type).
func openToken(cfg *relicconfig.Config, name string, prompt passprompt.PasswordGetter) (token.Token, error) {
	openMu.Lock()
	defer openMu.Unlock()
	tcfg, err := cfg.GetToken(name)
	if err != nil {
		return nil, err
	}
	if open := token.Openers[tcfg.Type]; open != nil {
		return open(cfg, name, prompt)
	}
	switch {
	case tcfg.Type == "pkcs11":
		return nil, fmt.Errorf("token type pkcs11 is not available: this imaforge was built without cgo")
	case cloudKMSTypes[tcfg.Type]:
		return nil, fmt.Errorf("token type %s is not linked into this imaforge: build it with -tags imaforge_cloudkms (see README)", tcfg.Type)
	}
	return nil, fmt.Errorf("unknown token type %q", tcfg.Type)
}
