# airgap-check: the README's commands.
.PHONY: deps build test lint unit fixtures bench-analyze clean

CARGO ?= cargo

deps:
	scripts/install-deps.sh

build: deps
	$(CARGO) build --release

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

## All tests: formatting, lints, unit and integration tests.
test: lint
	$(CARGO) test --all-targets

## Regenerate the committed capture fixtures (deterministic: git diff shows no change).
fixtures:
	$(CARGO) run --quiet --example gen_fixtures -- fixtures/pcap

## analyze throughput against tcpdump and tshark on a generated 5M-packet capture.
bench-analyze: deps
	scripts/install-deps.sh bench
	bench/analyze.sh

clean:
	$(CARGO) clean
