# The two commands of the README are `make dev` (run it) and `make test` (test it); `make up` / `make down` run the
# platform on kind (Docker needed).
.PHONY: dev up down test lint fmt bench bench-status bench-gateway bench-medusa bench-backup kube-assets tools clean

dev:
	scripts/dev.sh

up:
	deploy/kind/up.sh

down:
	deploy/kind/down.sh

test:
	scripts/test.sh

lint: tools
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cd proto && ../tools/node_modules/.bin/buf lint
	tools/.venv/bin/shellcheck scripts/*.sh services/provisioner/scripts/*.sh deploy/install.sh deploy/kind/*.sh test-support/node/*.sh test-support/node/apache2-foreground deploy/medusa/bin/entrypoint.sh .ci/run
	tools/.venv/bin/hadolint deploy/docker/Dockerfile deploy/docker/wordpress/Dockerfile deploy/docker/medusa/Dockerfile \
	  deploy/docker/medusa-storefront/Dockerfile
	tools/bin/helm lint --strict deploy/helm/store-platform -f deploy/helm/store-platform/values-local.yaml
	tools/bin/helm lint --strict deploy/helm/store-platform -f deploy/helm/store-platform/values-vps.yaml

fmt:
	cargo fmt --all

# Benchmarks (not tests): figures and how to read them are in docs/benchmarks.md.
BENCH_ARGS ?= --stores 100
BENCH_STATUS_ARGS ?= --streams 1000
BENCH_GATEWAY_ARGS ?= --calls 3000 --streams 1000
bench:
	cargo build --release --bins --locked
	KUBEBUILDER_ASSETS=$$(scripts/kube-assets.sh) cargo bench --locked -p store-platform-provisioner --bench provisioning -- $(BENCH_ARGS)

bench-status:
	cargo build --release --bins --locked
	KUBEBUILDER_ASSETS=$$(scripts/kube-assets.sh) cargo bench --locked -p store-platform-status --bench streams -- $(BENCH_STATUS_ARGS)

bench-gateway:
	cargo build --release --bins --locked
	KUBEBUILDER_ASSETS=$$(scripts/kube-assets.sh) cargo bench --locked -p store-platform-gateway --bench gateway -- $(BENCH_GATEWAY_ARGS)

bench-medusa:
	scripts/debian-packages.sh
	scripts/storefront.sh
	STORE_PLATFORM_MEDUSA=$$(scripts/medusa.sh) cargo bench --locked -p store-platform-provisioner --bench medusa

bench-backup:
	scripts/debian-packages.sh
	scripts/tools.sh
	cargo bench --locked -p store-platform-provisioner --bench backup

kube-assets:
	scripts/kube-assets.sh

tools:
	scripts/tools.sh

clean:
	cargo clean
	rm -rf .dev tools/node_modules tools/.venv
