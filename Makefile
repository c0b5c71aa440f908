# haldir - see README.md. `make demo` and `make test` are the contract.
SHELL   := /bin/bash
VERSION := $(shell cat VERSION)
GO      ?= go
BIN     := bin/haldir
LDFLAGS := -s -w -X main.version=$(VERSION)
GOBIN   := $(CURDIR)/bin
STATICCHECK_VERSION := v0.8.2
NFPM_VERSION := v2.48.0
# The package release; the RPM's carries a %{?dist}-style tag after it
# (the binary is static: the tag only files the package in a dist's
# repository; RPM_DIST=.el8 for an EL8 one).
RELEASE := 1
RPM_DIST ?= .el9
RPM := dist/haldir-$(VERSION)-$(RELEASE)$(RPM_DIST).x86_64.rpm
DEB := dist/haldir_$(VERSION)-$(RELEASE)_amd64.deb

.PHONY: all build test deps lint bench rpm deb nfpm pkgfiles man fuzz demo demo-bgp soak vm-kernel clean

all: build

# A static binary: CentOS/RHEL directors need not share this machine's glibc,
# and the VM lab's initramfs has no libc at all.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/haldir

# One run, three tiers (README "Tests"): unit tests always; namespace tests
# when root (they skip with a message otherwise); VM tests whenever qemu and
# the lab kernel are present (`make vm-kernel`; HALDIR_LAB=vm turns their
# absence into a failure, as CI does). The race detector is on throughout:
# the VM lab copies the test binary into the guest with its libraries.
# The RPM and the .deb are built first so their tests inspect the real
# packages. As root,
# `make deps` first installs what the tiers need (apt packages, the lab
# kernel), so on a fresh Debian machine `make test` is the whole set-up.
test: deps rpm deb
	HALDIR_REQUIRE_RPM=1 $(GO) test -race -count=1 -timeout 18m ./...

# What the namespace and VM tiers need (lab/install-deps.sh): installed when
# root, skipped with a message otherwise.
deps:
	@GO=$(GO) lab/install-deps.sh

# The Debian kernel the VM lab boots, downloaded once into the cache.
vm-kernel:
	$(GO) run ./lab/cmd/vmkernel fetch

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@test -x $(GOBIN)/staticcheck || GOBIN=$(GOBIN) GOFLAGS= $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(GOBIN)/staticcheck ./...

# Both packages come from packaging/nfpm.yaml. nfpm is installed into bin/
# at the pinned version (an older one there is replaced).
nfpm:
	@$(GO) version -m $(GOBIN)/nfpm 2>/dev/null | grep -q 'mod.*nfpm/v2.*$(NFPM_VERSION)' || GOBIN=$(GOBIN) GOFLAGS= $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)

# What the packages hold beyond the repository's files: the man pages
# gzip-compressed (-n: no timestamp, so a rebuild is byte-identical) and
# the completion scripts the binary prints.
pkgfiles: build
	@mkdir -p dist/pkg
	gzip -9nc docs/man/haldir.8 >dist/pkg/haldir.8.gz
	gzip -9nc docs/man/haldir.toml.5 >dist/pkg/haldir.toml.5.gz
	$(BIN) completion bash >dist/pkg/haldir.bash
	$(BIN) completion zsh >dist/pkg/_haldir

# docs/man is generated from the command table (cmd/haldir/commands.go) and
# docs/config.md; this rewrites it after either changed (TestManPages fails
# until it is).
man:
	HALDIR_UPDATE_MAN=1 $(GO) test -count=1 -run '^TestManPages$$' ./cmd/haldir

rpm: build nfpm pkgfiles
	@mkdir -p dist
	HALDIR_VERSION=$(VERSION) HALDIR_RELEASE=$(RELEASE)$(RPM_DIST) $(GOBIN)/nfpm package --config packaging/nfpm.yaml --packager rpm --target $(RPM)

deb: build nfpm pkgfiles
	@mkdir -p dist
	HALDIR_VERSION=$(VERSION) HALDIR_RELEASE=$(RELEASE) $(GOBIN)/nfpm package --config packaging/nfpm.yaml --packager deb --target $(DEB)

# A short smoke run of every fuzz target (FUZZTIME each).
FUZZTIME ?= 10s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# The README's first command: the standard lab (two directors, three real
# servers, a client) with haldir at work, in the VM when the host kernel has
# no IPVS; it installs qemu and fetches the lab kernel when missing.
demo:
	$(GO) run ./lab/cmd/demo

# The BGP mode: three active directors behind an FRR router with ECMP and
# BFD, haldir announcing the VIP from each (routes, spread, a lost quorum,
# maintenance and a killed director under long-lived connections), in the
# VM when the host kernel has no IPVS; needs frr (make deps).
demo-bgp:
	$(GO) run ./lab/cmd/demo -bgp

# The chaos soak (README "Soak"): the director pair (SOAK_MODE=pair) or
# three BGP directors (SOAK_MODE=bgp, needs frr: make deps) under client
# load and a seeded random fault schedule, every invariant checked all the
# time; the report goes to stdout and soak-report.json, the exit status is
# non-zero on any violation. SOAK_SEED replays a run, SOAK_KINDS (e.g.
# mem-pressure,pause) keeps to those fault kinds; `make test` runs a short
# one of each mode.
SOAK_MODE ?= pair
SOAK_DURATION ?= 30m
SOAK_SEED ?= 0
SOAK_KINDS ?=
soak:
	$(GO) run ./lab/cmd/soak -mode $(SOAK_MODE) -duration $(SOAK_DURATION) -seed $(SOAK_SEED) $(if $(SOAK_KINDS),-kinds $(SOAK_KINDS)) -json soak-report.json

# Benchmarks print tables side by side with the reference in the same run
# (about 25 minutes, root): VRRP failover against keepalived at 1s, 100ms
# and 10ms (HALDIR_BENCH_INTERVALS/ROUNDS narrow it); health checks at
# 1k/10k targets against bare system calls (BENCHTIME per scenario), and
# side by side with keepalived's checker in the VM lab at 200-1000 targets
# (20 s per scenario); the director against ipvsadm-restore in the VM lab; the BGP mode's drills
# (300 long-lived connections through maintenance and a SIGKILL of a
# director, mh and rr each with and without N-way sync; 3,000 new flows' spread)
# in the VM lab.
BENCHTIME ?= 60s
bench:
	$(GO) test -run '^$$' -bench 'Failover|Handoff' -benchtime 1x -timeout 40m ./bench/vrrp/failover/
	CGO_ENABLED=0 $(GO) run ./bench/healthcheck -duration $(BENCHTIME)
	CGO_ENABLED=0 $(GO) run ./bench/healthcheck -keepalived -scenarios http-200,http-500,tcp-200,tcp-1k,tcp-1500
	HALDIR_OVERLOAD_DURATION=60s $(GO) test -count=1 -v -run '^TestOverloadNoFalseDowns$$' ./healthcheck/ | grep -E 'overload_test|^(ok|FAIL|---)'
	$(GO) run ./bench/director
	HALDIR_BGP_BENCH=1 $(GO) test -count=1 -v -run '^TestBGPBench$$' -timeout 40m ./lab/bgpha/ | sed -E 's/^ +[a-z_]+\.go:[0-9]+: //' | grep -vE '^(=== RUN|--- |PASS|ok )'

clean:
	rm -rf bin dist
