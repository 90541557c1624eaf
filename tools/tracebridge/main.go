// Command tracebridge is the operator's tool: it validates and prints policy
// documents, makes debug tokens, builds images, renders manifests, runs a
// local sidecar and the demo mesh.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/tracebridge/tracebridge/e2e/sim/demo"
	"github.com/tracebridge/tracebridge/e2e/sim/sidecar"
	"github.com/tracebridge/tracebridge/tools/image"
	"github.com/tracebridge/tracebridge/tools/manifests"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: tracebridge <command> [arguments]

commands:
  config validate FILE   check a policy document (JSON or YAML); exit 1 with field-path errors
  config default         print the zero-config policy
  debug-token            make a signed debug token (see docs/POLICY.md)
  manifests render       render Istio/Envoy manifests of a deployment mode from one policy
  image build            package the wasm module as an OCI image istio-agent pulls (prints the sha256 for WasmPlugin)
  image extproc          package the ext_proc service binary as a container image
  sidecar                run a local Envoy-semantics sidecar (wasm module / ext_proc) in front of an app
  demo                   run the local bookinfo-shaped mesh and print traces without and with tracebridge
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "config":
		return runConfig(args[1:], stdout, stderr)
	case "debug-token":
		return runDebugToken(args[1:], stdout, stderr)
	case "image":
		return image.RunImageCommand(args[1:], stdout, stderr)
	case "manifests":
		return manifests.RunManifestsCommand(args[1:], stdout, stderr)
	case "sidecar":
		return sidecar.RunSidecarCommand(args[1:], stdout, stderr)
	case "demo":
		return demo.RunDemoCommand(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "tracebridge: unknown command %q\n\n%s", args[0], usage)
	return 2
}
