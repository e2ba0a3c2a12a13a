package main

import (
	"github.com/urfave/cli/v2"
)

func init() {
	register(&cli.Command{
		Name:      "serve",
		Usage:     "run the signing service: relic's server with the ima signature module (the imaforge-serve build)",
		ArgsUsage: "CONFIG",
		Description: `CONFIG is a relic server configuration (docs/service.md): tokens, keys with
their roles, the TLS listener and the client certificates with their roles.
Clients POST batches of (path, hash, digest) with sigtype=ima; each path is
checked against the key certificate's scope before anything is signed.

relic's server links every relic token type (cloud KMS SDKs included), about
17 MB, so it is in its own build: make build writes bin/imaforge-serve (this
program built with -tags imaforge_serve); the imaforge binary refuses serve.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "test", Usage: "check the configuration and open the tokens, then exit"},
		},
		Action: serveAction, // serve_relic.go, or serve_stub.go without the signing service
	})
}
