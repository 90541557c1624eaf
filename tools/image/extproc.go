package image

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Shape of the ext_proc service image.
const (
	// ExtprocPath is where the binary lives in the image; it is the entrypoint.
	ExtprocPath = "/tracebridge-extproc"
	// ExtprocUser is the numeric, non-root user:group the service runs as
	// (the uid/gid distroless calls "nonroot"; numeric so that Kubernetes
	// runAsNonRoot can verify it without an /etc/passwd).
	ExtprocUser = "65532:65532"
	// ExtprocGRPCPort is the ext_proc gRPC port, ExtprocAdminPort the HTTP
	// port for /healthz, /readyz and /metrics.
	ExtprocGRPCPort  = "9002/tcp"
	ExtprocAdminPort = "9003/tcp"
)

// ExtprocDefaultArgs is the image's Cmd: tracebridge-extproc listens on
// loopback unless told otherwise, which is unreachable in a container, so the
// image makes both listeners listen on every interface. A pod's `args`
// replace these, so manifests that pass args must repeat them.
var ExtprocDefaultArgs = []string{"--listen=0.0.0.0:9002", "--admin-listen=0.0.0.0:9003"}

// elfArch maps ELF machine types to Go/OCI architecture names for the
// platforms the service is built for.
var elfArch = map[elf.Machine]string{
	elf.EM_X86_64:  "amd64",
	elf.EM_AARCH64: "arm64",
	elf.EM_386:     "386",
	elf.EM_ARM:     "arm",
	elf.EM_PPC64:   "ppc64le",
	elf.EM_S390:    "s390x",
	elf.EM_RISCV:   "riscv64",
}

// ParsePlatform parses "os/arch[/variant]" (for example "linux/arm64").
func ParsePlatform(s string) (v1.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return v1.Platform{}, fmt.Errorf("platform %q: want os/arch[/variant]", s)
	}
	p := v1.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// BuildExtproc builds the ext_proc service image from a statically linked
// Linux ELF binary: one layer holding only the binary at ExtprocPath (mode
// 0555, owned by root), no shell and no other files, user ExtprocUser,
// entrypoint the binary with ExtprocDefaultArgs as Cmd, ports 9002 and 9003
// declared. The config and the
// manifest use OCI media types.
//
// platform may be the zero value, in which case it is taken from the binary
// (linux plus the ELF machine type). A binary that does not match a given
// platform, is not a Linux executable, or needs a dynamic loader is rejected:
// the image has no libc to load it with.
func BuildExtproc(binaryPath string, platform v1.Platform) (v1.Image, error) {
	data, err := os.ReadFile(binaryPath)
	if err != nil {
		return nil, err
	}
	arch, err := checkStaticELF(binaryPath)
	if err != nil {
		return nil, err
	}
	if platform.OS == "" && platform.Architecture == "" {
		platform = v1.Platform{OS: "linux", Architecture: arch}
	}
	if platform.OS != "linux" {
		return nil, fmt.Errorf("platform %s: the ext_proc image is a Linux image", platform.String())
	}
	if platform.Architecture != arch {
		return nil, fmt.Errorf("%s is built for %s but the platform is %s", binaryPath, arch, platform.String())
	}

	layer, err := tarGzLayer([]tarFile{{
		name: strings.TrimPrefix(ExtprocPath, "/"),
		mode: 0o555,
		data: data,
	}}, types.OCILayer)
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{CreatedBy: "tracebridge image extproc", Created: epoch},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = platform.OS
	cf.Architecture = platform.Architecture
	cf.Variant = platform.Variant
	cf.OSVersion = platform.OSVersion
	cf.Created = epoch
	cf.Config = v1.Config{
		User:       ExtprocUser,
		Entrypoint: []string{ExtprocPath},
		Cmd:        append([]string(nil), ExtprocDefaultArgs...),
		WorkingDir: "/",
		ExposedPorts: map[string]struct{}{
			ExtprocGRPCPort:  {},
			ExtprocAdminPort: {},
		},
		Labels: map[string]string{
			annotationTitle:       "tracebridge-extproc",
			annotationDescription: "tracebridge Envoy ext_proc service: trace context enrichment at the gateway",
			annotationSource:      projectSource,
			annotationLicenses:    "Apache-2.0",
		},
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	return mutate.ConfigMediaType(img, types.OCIConfigJSON), nil
}

// checkStaticELF verifies that path is a Linux ELF executable without a
// program interpreter (PT_INTERP) and returns its architecture.
func checkStaticELF(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: not an ELF executable: %w", path, err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", fmt.Errorf("%s: ELF type %s is not an executable", path, f.Type)
	}
	if f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		return "", fmt.Errorf("%s: ELF OS ABI %s is not Linux", path, f.OSABI)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", errors.New(path + ": dynamically linked (has a program interpreter); build it with CGO_ENABLED=0")
		}
	}
	arch, ok := elfArch[f.Machine]
	if !ok {
		return "", fmt.Errorf("%s: unsupported ELF machine %s", path, f.Machine)
	}
	if f.Machine == elf.EM_PPC64 && f.ByteOrder.String() != "LittleEndian" {
		return "", fmt.Errorf("%s: big-endian ppc64 is not supported", path)
	}
	return arch, nil
}
