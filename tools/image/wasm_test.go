package image

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/tetratelabs/wazero"
)

// wasmHeader is the 8-byte preamble of a wasm version 1 module: on its own,
// a valid empty module.
var wasmHeader = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// fakeProxyWasm is a small but complete wasm module: one function of type
// () -> () with an empty body, exported under the proxy-wasm ABI marker name.
func fakeProxyWasm(t testing.TB, exports ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	b.Write(wasmHeader)
	section := func(id byte, body []byte) {
		b.WriteByte(id)
		b.WriteByte(byte(len(body))) // bodies here stay below 128 bytes
		b.Write(body)
	}
	section(1, []byte{0x01, 0x60, 0x00, 0x00}) // type: one func type () -> ()
	section(3, []byte{0x01, 0x00})             // function: one func of type 0
	exp := []byte{byte(len(exports))}
	for _, e := range exports {
		exp = append(exp, byte(len(e)))
		exp = append(exp, e...)
		exp = append(exp, 0x00, 0x00) // kind func, index 0
	}
	section(7, exp)
	section(10, []byte{0x01, 0x02, 0x00, 0x0b}) // code: one body, no locals, end
	if b.Len() > 200 {
		t.Fatalf("fake module too large for one-byte section sizes")
	}
	return b.Bytes()
}

