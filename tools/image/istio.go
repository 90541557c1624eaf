package image

// What istio-agent's wasm image fetcher accepts. Read from istio/istio at
// commit 86c9f01fd735 (2026-08-22): pkg/wasm/imagefetcher.go, pkg/wasm/cache.go,
// pkg/wasm/convert.go, pkg/config/validation/validation.go and
// pilot/pkg/features/pilot.go; the layouts themselves are defined by the solo-io
// "Wasm image specification" (solo-io/wasm spec/spec.md for the "oci" variant,
// spec/spec-compat.md for the "compat" variant). Summary (own words):
//
//  1. The fetcher resolves the reference with go-containerregistry's remote.Get
//     and asks for an image (an index resolves to the platform's image). Before
//     downloading any layer it takes the image's manifest digest (hex, no
//     "sha256:" prefix) as the module checksum (imagefetcher.go PrepareFetch).
//  2. Manifest media type application/vnd.docker.distribution.manifest.v2+json:
//     the LAST layer must have media type
//     application/vnd.docker.image.rootfs.diff.tar.gzip; earlier layers are
//     ignored, zero layers is an error (extractDockerImage).
//  3. Any other manifest (OCI): first the "compat" rule — the LAST layer must be
//     application/vnd.oci.image.layer.v1.tar+gzip (extractOCIStandardImage);
//     failing that, the "oci" artifact rule — the manifest must list EXACTLY two
//     layers and one of them must have media type
//     application/vnd.module.wasm.content.layer.v1+wasm (extractOCIArtifactImage).
//     The other layer (by the spec the runtime config JSON,
//     application/vnd.module.wasm.config.v1+json) is not read; neither is the
//     manifest's config blob.
//  4. Compat layers are read as their compressed blob through gzip then tar
//     (uncompressed tar layers are rejected by the media type check). The first
//     tar entry whose base name (filepath.Base) is "plugin.wasm" is the module,
//     so "plugin.wasm" and "./plugin.wasm" both work (extractWasmPluginBinary).
//  5. The artifact's wasm layer is read raw, as the compressed blob, and never
//     gunzipped: it must be the plain .wasm bytes.
//  6. The binary is accepted if it is at least 8 bytes long and starts with the
//     wasm magic "\x00asm" (cache.go isValidWasmBinary). The tar stream or the
//     raw layer is cut at ISTIO_WASM_MAX_BINARY_SIZE_BYTES, default 256 MiB
//     (pilot/pkg/features/pilot.go).
//  7. Checksum: for oci:// URLs the expected value is the WasmPlugin `sha256`
//     field (convert.go passes RemoteDataSource.sha256 as GetOptions.Checksum);
//     if it is empty and the URL is pinned as repo@sha256:<hex>, that hex is
//     used. The expected value is compared with the manifest digest hex from (1)
//     and a mismatch fails the fetch (cache.go getOrFetch). For http(s):// URLs it
//     is the sha256 of the .wasm file instead. Validation requires the field to be
//     64 lower-case hex characters (validation.go: "must match [a-f0-9]{64}").
//  8. Plain http registries: if the https request fails with "server gave HTTP
//     response" the fetcher retries the reference as insecure (PrepareFetch).

// Media types and names taken from the sources above.
const (
	// MediaTypeWasmContent is the layer media type of the raw module in the
	// "oci" artifact variant.
	MediaTypeWasmContent = "application/vnd.module.wasm.content.layer.v1+wasm"
	// MediaTypeWasmConfig is the media type of the runtime config JSON in the
	// "oci" artifact variant (used for the manifest config and the second layer).
	MediaTypeWasmConfig = "application/vnd.module.wasm.config.v1+json"
	// WasmPluginFileName is the file the compat variants must carry in their
	// tar layer.
	WasmPluginFileName = "plugin.wasm"
	// artifactLayerCount is the exact number of layers the "oci" artifact
	// variant must have.
	artifactLayerCount = 2
	// compatVariantAnnotation is the manifest annotation spec-compat.md asks of
	// OCI compat images (the fetcher itself does not check it).
	compatVariantAnnotation = "module.wasm.image/variant"
)

// wasmMagic is the 4-byte preamble of every wasm module; the fetcher checks it
// and a minimum length of 8 bytes (magic plus version).
var wasmMagic = []byte{0x00, 'a', 's', 'm'}

// Manifest annotations the wasme tool put on "oci" artifacts (solo-io/wasm
// tools/wasme/pkg/push/push.go); kept for tools that display them.
const (
	annotationRuntimeType = "module.wasm.runtime/type"
	annotationABIVersion  = "module.wasm.runtime/abi_version"
)
