# shoal's build, run and test entry points. `make run` starts the quickstart; `make test`
# installs what the tests need (when it can) and runs every check CI runs.

GO          ?= go
GOBIN       := $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(GOBIN)/staticcheck
STATICCHECK_VERSION := v0.8.2
# Debian packages the tests and examples use: FastAPI/uvicorn for the seed example's
# import_path app, requests for the Python examples, chromium for the dashboard's
# browser tests, prometheus for the closed-loop scaler tests, wrk and nginx for the
# benchmarks, iproute2 (ss) for the proxy load run, curl for the dashboard's webhook
# snippet.
APT_PACKAGES := python3-fastapi python3-uvicorn python3-requests chromium prometheus wrk nginx-light iproute2 curl
TEST_TIMEOUT ?= 10m

.PHONY: all build run run-seed deps test fmt-check vet staticcheck gotest e2e chaos bench clean

all: build

build:
	$(GO) build -o bin/shoal ./cmd/shoal
	$(GO) build -o bin/replica ./examples/replica

run: build
	bin/shoal start examples/quickstart/serve.yaml --state-dir .shoal

# The seed example runs under Debian's python3 (python3-fastapi, python3-uvicorn), which
# another python3 earlier on PATH (pyenv, a virtualenv) would hide.
run-seed: build
	PATH=/usr/bin:$$PATH bin/shoal start examples/seed/serve.yaml --state-dir .shoal-seed

# deps is idempotent: it asks apt only for packages that are missing, and only when it
# can install them (root, or passwordless sudo).
deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; \
		elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
		else echo "deps: missing Debian packages:$$missing (run 'make deps' as root to install them)"; exit 0; fi; \
		echo "deps: installing$$missing"; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	$(GO) mod download
	@if ! $(STATICCHECK) -version 2>/dev/null | grep -q "$(STATICCHECK_VERSION:v%=%)"; then \
		echo "deps: installing staticcheck $(STATICCHECK_VERSION)"; \
		$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION); \
	fi

test: deps fmt-check vet staticcheck gotest

fmt-check:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt: these files need 'gofmt -w':"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	$(STATICCHECK) ./...

# The Kubernetes backend's tests run a real kube-apiserver and etcd, built from the Go
# module proxy into .cache/k8s/bin on the first run (a few minutes) and reused after.
# A failed build stops here rather than leaving those tests without their binaries.
gotest:
	assets=$$(hack/k8stools/build.sh) && KUBEBUILDER_ASSETS=$$assets $(GO) test -race -timeout $(TEST_TIMEOUT) ./...

# e2e runs only the end-to-end tests (real binary, real replica processes).
e2e:
	$(GO) test -race -timeout 5m -count=1 ./test/e2e/...

# chaos runs the 15-minute soak of test/chaos (faults under load, from a seed it prints)
# and writes its figures to bench/soak; `make test` runs a 3 × 20 s version of it.
chaos:
	$(GO) test -count=1 -timeout 30m -v ./test/chaos -run TestChaos -chaos.duration=15m -chaos.out=$(CURDIR)/bench/soak

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin
