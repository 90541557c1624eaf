package image

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Format selects how BuildWasm packages a module.
type Format string

// The packagings istio-agent's fetcher accepts (see istio.go).
const (
	// FormatOCIWasm is the "oci" variant of the Wasm image specification: an
	// OCI manifest with exactly two layers, the runtime config JSON and the raw
	// module (media type MediaTypeWasmContent). Its manifest config is the same
	// runtime config JSON, as the wasme tool wrote it.
	FormatOCIWasm Format = "oci-wasm"
	// FormatDocker is the "compat" variant with Docker media types: a Docker
	// schema 2 manifest whose single tar+gzip layer holds plugin.wasm. Plain
	// container tooling can copy and inspect it.
	FormatDocker Format = "docker"
	// FormatOCICompat is the "compat" variant with OCI media types: an OCI
	// manifest whose single tar+gzip layer holds plugin.wasm, annotated
	// module.wasm.image/variant=compat.
	FormatOCICompat Format = "oci-compat"
)

// Formats lists the supported formats, default first.
var Formats = []Format{FormatOCIWasm, FormatDocker, FormatOCICompat}

// ParseFormat returns the Format named s.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	names := make([]string, len(Formats))
	for i, f := range Formats {
		names[i] = string(f)
	}
	return "", fmt.Errorf("unknown wasm image format %q (want one of %s)", s, strings.Join(names, ", "))
}

// Labels and annotations put on every image this package builds.
const (
	annotationTitle       = "org.opencontainers.image.title"
	annotationDescription = "org.opencontainers.image.description"
	annotationSource      = "org.opencontainers.image.source"
	annotationLicenses    = "org.opencontainers.image.licenses"
	annotationRefName     = "org.opencontainers.image.ref.name"

	projectSource = "https://github.com/tracebridge/tracebridge"
	// runtimeConfigFileName is the title the runtime config layer carries in
	// the "oci" variant (solo-io/wasm spec/spec.md example).
	runtimeConfigFileName = "runtime-config.json"
)

func wasmAnnotations() map[string]string {
	return map[string]string{
		annotationTitle:       "tracebridge",
		annotationDescription: "tracebridge proxy-wasm module: trace context propagation repair for Envoy and Istio",
		annotationSource:      projectSource,
		annotationLicenses:    "Apache-2.0",
	}
}

// BuildWasm packages a proxy-wasm module in the given format. The result is
// reproducible: the same module and format always give the same manifest
// digest (no timestamps other than the Unix epoch are recorded).
func BuildWasm(wasm []byte, format Format) (v1.Image, error) {
	abis, err := inspectWasm(wasm)
	if err != nil {
		return nil, err
	}
	switch format {
	case FormatOCIWasm:
		return buildWasmArtifact(wasm, abis)
	case FormatDocker, FormatOCICompat:
		return buildWasmCompat(wasm, abis, format)
	default:
		return nil, fmt.Errorf("unknown wasm image format %q", format)
	}
}

// runtimeConfig is the runtime config document of the "oci" variant
// (solo-io/wasm tools/wasme/pkg/config/runtime.proto, JSON field names).
type runtimeConfig struct {
	Type        string            `json:"type"`
	ABIVersions []string          `json:"abiVersions,omitempty"`
	Config      runtimeEnvoyRoots `json:"config"`
}

type runtimeEnvoyRoots struct {
	RootIDs []string `json:"rootIds,omitempty"`
}

