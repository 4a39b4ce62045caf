package main

import (
	"github.com/urfave/cli/v2"
)

func statusCommand(st *state) *cli.Command {
	return hotCommand(st, "status")
}
