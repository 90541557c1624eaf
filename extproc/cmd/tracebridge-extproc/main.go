// Command tracebridge-extproc is tracebridge's Envoy ext_proc service: run it
// beside an ingress gateway or waypoint and point an ext_proc filter at it
// (see extproc/README.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/tracebridge/tracebridge/extproc/cmd/tracebridge-extproc/app"
)

func main() {
	cfg, err := app.ParseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tracebridge-extproc:", err)
		os.Exit(2)
	}
	if err := app.Run(context.Background(), cfg, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "tracebridge-extproc:", err)
		os.Exit(1)
	}
}
