package main

import (
	"github.com/urfave/cli/v2"

	"github.com/imaforge/imaforge/service"
)

func init() {
	register(&cli.Command{
		Name:      "serve",
		Usage:     "run the signing service: relic's server with the ima signature module",
		ArgsUsage: "CONFIG",
		Description: `CONFIG is a relic server configuration (docs/service.md): tokens, keys with
their roles, the TLS listener and the client certificates with their roles.
Clients POST batches of (path, hash, digest) with sigtype=ima; each path is
checked against the key certificate's scope before anything is signed.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "test", Usage: "check the configuration and open the tokens, then exit"},
		},
		Action: func(c *cli.Context) error {
			cfg, err := service.LoadServerConfig(c.Args().First())
			if err != nil {
				return usageErr(err)
			}
			if err := service.Serve(c.Context, cfg, c.Bool("test")); err != nil {
				return err
			}
			if c.Bool("test") {
				_, err = c.App.Writer.Write([]byte("OK\n"))
			}
			return err
		},
	})
}