func TestInspectWasm(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    []string
		wantErr string
	}{
		{name: "empty module", in: wasmHeader},
		{name: "proxy-wasm exports", in: fakeProxyWasm(t, "proxy_on_memory_allocate", "proxy_abi_version_0_2_1"), want: []string{"v0.2.1"}},
		{name: "two abi markers sorted", in: fakeProxyWasm(t, "proxy_abi_version_0_2_1", "proxy_abi_version_0_1_0"), want: []string{"v0.1.0", "v0.2.1"}},
		{name: "too short", in: wasmHeader[:7], wantErr: "magic"},
		{name: "not wasm", in: []byte("\x7fELF\x02\x01\x01\x00"), wantErr: "magic"},
		{name: "version 2", in: []byte{0x00, 'a', 's', 'm', 0x02, 0x00, 0x00, 0x00}, wantErr: "version"},
		{name: "section overruns", in: append(append([]byte{}, wasmHeader...), 0x00, 0x10, 0x01), wantErr: "exceeds"},
		{name: "truncated leb", in: append(append([]byte{}, wasmHeader...), 0x00, 0x80), wantErr: "truncated"},
		{name: "bad export section", in: append(append([]byte{}, wasmHeader...), 0x07, 0x02, 0x01, 0x05), wantErr: "export"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := inspectWasm(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("inspectWasm() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("inspectWasm(): %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("abis = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseFormat(t *testing.T) {
	for _, f := range Formats {
		got, err := ParseFormat(string(f))
		if err != nil || got != f {
			t.Errorf("ParseFormat(%q) = %q, %v", f, got, err)
		}
	}
	if _, err := ParseFormat("wasm"); err == nil {
		t.Error("ParseFormat(\"wasm\") succeeded")
	}
}

// TestBuildWasmShape checks each format's manifest, config and layers
// against what the format promises, then runs the in-memory image through
// the Istio acceptance rules.
func TestBuildWasmShape(t *testing.T) {
	module := fakeProxyWasm(t, "proxy_abi_version_0_2_1")
	tests := []struct {
		format          Format
		manifestType    types.MediaType
		configType      types.MediaType
		layerTypes      []types.MediaType
		manifestAnns    map[string]string // subset that must be present
		wantConfigLabel bool
	}{
		{
			format:       FormatOCIWasm,
			manifestType: types.OCIManifestSchema1,
			configType:   MediaTypeWasmConfig,
			layerTypes:   []types.MediaType{MediaTypeWasmConfig, MediaTypeWasmContent},
			manifestAnns: map[string]string{annotationRuntimeType: "envoy_proxy", annotationABIVersion: "v0.2.1", annotationSource: projectSource},
		},
		{
			format:          FormatDocker,
			manifestType:    types.DockerManifestSchema2,
			configType:      types.DockerConfigJSON,
			layerTypes:      []types.MediaType{types.DockerLayer},
			wantConfigLabel: true,
		},
		{
			format:          FormatOCICompat,
			manifestType:    types.OCIManifestSchema1,
			configType:      types.OCIConfigJSON,
			layerTypes:      []types.MediaType{types.OCILayer},
			manifestAnns:    map[string]string{compatVariantAnnotation: "compat"},
			wantConfigLabel: true,
		},
	}
	for _, tt := range tests {
		t.Run(string(tt.format), func(t *testing.T) {
			img, err := BuildWasm(module, tt.format)
			if err != nil {
				t.Fatal(err)
			}
			m, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			if m.MediaType != tt.manifestType {
				t.Errorf("manifest media type %s, want %s", m.MediaType, tt.manifestType)
			}
			if mt, _ := img.MediaType(); mt != tt.manifestType {
				t.Errorf("image media type %s, want %s", mt, tt.manifestType)
			}
			if m.Config.MediaType != tt.configType {
				t.Errorf("config media type %s, want %s", m.Config.MediaType, tt.configType)
			}
			var got []types.MediaType
			for _, l := range m.Layers {
				got = append(got, l.MediaType)
			}
			if !reflect.DeepEqual(got, tt.layerTypes) {
				t.Errorf("layer media types %v, want %v", got, tt.layerTypes)
			}
			for k, v := range tt.manifestAnns {
				if m.Annotations[k] != v {
					t.Errorf("manifest annotation %s = %q, want %q", k, m.Annotations[k], v)
				}
			}
			if tt.wantConfigLabel {
				cf, err := img.ConfigFile()
				if err != nil {
					t.Fatal(err)
				}
				if cf.Config.Labels[annotationRuntimeType] != "envoy_proxy" || cf.OS != "wasip1" || cf.Architecture != "wasm" {
					t.Errorf("config labels %v os %q arch %q", cf.Config.Labels, cf.OS, cf.Architecture)
				}
			}
			f, err := istioAccept(img)
			if err != nil {
				t.Fatalf("Istio rules reject the image: %v", err)
			}
			if f.variant != tt.format {
				t.Errorf("accepted as %s, want %s", f.variant, tt.format)
			}
			if !bytes.Equal(f.wasm, module) {
				t.Errorf("extracted %d bytes, not the module's %d", len(f.wasm), len(module))
			}
			again, err := BuildWasm(module, tt.format)
			if err != nil {
				t.Fatal(err)
			}
			d1, _ := img.Digest()
			d2, _ := again.Digest()
			if d1 != d2 {
				t.Errorf("not reproducible: %s then %s", d1, d2)
			}
		})
	}
}

func TestBuildWasmArtifactConfig(t *testing.T) {
	img, err := BuildWasm(fakeProxyWasm(t, "proxy_abi_version_0_2_1"), FormatOCIWasm)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var rc struct {
		Type        string   `json:"type"`
		ABIVersions []string `json:"abiVersions"`
	}
	if err := json.Unmarshal(raw, &rc); err != nil {
		t.Fatal(err)
	}
	if rc.Type != "envoy_proxy" || !reflect.DeepEqual(rc.ABIVersions, []string{"v0.2.1"}) {
		t.Errorf("runtime config %s", raw)
	}
	m, _ := img.Manifest()
	if m.Config.Digest != m.Layers[0].Digest {
		t.Errorf("manifest config %s is not the runtime config layer %s", m.Config.Digest, m.Layers[0].Digest)
	}
	if m.Layers[0].Annotations[annotationTitle] != runtimeConfigFileName || m.Layers[1].Annotations[annotationTitle] != WasmPluginFileName {
		t.Errorf("layer titles %v %v", m.Layers[0].Annotations, m.Layers[1].Annotations)
	}
}

func TestBuildWasmRejects(t *testing.T) {
	tests := []struct {
		name   string
		wasm   []byte
		format Format
	}{
		{"not wasm", []byte("#!/bin/sh\necho hi\n"), FormatOCIWasm},
		{"empty", nil, FormatDocker},
		{"unknown format", wasmHeader, Format("zip")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := BuildWasm(tt.wasm, tt.format); err == nil {
				t.Fatal("BuildWasm succeeded")
			}
		})
	}
}

// tarGzOf builds a tar+gzip layer for the rule tests below.
func tarGzOf(t *testing.T, mt types.MediaType, files ...tarFile) v1.Layer {
	t.Helper()
	l, err := tarGzLayer(files, mt)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestIstioRules makes sure the mirrored rules reject what the fetcher
// rejects, so that their acceptance of our images means something.
func TestIstioRules(t *testing.T) {
	module := fakeProxyWasm(t, "proxy_abi_version_0_2_1")
	wasmLayer := static.NewLayer(module, MediaTypeWasmContent)
	cfgLayer := static.NewLayer([]byte(`{"type":"envoy_proxy"}`), MediaTypeWasmConfig)
	plugin := tarFile{name: "plugin.wasm", mode: 0o444, data: module}
	build := func(mt types.MediaType, layers ...v1.Layer) v1.Image {
		img := empty.Image
		for _, l := range layers {
			var err error
			if img, err = mutate.AppendLayers(img, l); err != nil {
				t.Fatal(err)
			}
		}
		return mutate.MediaType(img, mt)
	}
	tests := []struct {
		name    string
		img     v1.Image
		variant Format // empty: must be rejected
	}{
		{"artifact", build(types.OCIManifestSchema1, cfgLayer, wasmLayer), FormatOCIWasm},
		{"artifact, wasm layer first", build(types.OCIManifestSchema1, wasmLayer, cfgLayer), FormatOCIWasm},
		{"artifact with one layer", build(types.OCIManifestSchema1, wasmLayer), ""},
		{"artifact with three layers", build(types.OCIManifestSchema1, cfgLayer, wasmLayer, cfgLayer), ""},
		{"artifact without wasm layer", build(types.OCIManifestSchema1, cfgLayer, cfgLayer), ""},
		{"artifact in a docker manifest", build(types.DockerManifestSchema2, cfgLayer, wasmLayer), ""},
		{"docker", build(types.DockerManifestSchema2, tarGzOf(t, types.DockerLayer, plugin)), FormatDocker},
		{"docker, ./plugin.wasm in a later layer", build(types.DockerManifestSchema2,
			tarGzOf(t, types.DockerLayer, tarFile{name: "etc/x", data: []byte("x")}),
			tarGzOf(t, types.DockerLayer, tarFile{name: "./plugin.wasm", data: module})), FormatDocker},
		{"docker, plugin.wasm only in an earlier layer", build(types.DockerManifestSchema2,
			tarGzOf(t, types.DockerLayer, plugin),
			tarGzOf(t, types.DockerLayer, tarFile{name: "other", data: []byte("x")})), ""},
		{"docker, wrong file name", build(types.DockerManifestSchema2, tarGzOf(t, types.DockerLayer, tarFile{name: "filter.wasm", data: module})), ""},
		{"docker manifest with OCI layer", build(types.DockerManifestSchema2, tarGzOf(t, types.OCILayer, plugin)), ""},
		{"oci compat", build(types.OCIManifestSchema1, tarGzOf(t, types.OCILayer, plugin)), FormatOCICompat},
		{"oci manifest with docker layer", build(types.OCIManifestSchema1, tarGzOf(t, types.DockerLayer, plugin)), ""},
		{"uncompressed tar layer", build(types.OCIManifestSchema1, static.NewLayer(mustUncompressed(t, tarGzOf(t, types.OCILayer, plugin)), types.OCIUncompressedLayer)), ""},
		{"not wasm inside", build(types.OCIManifestSchema1, tarGzOf(t, types.OCILayer, tarFile{name: "plugin.wasm", data: []byte("hello, world")})), ""},
		{"no layers", build(types.OCIManifestSchema1), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := istioAccept(tt.img)
			if tt.variant == "" {
				if err == nil {
					t.Fatalf("accepted as %s, want rejection", f.variant)
				}
				return
			}
			if err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if f.variant != tt.variant || !bytes.Equal(f.wasm, module) {
				t.Fatalf("accepted as %s with %d bytes, want %s with the module", f.variant, len(f.wasm), tt.variant)
			}
		})
	}
}

func mustUncompressed(t *testing.T, l v1.Layer) []byte {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// realWasm returns the module `make wasm` builds, or skips.
func realWasm(t *testing.T) []byte {
	t.Helper()
	p := filepath.Join("..", "..", "bin", "tracebridge.wasm")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Skipf("%s not available (run `make wasm` first): %v", p, err)
	}
	return b
}

// TestFakeModuleIsValidWasm keeps the test module honest: a real wasm
// runtime must compile it.
func TestFakeModuleIsValidWasm(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	for _, m := range [][]byte{wasmHeader, fakeProxyWasm(t, "proxy_abi_version_0_2_1", "proxy_on_context_create")} {
		cm, err := r.CompileModule(ctx, m)
		if err != nil {
			t.Fatalf("wazero rejects the test module: %v", err)
		}
		cm.Close(ctx)
	}
}
