package image

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// startRegistry serves go-containerregistry's in-memory registry on
// 127.0.0.1 and returns its host:port. Loopback registries are spoken to over
// plain http by go-containerregistry, as by the Istio fetcher's fallback.
func startRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if u.Hostname() != "127.0.0.1" {
		t.Fatalf("registry listens on %s, want 127.0.0.1", u.Host)
	}
	return u.Host
}

// TestWasmRegistryRoundTrip pushes every format, pulls it back the way
// istio-agent does and checks what it would load and compare.
func TestWasmRegistryRoundTrip(t *testing.T) {
	host := startRegistry(t)
	modules := map[string][]byte{
		"header-only": wasmHeader,
		"fake":        fakeProxyWasm(t, "proxy_abi_version_0_2_1"),
	}
	for modName, module := range modules {
		for _, format := range Formats {
			t.Run(modName+"/"+string(format), func(t *testing.T) {
				img, err := BuildWasm(module, format)
				if err != nil {
					t.Fatal(err)
				}
				ref := host + "/tracebridge/wasm-" + modName + ":" + string(format)
				digest, err := Push(context.Background(), ref, img, PushOptions{})
				if err != nil {
					t.Fatal(err)
				}
				checkFetched(t, ref, format, module, digest)
				// A digest-pinned URL (oci://repo@sha256:...) resolves to the same.
				checkFetched(t, host+"/tracebridge/wasm-"+modName+"@"+digest.String(), format, module, digest)
			})
		}
	}
}

func checkFetched(t *testing.T, ref string, format Format, module []byte, digest v1.Hash) {
	t.Helper()
	f, err := istioFetch(ref)
	if err != nil {
		t.Fatalf("istio fetch of %s: %v", ref, err)
	}
	if f.variant != format {
		t.Errorf("%s accepted as %s, want %s", ref, f.variant, format)
	}
	if !bytes.Equal(f.wasm, module) {
		t.Errorf("%s: fetched %d bytes, want the %d module bytes", ref, len(f.wasm), len(module))
	}
	if f.checksum != digest.Hex {
		t.Errorf("%s: fetcher checksum %s, Push reported %s", ref, f.checksum, digest.Hex)
	}
	if !wasmPluginSHA256.MatchString(f.checksum) {
		t.Errorf("checksum %q would fail WasmPlugin validation", f.checksum)
	}
}

func TestRealWasmRegistryRoundTrip(t *testing.T) {
	module := realWasm(t)
	abis, err := inspectWasm(module)
	if err != nil {
		t.Fatal(err)
	}
	if len(abis) == 0 {
		t.Errorf("bin/tracebridge.wasm exports no proxy_abi_version_* marker")
	}
	host := startRegistry(t)
	for _, format := range Formats {
		t.Run(string(format), func(t *testing.T) {
			img, err := BuildWasm(module, format)
			if err != nil {
				t.Fatal(err)
			}
			ref := host + "/tracebridge/wasm:" + string(format)
			digest, err := Push(context.Background(), ref, img, PushOptions{})
			if err != nil {
				t.Fatal(err)
			}
			checkFetched(t, ref, format, module, digest)
		})
	}
}

func TestPushRejectsWrongPinnedDigest(t *testing.T) {
	host := startRegistry(t)
	img, err := BuildWasm(wasmHeader, FormatOCIWasm)
	if err != nil {
		t.Fatal(err)
	}
	other, err := BuildWasm(wasmHeader, FormatDocker)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := other.Digest()
	if _, err := Push(context.Background(), host+"/x@"+d.String(), img, PushOptions{}); err == nil {
		t.Fatal("Push to a reference pinning another digest succeeded")
	}
	good, _ := img.Digest()
	if _, err := Push(context.Background(), host+"/x@"+good.String(), img, PushOptions{}); err != nil {
		t.Fatalf("Push by its own digest: %v", err)
	}
}

// TestLayoutRoundTrip writes images into an OCI layout, reads them back and
// applies the Istio rules; a second write under the same tag replaces the
// first.
func TestLayoutRoundTrip(t *testing.T) {
	dir := t.TempDir()
	module := fakeProxyWasm(t, "proxy_abi_version_0_2_1")
	want := map[string]v1.Hash{}
	for _, format := range Formats {
		img, err := BuildWasm(module, format)
		if err != nil {
			t.Fatal(err)
		}
		d, err := WriteLayout(dir, img, string(format))
		if err != nil {
			t.Fatal(err)
		}
		want[string(format)] = d
	}
	// Overwrite the oci-wasm tag with a different module.
	img, err := BuildWasm(wasmHeader, FormatOCIWasm)
	if err != nil {
		t.Fatal(err)
	}
	d, err := WriteLayout(dir, img, string(FormatOCIWasm))
	if err != nil {
		t.Fatal(err)
	}
	want[string(FormatOCIWasm)] = d

	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != len(Formats) {
		t.Fatalf("index has %d manifests, want %d (one per tag)", len(im.Manifests), len(Formats))
	}
	for _, desc := range im.Manifests {
		tag := desc.Annotations[annotationRefName]
		if desc.Digest != want[tag] {
			t.Errorf("tag %q -> %s, want %s", tag, desc.Digest, want[tag])
		}
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		f, err := istioAccept(img)
		if err != nil {
			t.Fatalf("tag %q: %v", tag, err)
		}
		wantModule := module
		if tag == string(FormatOCIWasm) {
			wantModule = wasmHeader
		}
		if string(f.variant) != tag || !bytes.Equal(f.wasm, wantModule) {
			t.Errorf("tag %q: accepted as %s with %d bytes", tag, f.variant, len(f.wasm))
		}
	}
	if _, err := WriteLayout(t.TempDir(), img, ""); err == nil {
		t.Error("WriteLayout with an empty tag succeeded")
	}
}

func TestWriteLayoutRefusesForeignDir(t *testing.T) {
	dir := t.TempDir()
	if err := writeFile(dir+"/notes.txt", "not a layout"); err != nil {
		t.Fatal(err)
	}
	img, err := BuildWasm(wasmHeader, FormatDocker)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteLayout(dir, img, "latest"); err == nil {
		t.Fatal("WriteLayout into a non-empty, non-layout directory succeeded")
	}
}

// pull fetches ref as an image from the test registry.
func pull(t *testing.T, ref string) v1.Image {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