func buildWasmArtifact(wasm []byte, abis []string) (v1.Image, error) {
	cfg, err := json.Marshal(runtimeConfig{Type: "envoy_proxy", ABIVersions: abis})
	if err != nil {
		return nil, err
	}
	cfgLayer := static.NewLayer(cfg, types.MediaType(MediaTypeWasmConfig))
	wasmLayer := static.NewLayer(wasm, types.MediaType(MediaTypeWasmContent))

	cfgDesc, err := partial.Descriptor(cfgLayer)
	if err != nil {
		return nil, err
	}
	cfgLayerDesc := *cfgDesc
	cfgLayerDesc.Annotations = map[string]string{annotationTitle: runtimeConfigFileName}
	wasmDesc, err := partial.Descriptor(wasmLayer)
	if err != nil {
		return nil, err
	}
	wasmDesc.Annotations = map[string]string{annotationTitle: WasmPluginFileName}

	anns := wasmAnnotations()
	anns[annotationRuntimeType] = "envoy_proxy"
	if len(abis) > 0 {
		anns[annotationABIVersion] = strings.Join(abis, ",")
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        *cfgDesc,
		// Config layer first, module second, as wasme pushed them; the fetcher
		// looks the module layer up by media type, so the order is not load
		// bearing, but the count is.
		Layers:      []v1.Descriptor{cfgLayerDesc, *wasmDesc},
		Annotations: anns,
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	a := &artifactImage{
		manifest: raw,
		config:   cfg,
		layers: map[v1.Hash]v1.Layer{
			cfgDesc.Digest:  cfgLayer,
			wasmDesc.Digest: wasmLayer,
		},
	}
	return partial.CompressedToImage(a)
}

// artifactImage is an image whose manifest and config blob are written here
// byte for byte: go-containerregistry's mutate package always serialises an
// image config (v1.ConfigFile) as the config blob, which is not what the
// "oci" variant carries.
type artifactImage struct {
	manifest []byte
	config   []byte
	layers   map[v1.Hash]v1.Layer
}

func (a *artifactImage) RawConfigFile() ([]byte, error) { return a.config, nil }

func (a *artifactImage) MediaType() (types.MediaType, error) {
	return types.OCIManifestSchema1, nil
}

func (a *artifactImage) RawManifest() ([]byte, error) { return a.manifest, nil }

func (a *artifactImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if l, ok := a.layers[h]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("blob %s not in image", h)
}

func buildWasmCompat(wasm []byte, abis []string, format Format) (v1.Image, error) {
	layerType := types.DockerLayer
	if format == FormatOCICompat {
		layerType = types.OCILayer
	}
	layer, err := tarGzLayer([]tarFile{{name: WasmPluginFileName, mode: 0o444, data: wasm}}, layerType)
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer:     layer,
		MediaType: layerType,
		History:   v1.History{CreatedBy: "tracebridge image build --format " + string(format), Created: epoch},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	// The module targets wasm, not the host: GOOS/GOARCH of the build.
	cf.OS = "wasip1"
	cf.Architecture = "wasm"
	cf.Created = epoch
	cf.Config.Labels = wasmAnnotations()
	cf.Config.Labels[annotationRuntimeType] = "envoy_proxy"
	if len(abis) > 0 {
		cf.Config.Labels[annotationABIVersion] = strings.Join(abis, ",")
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	if format == FormatDocker {
		img = mutate.MediaType(img, types.DockerManifestSchema2)
		return mutate.ConfigMediaType(img, types.DockerConfigJSON), nil
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	anns := wasmAnnotations()
	anns[compatVariantAnnotation] = "compat"
	out, ok := mutate.Annotations(img, anns).(v1.Image)
	if !ok {
		return nil, errors.New("annotating image: unexpected type")
	}
	return out, nil
}

// inspectWasm checks that b is a well-formed wasm binary at the section level
// (magic, version 1, section sizes within bounds) and returns the proxy-wasm
// ABI versions it exports (proxy_abi_version_0_2_1 gives "v0.2.1"), sorted.
func inspectWasm(b []byte) ([]string, error) {
	if len(b) < 8 || !bytes.Equal(b[:4], wasmMagic) {
		return nil, errors.New("not a wasm module: missing the \\0asm magic")
	}
	if !bytes.Equal(b[4:8], []byte{1, 0, 0, 0}) {
		return nil, fmt.Errorf("unsupported wasm binary version % x", b[4:8])
	}
	var abis []string
	p := b[8:]
	for len(p) > 0 {
		id := p[0]
		size, n, err := uleb(p[1:])
		if err != nil {
			return nil, fmt.Errorf("wasm section header: %w", err)
		}
		p = p[1+n:]
		if uint64(len(p)) < size {
			return nil, fmt.Errorf("wasm section %d: size %d exceeds the remaining %d bytes", id, size, len(p))
		}
		body := p[:size]
		p = p[size:]
		if id != 7 { // export section
			continue
		}
		names, err := exportNames(body)
		if err != nil {
			return nil, fmt.Errorf("wasm export section: %w", err)
		}
		for _, name := range names {
			if v, ok := strings.CutPrefix(name, "proxy_abi_version_"); ok {
				abis = append(abis, "v"+strings.ReplaceAll(v, "_", "."))
			}
		}
	}
	sort.Strings(abis)
	return abis, nil
}

func exportNames(body []byte) ([]string, error) {
	count, n, err := uleb(body)
	if err != nil {
		return nil, err
	}
	body = body[n:]
	var names []string
	for i := uint64(0); i < count; i++ {
		l, n, err := uleb(body)
		if err != nil {
			return nil, err
		}
		body = body[n:]
		if uint64(len(body)) < l+1 {
			return nil, errors.New("export entry truncated")
		}
		names = append(names, string(body[:l]))
		body = body[l+1:] // name, then the kind byte
		if _, n, err = uleb(body); err != nil {
			return nil, err
		}
		body = body[n:]
	}
	return names, nil
}

// uleb decodes an unsigned LEB128 value of at most 32 bits (all the wasm
// binary format uses for sizes and counts) and returns it with its length.
func uleb(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < 5; i++ {
		if i >= len(b) {
			return 0, 0, errors.New("truncated LEB128 value")
		}
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, i + 1, nil
		}
	}
	return 0, 0, errors.New("LEB128 value longer than 5 bytes")
}
