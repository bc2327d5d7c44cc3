# airgap-check: the README's commands.
.PHONY: deps build test lint fixtures stack demo bench-analyze bench-stage bench-size bench-load bench-scan prune clean fuzz install uninstall

CARGO ?= cargo
# The sealed run needs root (or CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STACK := airgap-check-fixture-stack:busybox
AGC := $(SUDO) target/release/airgap-check
ENGINE ?= machine

deps:
	scripts/install-deps.sh

build: deps
	$(CARGO) build --release

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

## All tests: formatting, lints, unit and integration tests (the staging tests need root and Docker).
test: lint
	$(SUDO) $(CARGO) test --all-targets

## The fixture stack image (busybox FROM scratch; no registry needed).
stack: deps
	$(SUDO) $(CARGO) run --release --quiet --example build_stack

## The main job on the bundled fixtures: a clean buildpack passes, a leaky one fails with its flows.
demo: build stack
	@mkdir -p demo-out
	@echo; echo "== 1/2 a cached buildpack that stays offline: expect PASS (exit 0)"
	$(AGC) --app fixtures/apps/hello --buildpack fixtures/buildpacks/clean --stack-image $(STACK) \
		--json demo-out/clean.json --junit demo-out/clean.xml --pcap demo-out/clean.pcap
	@echo; echo "== 2/2 a buildpack that downloads by name: expect FAIL (exit 1), with the name and the phase"
	$(AGC) --app fixtures/apps/hello --buildpack fixtures/buildpacks/leak-dns --stack-image $(STACK) \
		--json demo-out/leak-dns.json --junit demo-out/leak-dns.xml --pcap demo-out/leak-dns.pcap; \
		test $$? -eq 1
	@echo; echo "demo OK: reports in demo-out/"

## Install the binary, its man page and shell completions under $(PREFIX) (default /usr/local):
## `sudo make install`. It builds (cargo build --release --locked) only when the release binary is
## missing or older than the sources, so `make build && sudo make install` never builds as root.
PREFIX ?= /usr/local
BIN ?= target/release/airgap-check
install:
	@if [ ! -x "$(BIN)" ] || [ -n "$$(find src Cargo.toml Cargo.lock allowlists -newer "$(BIN)" | head -n 1)" ]; then \
		echo "$(CARGO) build --release --locked"; $(CARGO) build --release --locked; fi
	install -d "$(DESTDIR)$(PREFIX)/bin" "$(DESTDIR)$(PREFIX)/share/man/man1" \
		"$(DESTDIR)$(PREFIX)/share/bash-completion/completions" "$(DESTDIR)$(PREFIX)/share/zsh/site-functions" \
		"$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d"
	install -m 0755 "$(BIN)" "$(DESTDIR)$(PREFIX)/bin/airgap-check"
	"$(BIN)" man > "$(DESTDIR)$(PREFIX)/share/man/man1/airgap-check.1"
	"$(BIN)" completions bash > "$(DESTDIR)$(PREFIX)/share/bash-completion/completions/airgap-check"
	"$(BIN)" completions zsh > "$(DESTDIR)$(PREFIX)/share/zsh/site-functions/_airgap-check"
	"$(BIN)" completions fish > "$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/airgap-check.fish"

uninstall:
	rm -f "$(DESTDIR)$(PREFIX)/bin/airgap-check" "$(DESTDIR)$(PREFIX)/share/man/man1/airgap-check.1" \
		"$(DESTDIR)$(PREFIX)/share/bash-completion/completions/airgap-check" \
		"$(DESTDIR)$(PREFIX)/share/zsh/site-functions/_airgap-check" \
		"$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/airgap-check.fish"

## Remove what killed runs left behind.
prune: build
	$(AGC) prune

## Regenerate the committed capture fixtures (deterministic: git diff shows no change).
fixtures:
	$(CARGO) run --quiet --example gen_fixtures -- fixtures/pcap

## analyze throughput against tcpdump and tshark on a generated 5M-packet capture.
bench-analyze: deps
	scripts/install-deps.sh bench
	bench/analyze.sh

clean:
	$(CARGO) clean

## Every cargo-fuzz target in fuzz/ for FUZZ_SECONDS each over the committed corpus (nightly, or RUSTC_BOOTSTRAP=1).
FUZZ_SECONDS ?= 20
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)

## Cost of a sealed run against the bare minimum: docker build of FROM stack/ADD app/ADD buildpack
## plus docker run --network none of the phases. ENGINE=26 measures on the second engine.
bench-stage: deps
	scripts/install-deps.sh bench
	$(SUDO) ENGINE=$(ENGINE) bench/stage.sh

## Run time against buildpack size (10, 100, 800 MB; directory and zip) and number of apps (1, 6,
## 20), each beside the bare minimum measured in the same run; peak memory. ENGINE=26 as above.
bench-size: deps
	scripts/install-deps.sh bench
	$(SUDO) ENGINE=$(ENGINE) bench/size.sh

## Capture under load: a sealed run floods UDP; the sender, tcpdump in the container and airgap-check count.
bench-load: deps
	scripts/install-deps.sh bench
	$(SUDO) bench/load.sh

## A port scan: analyze on 25k-200k-flow SYN-scan captures, and sealed runs that connect-scan up to 100k pairs.
bench-scan: deps
	scripts/install-deps.sh bench
	$(SUDO) bench/scan.sh
