# ib-kubernetes: build, plugins, image, tests. `make help` lists the targets.
#
# Same targets and outputs as the Go daemon's Makefile: build/ib-kubernetes, build/plugins/<name>
# (exec plugins here, not Go .so files; see docs/plugins.md), and an image tagged mellanox/ib-kubernetes.

CARGO       ?= cargo
DOCKER      ?= docker
BUILD_DIR   ?= build
PLUGINS     ?= ufm noop
TAG         ?= mellanox/ib-kubernetes
DOCKERFILE  ?= Dockerfile

# Version information, compiled into the binary (printed by `ib-kubernetes -version`).
VERSION     ?= master
COMMIT      ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown commit)
DATE        ?= $(shell date -Iseconds)

# Where cargo puts release binaries: honours CARGO_TARGET_DIR like cargo itself.
TARGET_DIR  ?= $(or $(CARGO_TARGET_DIR),target)
RELEASE_DIR := $(TARGET_DIR)/release

# The product binary is built --no-default-features: it leaves out the test bed (`demo`, `sim`: the
# emulators, rcgen, indicatif), which is on by default for `cargo run`. tests/product_binary.rs checks it.

.DEFAULT_GOAL := all

.PHONY: all
all: build plugins ## Build the daemon and every plugin (the default)

.PHONY: build
build: ## Build build/ib-kubernetes (release, with version information, without the test bed)
	IB_KUBERNETES_VERSION="$(VERSION)" IB_KUBERNETES_COMMIT="$(COMMIT)" IB_KUBERNETES_DATE="$(DATE)" \
		$(CARGO) build --release --package ib-kubernetes --bin ib-kubernetes --no-default-features
	@mkdir -p $(BUILD_DIR)
	cp $(RELEASE_DIR)/ib-kubernetes $(BUILD_DIR)/ib-kubernetes

.PHONY: plugins
plugins: $(addsuffix -plugin,$(PLUGINS)) ## Build every exec plugin into build/plugins/

# One plugin: crate plugins/<name> (package ib-sm-plugin-<name>), binary <name>.
%-plugin: ## Build one exec plugin, e.g. `make ufm-plugin` -> build/plugins/ufm
	$(CARGO) build --release --package ib-sm-plugin-$* --bin $*
	@mkdir -p $(BUILD_DIR)/plugins
	cp $(RELEASE_DIR)/$* $(BUILD_DIR)/plugins/$*

.PHONY: image
image: ## Build the container image $(TAG) from $(DOCKERFILE)
	$(DOCKER) build -t $(TAG) -f $(DOCKERFILE) \
		--build-arg VERSION="$(VERSION)" --build-arg COMMIT="$(COMMIT)" --build-arg DATE="$(DATE)" .

.PHONY: test
test: ## Run the test suite (what CI runs after fmt and clippy)
	$(CARGO) test --workspace

.PHONY: demo
demo: ## Run the whole system on an emulated cluster and UFM
	$(CARGO) run --release -- demo

.PHONY: bench
bench: ## Run every benchmark at scale (about 7 minutes) and redraw docs/benchmarks/*.png
	$(CARGO) build --release --package ib-kubernetes --bin ib-kubernetes --no-default-features
	$(CARGO) run --release -p ib-bench -- all

.PHONY: lint
lint: ## Check formatting and run clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

.PHONY: clean
clean: ## Remove build/ (cargo's target directory and cache are left alone)
	rm -rf $(BUILD_DIR)

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z%_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
