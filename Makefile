# tracebridge: every target installs what it needs from the project's own files
# (Go modules through the module proxy, Debian packages through apt-get).
GO        ?= go
BIN       := $(CURDIR)/bin
GOFLAGS   ?=
export GOFLAGS

.PHONY: all build wasm extproc image test bench lint demo clean

all: build

build: wasm extproc
	$(GO) build -o $(BIN)/ ./tools/tracebridge

# The ext_proc service, static so that it runs in the distroless-style image.
extproc:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/tracebridge-extproc ./extproc/cmd/tracebridge-extproc

# Container images without a Docker engine: the wasm module (oci-wasm format,
# what istio-agent pulls) and the ext_proc service, as OCI layouts in bin/oci/.
# Push with: bin/tracebridge image build --wasm bin/tracebridge.wasm --push REF
image: build
	$(BIN)/tracebridge image build --wasm $(BIN)/tracebridge.wasm --out $(BIN)/oci/wasm
	$(BIN)/tracebridge image extproc --binary $(BIN)/tracebridge-extproc --out $(BIN)/oci/extproc

# The proxy-wasm module, built with the standard Go compiler (see wasm-filter/README.md).
wasm:
	@mkdir -p $(BIN)
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -trimpath -ldflags='-s -w' \
		-o $(BIN)/tracebridge.wasm ./wasm-filter

# Every test the project has, slow ones included. .ci/run calls this.
test: build
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 45m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./engine/ | tee $(BIN)/bench-engine.txt

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

demo:
	@echo "make demo: not yet — the end-to-end demo lands with the e2e issue."

clean:
	rm -rf $(BIN)
