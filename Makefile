# mossaicfs — build, test and try it on a fresh Debian 12 machine.
#
#   make run    installs what is missing, builds, formats a local store and mounts it
#   make test   installs what is missing, builds, runs the Swift tests and the mounted tests
#   make fuzz   the differential random-operation tester, longer: make fuzz OPS=100000 SEED=7 FUZZ_STORE=s3
#
# Everything runs as root (FUSE mounts, apt-get); SUDO is prepended when you are not root.

SHELL := /bin/bash
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CONFIG ?= release
BIN := .build/$(CONFIG)/mossaicfs
PYTHON ?= python3
APT_PACKAGES := fuse3 libfuse3-dev libsqlite3-dev libssl-dev libcurl4-openssl-dev libzstd-dev libpq-dev postgresql pkg-config attr rsync git lintian iproute2 util-linux
PIP_PACKAGES := moto[server] pytest boto3 crc32c

# Where `make run` keeps its demo filesystem.
STORE ?= /var/lib/mossaicfs/demo
MOUNTPOINT ?= /mnt/mossaicfs

# The differential tester: operations per store in `make test` (local and S3, so twice this),
# and the knobs of `make fuzz` (FUZZ_STORE=local, s3 or both; EXCLUDE=op,op skips operations).
FSRAND_OPS ?= 20000
OPS ?= 20000
SEED ?= $(shell date +%s)
FUZZ_STORE ?= local
EXCLUDE ?=

.PHONY: all deps build deb test test-swift test-e2e test-e2e-sealed test-postgres fuzz run stop clean

# The package's binary links the Swift runtime statically, so it needs only Debian's libraries;
# it is built in a scratch path of its own, which later builds reuse (SwiftPM rebuilds what
# changed; build-deb.sh repackages only when an input is newer than the .deb). Linked with
# -z now (with relro, the default: a read-only GOT), as Debian's hardening asks.
STATIC_BUILD := .build-static
STATIC_FLAGS := --static-swift-stdlib --scratch-path $(STATIC_BUILD) -Xlinker -z -Xlinker now

all: build

# System libraries and the test S3 server; each step is skipped when already there.
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@$(PYTHON) -c 'import moto, pytest, boto3, flask, crc32c' 2>/dev/null && command -v moto_server >/dev/null || \
	  $(PYTHON) -m pip install -q $(PIP_PACKAGES)
	@[ -e /dev/fuse ] || { echo "/dev/fuse is missing: load the fuse module (modprobe fuse)"; exit 1; }

build: deps
	swift build -c $(CONFIG)

# Prints the package's path last (Tests/e2e/test_package.py runs this).
deb: deps
	swift build -c release $(STATIC_FLAGS)
	@packaging/build-deb.sh $(STATIC_BUILD)/release/mossaicfs

# The package is not a prerequisite: test_package.py runs `make deb` itself (cached, see above).
test: build test-swift test-e2e test-e2e-sealed test-postgres

test-swift:
	swift test -c $(CONFIG)

# Mounted tests: real FUSE mounts of the built binary, on local stores and on moto; includes the
# POSIX conformance suite (Tests/e2e/posix) and a bounded run of the differential tester.
test-e2e:
	MOSSAICFS_BIN=$(CURDIR)/$(BIN) FSRAND_OPS=$(FSRAND_OPS) $(PYTHON) -m pytest -p no:cacheprovider -q Tests/e2e

# The matrix row of compressed, encrypted filesystems: the crash, fault and POSIX suites again,
# every filesystem they make formatted with `--compress zstd --encrypt` (the passphrase comes
# from MOSSAICFS_PASSPHRASE; Tests/e2e/mossaic.py reads MOSSAICFS_TEST_FORMAT_ARGS).
SEALED_SUITES := Tests/e2e/test_crash.py Tests/e2e/test_faults.py Tests/e2e/posix
test-e2e-sealed:
	MOSSAICFS_BIN=$(CURDIR)/$(BIN) MOSSAICFS_TEST_FORMAT_ARGS="--compress zstd --encrypt" \
	  MOSSAICFS_PASSPHRASE=matrix-row-passphrase $(PYTHON) -m pytest -p no:cacheprovider -q $(SEALED_SUITES)

# The PostgreSQL row: the same POSIX suite and differential tester with every filesystem's
# metadata in PostgreSQL (a throwaway server per test process, a database per filesystem),
# on local stores (the store is independent of the metadata engine); test_postgres.py runs in
# test-e2e.
# On a 2-core machine: the POSIX suite (3 modes) about 3 minutes, fsrand about 3 more.
test-postgres:
	MOSSAICFS_BIN=$(CURDIR)/$(BIN) MOSSAICFS_TEST_META=postgres MOSSAICFS_POSIX_STORES=local FSRAND_OPS=$(FSRAND_OPS) \
	  $(PYTHON) -m pytest -p no:cacheprovider -q Tests/e2e/posix Tests/e2e/test_fsrand.py -k "not s3"

fuzz: build
	@for store in $(if $(filter both,$(FUZZ_STORE)),local s3,$(FUZZ_STORE)); do \
	  MOSSAICFS_BIN=$(CURDIR)/$(BIN) $(PYTHON) Tests/fuzz/fsrand.py --ops $(OPS) --seed $(SEED) --store $$store \
	    $(if $(EXCLUDE),--exclude $(EXCLUDE)) || exit 1; \
	done

run: build
	@$(SUDO) mkdir -p $(MOUNTPOINT)
	@[ -f $(STORE)/mossaicfs.json ] || $(SUDO) $(BIN) format $(STORE)
	$(SUDO) $(BIN) mount $(STORE) $(MOUNTPOINT)
	@echo "mounted $(STORE) on $(MOUNTPOINT); unmount with: make stop (or mossaicfs umount $(MOUNTPOINT))"

# mossaicfs umount returns once the daemon has stored everything and exited.
stop:
	$(SUDO) $(BIN) umount $(MOUNTPOINT)

clean:
	rm -rf .build $(STATIC_BUILD) out
