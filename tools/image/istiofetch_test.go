package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// This file re-states, in test code, the acceptance rules of istio-agent's
// wasm image fetcher as documented in istio.go (istio/istio
// pkg/wasm/imagefetcher.go and pkg/wasm/cache.go). The tests run every image
// this package builds through it after a real registry round trip.

// fetched is what istio-agent would end up with.
type fetched struct {
	wasm     []byte
	variant  Format // which rule accepted the image
	checksum string // manifest digest hex: what WasmPlugin sha256 is compared with
}

// istioFetch resolves ref the way the fetcher does (remote.Get, then the
// image) and applies istioAccept.
func istioFetch(ref string) (fetched, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return fetched{}, err
	}
	desc, err := remote.Get(r)
	if err != nil {
		return fetched{}, fmt.Errorf("manifest: %w", err)
	}
	img, err := desc.Image()
	if err != nil {
		return fetched{}, fmt.Errorf("image: %w", err)
	}
	return istioAccept(img)
}

// istioAccept applies the fetcher's rules to img.
func istioAccept(img v1.Image) (fetched, error) {
	d, err := img.Digest()
	if err != nil {
		return fetched{}, err
	}
	f := fetched{checksum: d.Hex}
	m, err := img.Manifest()
	if err != nil {
		return fetched{}, err
	}
	layers, err := img.Layers()
	if err != nil {
		return fetched{}, err
	}
	if m.MediaType == types.DockerManifestSchema2 {
		// Docker manifests: only the last-layer tar.gzip rule is tried.
		f.wasm, err = compatRule(layers, types.DockerLayer)
		f.variant = FormatDocker
	} else {
		var errCompat, errArtifact error
		if f.wasm, errCompat = compatRule(layers, types.OCILayer); errCompat == nil {
			f.variant = FormatOCICompat
		} else if f.wasm, errArtifact = artifactRule(layers); errArtifact == nil {
			f.variant = FormatOCIWasm
		} else {
			err = fmt.Errorf("compat: %v; oci: %v", errCompat, errArtifact)
		}
	}
	if err != nil {
		return fetched{}, err
	}
	if len(f.wasm) < 8 || !bytes.Equal(f.wasm[:4], wasmMagic) {
		return fetched{}, errors.New("fetched binary is not wasm")
	}
	return f, nil
}

// compatRule: the last layer must have media type want; its compressed blob
// is gunzipped and untarred, and the first entry whose base name is
// plugin.wasm is the module.
func compatRule(layers []v1.Layer, want types.MediaType) ([]byte, error) {
	if len(layers) == 0 {
		return nil, errors.New("no layers")
	}
	last := layers[len(layers)-1]
	mt, err := last.MediaType()
	if err != nil {
		return nil, err
	}
	if mt != want {
		return nil, fmt.Errorf("last layer media type %s, want %s", mt, want)
	}
	rc, err := last.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	zr, err := gzip.NewReader(rc)
	if err != nil {
		return nil, fmt.Errorf("layer is not gzip: %w", err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, errors.New("no plugin.wasm in the layer")
		}
		if err != nil {
			return nil, err
		}
		if filepath.Base(h.Name) == WasmPluginFileName {
			return io.ReadAll(tr)
		}
	}
}

// artifactRule: exactly two layers, one with the wasm content media type,
// whose compressed blob is the module itself.
func artifactRule(layers []v1.Layer) ([]byte, error) {
	if len(layers) != artifactLayerCount {
		return nil, fmt.Errorf("%d layers, want exactly %d", len(layers), artifactLayerCount)
	}
	for _, l := range layers {
		mt, err := l.MediaType()
		if err != nil {
			return nil, err
		}
		if mt != MediaTypeWasmContent {
			continue
		}
		rc, err := l.Compressed()
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	return nil, errors.New("no layer of type " + MediaTypeWasmContent)
}

// wasmPluginSHA256 is the WasmPlugin sha256 field's validation rule.
var wasmPluginSHA256 = regexp.MustCompile(`^[a-f0-9]{64}$`)
