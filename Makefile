# tracebridge: every target installs what it needs from the project's own files
# (Go modules through the module proxy, Debian packages through apt-get).
GO        ?= go
BIN       := $(CURDIR)/bin
GOFLAGS   ?=
export GOFLAGS

.PHONY: all build wasm extproc image test test-deps istiocheck bench bench-extproc lint demo clean

all: build

# Pinned build and test tools (Jaeger v2, staticcheck, kubeconform, ghz, hey),
# built from buildtools/go.mod into bin/tools/ and cached.
include buildtools/Makefile

build: wasm extproc
	$(GO) build -o $(BIN)/ ./tools/tracebridge

# The proxy-wasm module, built with the standard Go compiler (see wasm-filter/README.md).
wasm:
	@mkdir -p $(BIN)
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -trimpath -ldflags='-s -w' \
		-o $(BIN)/tracebridge.wasm ./wasm-filter

# The ext_proc service, static so that it runs in the distroless-style image.
# The vtprotobuf tag compiles go-control-plane's generated marshallers, which
# extproc's codec uses for the replies (extproc/codec/codec.go).
extproc:
	CGO_ENABLED=0 $(GO) build -trimpath -tags vtprotobuf -o $(BIN)/tracebridge-extproc ./extproc/cmd/tracebridge-extproc

# Container images without a Docker engine: the wasm module (oci-wasm format,
# what istio-agent pulls) and the ext_proc service, as OCI layouts in bin/oci/.
# Push with: bin/tracebridge image build --wasm bin/tracebridge.wasm --push REF
image: build
	$(BIN)/tracebridge image build --wasm $(BIN)/tracebridge.wasm --out $(BIN)/oci/wasm
	$(BIN)/tracebridge image extproc --binary $(BIN)/tracebridge-extproc --out $(BIN)/oci/extproc

# The system packages the tests need, from Debian when missing: redis-server
# for the Redis-backed tests (tests never install anything; one that finds no
# redis-server fails and names this target).
APT_GET := DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -q
test-deps:
	@command -v redis-server >/dev/null 2>&1 || test -x /usr/bin/redis-server || \
		$(APT_GET) install -y --no-install-recommends redis-server || \
		{ $(APT_GET) update && $(APT_GET) install -y --no-install-recommends redis-server; }

# Every test the project has, slow ones included (real Jaeger, Redis, the
# compiled module, subprocess signal tests). .ci/run calls this. The tools are
# built first so that no test spends its timeout compiling Jaeger.
test: build tools test-deps istiocheck
	$(GO) vet ./...
	$(GO) vet -tags vtprotobuf ./extproc/...
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -count=1 -race -timeout 30m ./engine/... ./e2e/sim/envoysim/...
	# The shipped binary is built with vtprotobuf (make extproc): its codec
	# path runs here, under the race detector.
	$(GO) test -count=1 -race -timeout 30m -tags vtprotobuf ./extproc/...
	# The load generator of bench-extproc is a module of its own (benchtools/).
	cd benchtools && $(GO) vet -tags vtprotobuf ./... && $(GO) test -count=1 -race -tags vtprotobuf ./...

# The Istio render check (istiocheck/README.md): every overlay of
# manifests/istio through pilot's xDS generation and istio-agent's wasm
# conversion. A module of its own, so that istio.io/istio stays out of the
# main go.mod; Go's build and test caches make a warm run take seconds (the
# cold build of istio.io/istio takes most of .ci/run's time).
istiocheck:
	cd istiocheck && GOWORK=off $(GO) vet ./... && GOWORK=off $(GO) test -timeout 60m ./...

# Engine benchmarks side by side with the OpenTelemetry-Go baseline.
bench:
	@mkdir -p $(BIN)
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./engine/ | tee $(BIN)/bench-engine.txt

# Load benchmark: tracebridge-extproc against two no-op ext_proc servers (gRPC's
# codec, tracebridge's codec), same run. The load generator is its own module
# (benchtools/), so that its HTTP/2 and epoll code stays out of the product's
# dependencies. BENCH_ARGS adds flags (e.g. BENCH_ARGS='-duration 2s').
BENCH_ARGS ?=
bench-extproc: extproc
	cd benchtools && $(GO) run -tags vtprotobuf ./extproc -bin $(BIN)/tracebridge-extproc -duration 10s -out $(BIN)/bench-extproc.md $(BENCH_ARGS)

lint: tool-staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(BIN)/tools/staticcheck ./...
	$(BIN)/tools/staticcheck -tags vtprotobuf ./extproc/...
	cd benchtools && $(GO) vet -tags vtprotobuf ./... && $(BIN)/tools/staticcheck -tags vtprotobuf ./...
	GOOS=wasip1 GOARCH=wasm $(BIN)/tools/staticcheck ./wasm-filter/... ./engine/...

# The main job: a bookinfo-shaped mesh on 127.0.0.1, traces without and with
# tracebridge. JAEGER=1 uses real Jaeger v2 (built by buildtools) instead of
# the embedded span sink.
demo: build $(if $(filter 1,$(JAEGER)),tool-jaeger)
	TRACEBRIDGE_EXTPROC_BIN=$(BIN)/tracebridge-extproc $(BIN)/tracebridge demo $(if $(filter 1,$(JAEGER)),--jaeger --hold=false)

clean:
	rm -rf $(BIN)
