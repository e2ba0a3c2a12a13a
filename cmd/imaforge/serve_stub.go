//go:build !imaforge_serve

package main

import (
	"errors"

	"github.com/urfave/cli/v2"
)

// errNoServe: this binary was built without relic's server (serve.go).
var errNoServe = errors.New("this imaforge is built without the signing service: run imaforge-serve " +
	"(make build writes bin/imaforge-serve; go build -tags imaforge_serve ./cmd/imaforge)")

func serveAction(*cli.Context) error { return usageErr(errNoServe) }
