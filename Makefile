# imaforge: `make demo` and `make test` are the two commands a fresh Debian machine needs.
GO        ?= go
BIN       := bin/imaforge
PKG       := github.com/imaforge/imaforge
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
SHARED    ?= ../shared
GOTESTFLAGS ?= -count=1 -timeout 40m
# The bundled zstd library (cgo) compresses about 20% faster at -O3 than at
# cgo's default -O2 (scripts/bench-squashfs.sh, zstd level 15, large files).
export CGO_CFLAGS ?= -O3

.PHONY: all build test unit race acceptance e2e demo bench bench-quick fuzz lint deps clean release release-test

all: build

# The binary, its manual pages (bin/man/imaforge.1, imaforge-COMMAND.1) and
# shell completions (bin/completion/), generated from the command definitions;
# and bin/imaforge-serve, the same program with the signing service (relic's
# server links every relic token type, cloud KMS SDKs included: about 17 MB,
# so the build tool does not carry it; docs/service.md).
SERVE_TAGS := imaforge_serve
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/imaforge
	$(GO) build -trimpath -tags $(SERVE_TAGS) -ldflags '$(LDFLAGS)' -o bin/imaforge-serve ./cmd/imaforge
	$(BIN) man bin/man
	mkdir -p bin/completion
	$(BIN) completion bash > bin/completion/imaforge.bash
	$(BIN) completion zsh > bin/completion/_imaforge
	$(BIN) completion fish > bin/completion/imaforge.fish

deps:
	scripts/install-deps.sh

# The whole suite: peers installed, unit and peer tests, the kernel end to end,
# and the shared acceptance checks when ../shared is present.
test: deps build lint unit race e2e release-test acceptance

# IMAFORGE_TEST_HUGE: the reader's >4 GiB sparse-file test against mksquashfs.
# The service's tests (imaforge serve) need the imaforge_serve build.
unit:
	IMAFORGE_TEST_HUGE=1 $(GO) test $(GOTESTFLAGS) -tags $(SERVE_TAGS) ./...

# The race detector over the concurrent code, kept short: the worker pool,
# the squashfs writer's parallel data path, concurrent xattrs and the xattr
# table built during the data, batch signing, and whole builds (several
# workers, reproducible output).
RACE_RUN ?= TestForEach|TestReproducible|TestTreeReproducible|TestSetXattrsConcurrent|TestXattrTableAhead|TestDuplicatesStoredOnce|TestSignFilesParallel|TestBuildReproducible|TestPublishConcurrent|TestHashingReaderPooled|TestWindowWakesAdmitted|TestWindowWaitCancelled|TestSignPoolRemove|TestOutBuffersReused|TestCacheFull|TestSealReleasesEVM|TestSquashfsSealEarlyEVM|TestSignPoolLateFirst
race:
	$(GO) test -race -count=1 -run '$(RACE_RUN)' ./internal/parallel/ ./squashfs/ ./signer/ ./pipeline/

e2e: build
	scripts/kernel-e2e/run.sh

# Release artifacts in dist/ (docs/release.md): self-contained linux
# amd64/arm64 binaries, .debs, SHA256SUMS and a .sig of each, made with the
# Ed25519 key RELEASE_SIGNING_KEY names. release-test makes them with a
# throwaway key and installs the .deb in a clean Debian 12 chroot.
release:
	VERSION=$(VERSION) COMMIT=$(COMMIT) scripts/release.sh

# Both architectures: arm64 in a Debian 12 arm64 chroot under qemu-user
# (binfmt_misc); RELEASE_TEST_ARCHES=amd64 leaves it out.
RELEASE_TEST_ARCHES ?= amd64 arm64
release-test:
	RELEASE_ARCHES="$(RELEASE_TEST_ARCHES)" VERSION=$(VERSION) COMMIT=$(COMMIT) scripts/release-test.sh

acceptance: build
	scripts/acceptance.sh $(SHARED)

demo: deps build
	scripts/demo.sh

# Benchmarks, never timed assertions: Go Benchmark* functions, signing against
# evmctl and the HSM, tar; last scripts/bench.sh, every figure of issue 22
# (the build against the peer and the signing floor, squashfs pack against
# mksquashfs, a million files, incremental rebuilds, the signing service) in
# one table of ratios to the peer or limit measured in the same run, RUNS
# times (a column per run), also written to out/bench.json. bench-quick: that
# table only, on small trees (development). docs/bench.md: the parts, their
# cost, `scripts/bench-report.sh readme` for the README's table.
RUNS ?= 2
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 3x ./...
	scripts/bench-sign.sh
	scripts/bench-hsm.sh
	scripts/bench-tar.sh
	scripts/bench.sh --runs $(RUNS)

bench-quick: build
	scripts/bench.sh --quick

# Short fuzzing of every parser; crashers land in testdata/fuzz as regression cases.
FUZZTIME ?= 30s
fuzz:
	scripts/fuzz.sh $(FUZZTIME)

# staticcheck: scripts/install-deps.sh installs it (staticcheck.conf says
# which checks and why).
STATICCHECK ?= $(shell $(GO) env GOPATH)/bin/staticcheck
lint:
	$(GO) vet ./...
	$(GO) vet -tags $(SERVE_TAGS) ./cmd/imaforge/
	$(STATICCHECK) ./...
	$(STATICCHECK) -tags $(SERVE_TAGS) ./cmd/imaforge/
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

clean:
	rm -rf bin dist
