package main

import (
	"github.com/urfave/cli/v2"

	"github.com/imaforge/imaforge/squashfs"
)

func init() {
	squashfsCmd.Subcommands = append(squashfsCmd.Subcommands, &cli.Command{
		Name:      "ls",
		Usage:     "list the entries of a SquashFS image (any compressor mksquashfs makes)",
		ArgsUsage: "IMAGE",
		Description: "Without -l, one path per line. With -l, a line as unsquashfs -lln -UTC prints it:\n" +
			"mode, uid/gid, size (major,minor for devices), time (UTC), path, -> target for symlinks.\n" +
			"With --xattrs, each extended attribute follows its entry on a line of its own:\n" +
			"a tab, the name, = and the value in hex (0x...).",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "l", Usage: "long listing: mode, owner, size, time, symlink targets"},
			&cli.BoolFlag{Name: "xattrs", Usage: "show extended attributes, values in hex"},
		},
		Action: squashfsLs,
	})
}

func squashfsLs(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErrf("squashfs ls needs exactly one IMAGE")
	}
	r, err := squashfs.OpenReader(c.Args().First())
	if err != nil {
		return inputErr(err)
	}
	defer r.Close()
	return r.List(c.App.Writer, squashfs.ListOptions{Long: c.Bool("l"), Xattrs: c.Bool("xattrs")})
}
