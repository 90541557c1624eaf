package image

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Exit codes of RunImageCommand.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const imageUsage = `usage: tracebridge image <command> [flags]

commands:
  build    package the proxy-wasm module as an image istio-agent can pull
           tracebridge image build --wasm FILE (--out DIR | --push REF) [--format oci-wasm|docker|oci-compat]
           prints the manifest digest as 64 hex characters: the WasmPlugin sha256
  extproc  build the ext_proc service image from a static Linux binary
           tracebridge image extproc --binary FILE (--out DIR | --push REF) [--platform linux/ARCH]
           prints the manifest digest as sha256:<hex>, for image: REPO@sha256:<hex>

--out writes an OCI image layout directory (created or added to), --push
uploads to a registry using the Docker config credentials; both may be given.
`

// pushTimeout bounds a registry push.
const pushTimeout = 10 * time.Minute

// RunImageCommand runs `tracebridge image ...`: args are the arguments after
// "image" (args[0] is "build", "extproc" or "help"). Results go to stdout,
// diagnostics to stderr. It returns the process exit code: 0 on success, 1
// when building or writing failed, 2 on a usage error.
func RunImageCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, imageUsage)
		return exitUsage
	}
	switch args[0] {
	case "build":
		return runBuild(args[1:], stdout, stderr)
	case "extproc":
		return runExtproc(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, imageUsage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "tracebridge image: unknown command %q\n\n%s", args[0], imageUsage)
		return exitUsage
	}
}

// outputFlags are the destination flags both commands share.
type outputFlags struct {
	out      string
	push     string
	tag      string
	insecure bool
}

func (o *outputFlags) register(fs *flag.FlagSet, defaultTag string) {
	fs.StringVar(&o.out, "out", "", "write an OCI image layout to `DIR`")
	fs.StringVar(&o.push, "push", "", "push to the registry reference `REF` (repo:tag)")
	fs.StringVar(&o.tag, "tag", defaultTag, "reference name of the image inside the OCI layout")
	fs.BoolVar(&o.insecure, "insecure", false, "allow plain http to the registry (localhost always may)")
}

func (o *outputFlags) check() error {
	if o.out == "" && o.push == "" {
		return errors.New("one of --out DIR or --push REF is required")
	}
	return nil
}

// emit writes img to the requested destinations and returns its digest.
func (o *outputFlags) emit(img v1.Image, what string, stderr io.Writer) (v1.Hash, error) {
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	if o.out != "" {
		if _, err := WriteLayout(o.out, img, o.tag); err != nil {
			return v1.Hash{}, err
		}
		fmt.Fprintf(stderr, "wrote %s to OCI layout %s as %q (%s)\n", what, o.out, o.tag, digest)
	}
	if o.push != "" {
		ctx, cancel := context.WithTimeout(context.Background(), pushTimeout)
		defer cancel()
		if _, err := Push(ctx, o.push, img, PushOptions{Insecure: o.insecure}); err != nil {
			return v1.Hash{}, err
		}
		fmt.Fprintf(stderr, "pushed %s to %s (%s)\n", what, o.push, digest)
	}
	return digest, nil
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("tracebridge image "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses args and rejects positional arguments.
func parse(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected arguments: %s\n", fs.Name(), strings.Join(fs.Args(), " "))
		return exitUsage, false
	}
	return 0, true
}

func usageError(stderr io.Writer, fs *flag.FlagSet, err error) int {
	fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
	fs.Usage()
	return exitUsage
}

func runBuild(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("build", stderr)
	var (
		wasmPath string
		format   string
		o        outputFlags
	)
	fs.StringVar(&wasmPath, "wasm", "", "the proxy-wasm module `FILE` (bin/tracebridge.wasm)")
	fs.StringVar(&format, "format", string(FormatOCIWasm), "image `format`: oci-wasm, docker or oci-compat")
	o.register(fs, "latest")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if wasmPath == "" {
		return usageError(stderr, fs, errors.New("--wasm FILE is required"))
	}
	if err := o.check(); err != nil {
		return usageError(stderr, fs, err)
	}
	f, err := ParseFormat(format)
	if err != nil {
		return usageError(stderr, fs, err)
	}
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		return exitError
	}
	img, err := BuildWasm(wasm, f)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s: %v\n", fs.Name(), wasmPath, err)
		return exitError
	}
	digest, err := o.emit(img, string(f)+" wasm image", stderr)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		return exitError
	}
	// The WasmPlugin/TrafficExtension sha256 field takes the bare hex.
	fmt.Fprintln(stdout, digest.Hex)
	return exitOK
}

func runExtproc(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("extproc", stderr)
	var (
		binary   string
		platform string
		o        outputFlags
	)
	fs.StringVar(&binary, "binary", "", "the statically linked ext_proc `FILE`")
	fs.StringVar(&platform, "platform", "", "image `os/arch` (default: read from the binary)")
	o.register(fs, "latest")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if binary == "" {
		return usageError(stderr, fs, errors.New("--binary FILE is required"))
	}
	if err := o.check(); err != nil {
		return usageError(stderr, fs, err)
	}
	var p v1.Platform
	if platform != "" {
		var err error
		if p, err = ParsePlatform(platform); err != nil {
			return usageError(stderr, fs, err)
		}
	}
	img, err := BuildExtproc(binary, p)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		return exitError
	}
	digest, err := o.emit(img, "ext_proc image", stderr)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		return exitError
	}
	fmt.Fprintln(stdout, digest.String())
	return exitOK
}
