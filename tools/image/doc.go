// Package image builds the two container artifacts tracebridge ships, without a
// Docker engine, using go-containerregistry:
//
//   - the proxy-wasm module, packaged so that istio-agent's wasm image fetcher
//     accepts it (BuildWasm), in one of the layouts that fetcher understands;
//   - a minimal image for the ext_proc service (BuildExtproc): one layer holding
//     the static binary, no shell, a non-root user.
//
// Images can be written to an OCI image layout directory (WriteLayout) or pushed
// to a registry (Push). Both report the manifest digest. For an oci:// WasmPlugin
// (or TrafficExtension) URL, istio-agent compares the WasmPlugin `sha256` field
// with the hex of the image *manifest* digest, not with a digest of the .wasm
// file, so that is the value to put there (see istio.go for the sources).
//
// RunImageCommand implements the `tracebridge image ...` sub-commands on top of
// these functions; the tracebridge command dispatches to it.
package image
