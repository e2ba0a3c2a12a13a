//go:build imaforge_serve

package main

import (
	"os"

	"github.com/urfave/cli/v2"

	"github.com/imaforge/imaforge/service/server"
)

// The build with the signing service (bin/imaforge-serve, -tags
// imaforge_serve) links relic's server, and with it every relic token type.

func init() {
	workerMain = func(args []string) {
		if len(args) > 1 && args[1] == server.WorkerCommand {
			// relic's server (imaforge serve) starting a PKCS#11 token worker
			if err := server.RunWorker(args[2:]); err != nil {
				os.Exit(1)
			}
			os.Exit(0)
		}
	}
}

func serveAction(c *cli.Context) error {
	cfg, err := server.LoadServerConfig(c.Args().First())
	if err != nil {
		return usageErr(err)
	}
	if err := server.Serve(c.Context, cfg, c.Bool("test")); err != nil {
		return err
	}
	if c.Bool("test") {
		_, err = c.App.Writer.Write([]byte("OK\n"))
	}
	return err
}
