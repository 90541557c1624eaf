package manifests

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

const cliUsage = `usage: tracebridge manifests render --policy FILE [--mode M | --out DIR] [flags]

Renders the Istio and Envoy manifests of one deployment mode from one policy
document (JSON or YAML), so that pluginConfig, Telemetry customTags, EnvoyFilter
custom_tags and the early header mutation never drift apart.

  --mode M    print mode M's complete resource set as one YAML stream; M is one of
              ` + "sidecar-auto-forward, precise-parenting, gateway-enrichment,\n              gateway-enrichment-upstream, edge-trust, envoy" + `
  --out DIR   write every mode as files (the layout of manifests/)
  neither     print every file, each preceded by a "# Source:" line

flags:
`

// RunManifestsCommand runs `tracebridge manifests ARGS...`; it returns the
// process exit code.
func RunManifestsCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "render" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stdout, cliUsage)
			return 0
		}
		fmt.Fprint(stderr, cliUsage)
		return 2
	}
	fs := flag.NewFlagSet("tracebridge manifests render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, cliUsage); fs.PrintDefaults() }
	var o Options
	var policy, out, backends string
	var legacy bool
	fs.StringVar(&policy, "policy", "", "policy document, JSON or YAML (required)")
	fs.StringVar(&o.Mode, "mode", "", "deployment mode to print")
	fs.StringVar(&out, "out", "", "write all modes under this directory")
	fs.StringVar(&o.Image, "image", "", "wasm module URL (default oci://ghcr.io/tracebridge/tracebridge-wasm:"+DefaultVersion+")")
	fs.StringVar(&o.SHA256, "sha256", "", "sha256 of the wasm image (WasmPlugin/TrafficExtension sha256)")
	fs.StringVar(&o.ExtProcImage, "extproc-image", "", "ext_proc container image (default ghcr.io/tracebridge/tracebridge-extproc:"+DefaultVersion+")")
	fs.StringVar(&o.Namespace, "namespace", "", `namespace of every resource (default "default" for sidecar modes, "istio-system" for gateway modes)`)
	fs.StringVar(&backends, "backend", "", "comma-separated host:port services behind the gateway for gateway-enrichment-upstream")
	fs.StringVar(&o.WasmFile, "wasm-file", "", "module path in the plain Envoy bootstrap (default /etc/tracebridge/tracebridge.wasm)")
	fs.StringVar(&o.CustomTags, "custom-tags", "", `how the gateway's span tags are configured: "telemetry" (Telemetry customTags of type formatter, Istio >= 1.29; the default) or "envoyfilter" (EnvoyFilter custom_tags patch, older Istio)`)
	fs.StringVar(&o.CollectorService, "collector-service", "", "host name (or namespace/host name) of the mesh's tracing provider, as its mesh config extension provider names it; a policy enabling clientSpans without a cluster reports to Istio's cluster for it (default "+DefaultCollectorService+")")
	fs.IntVar(&o.CollectorPort, "collector-port", 0, "port of the mesh's tracing provider (default "+strconv.Itoa(DefaultCollectorPort)+")")
	fs.BoolVar(&legacy, "wasmplugin", false, "with --mode: print the WasmPlugin (Istio < 1.30) instead of the TrafficExtension")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tracebridge manifests render: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return 2
	}
	if policy == "" {
		fmt.Fprintln(stderr, "tracebridge manifests render: --policy is required")
		return 2
	}
	if o.Mode != "" && out != "" {
		fmt.Fprintln(stderr, "tracebridge manifests render: --mode and --out exclude each other")
		return 2
	}
	if backends != "" {
		o.GatewayBackends = strings.Split(backends, ",")
	}
	data, err := os.ReadFile(policy)
	if err != nil {
		fmt.Fprintln(stderr, "tracebridge manifests render:", err)
		return 1
	}
	if o.Mode != "" {
		y, err := RenderMode(data, o, legacy)
		if err != nil {
			fmt.Fprintf(stderr, "tracebridge manifests render: %s: %v\n", policy, err)
			return 1
		}
		stdout.Write(y)
		return 0
	}
	files, err := Render(data, o)
	if err != nil {
		fmt.Fprintf(stderr, "tracebridge manifests render: %s: %v\n", policy, err)
		return 1
	}
	if out == "" {
		for i, f := range files {
			if i > 0 {
				fmt.Fprintln(stdout, "---")
			}
			fmt.Fprintf(stdout, "# Source: manifests/%s\n", f.Path)
			stdout.Write(f.Data)
		}
		return 0
	}
	if err := WriteFiles(out, files); err != nil {
		fmt.Fprintln(stderr, "tracebridge manifests render:", err)
		return 1
	}
	return 0
}

// WriteFiles writes rendered files under dir.
func WriteFiles(dir string, files []File) error {
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
