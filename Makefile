# haldir - see README.md. `make demo` and `make test` are the contract.
SHELL   := /bin/bash
VERSION := $(shell cat VERSION)
GO      ?= go
BIN     := bin/haldir
LDFLAGS := -s -w -X main.version=$(VERSION)
GOBIN   := $(CURDIR)/bin
STATICCHECK_VERSION := v0.8.2
NFPM_VERSION := v2.44.0

.PHONY: all build test test-unit test-vm lint bench rpm fuzz demo vm-kernel clean

all: build

# A static binary: CentOS/RHEL directors need not share this machine's glibc,
# and the VM lab's initramfs has no libc at all.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/haldir

# Three tiers (README "Tests"): unit tests with the race detector (namespace
# tests run too when root, and skip with a message otherwise), the RPM checks,
# then the VM tier, which needs real IPVS and so boots a VM.
test: test-unit rpm test-rpm test-vm

test-unit:
	$(GO) test -race -count=1 -skip '^TestVM' -timeout 15m ./...

test-rpm:
	HALDIR_REQUIRE_RPM=1 $(GO) test -count=1 ./packaging/

# Test binaries for the VM are static (no -race: it needs cgo and libc).
test-vm:
	CGO_ENABLED=0 $(GO) test -count=1 -run '^TestVM' -timeout 15m ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@test -x $(GOBIN)/staticcheck || GOBIN=$(GOBIN) GOFLAGS= $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(GOBIN)/staticcheck ./...

rpm: build
	@test -x $(GOBIN)/nfpm || GOBIN=$(GOBIN) GOFLAGS= $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
	@mkdir -p dist
	HALDIR_VERSION=$(VERSION) HALDIR_BINARY=$(BIN) $(GOBIN)/nfpm package --config packaging/nfpm.yaml --packager rpm --target dist/haldir-$(VERSION)-1.x86_64.rpm

# A short smoke run of every fuzz target (FUZZTIME each).
FUZZTIME ?= 10s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

clean:
	rm -rf bin dist
