package main

import (
	"context"

	"github.com/urfave/cli/v2"

	"github.com/snapfs/snapfs/cmd/snapfs/internal/service"
)

func statusCommand(st *state) *cli.Command {
	return hotCommand(st, "status", func(ctx context.Context, svc service.Service, _ any) (any, error) {
		return svc.StatusReport(ctx)
	})
}
