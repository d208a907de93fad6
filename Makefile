# The two commands: `make samples` runs qie on samples/, `make test` runs every
# test. Both install what is missing first, and both use the same debug build:
# `make test` after `make samples` compiles only the tests.

SWIFT ?= swift
OUT ?= samples-out
QIE = .build/debug/qie

.PHONY: deps samples test release bench clean

deps:
	@scripts/ensure-deps.sh

samples: deps
	$(SWIFT) build --product qie
	$(QIE) prepare samples --size 1024x1280 --fit contain --format jpeg --quality 90 --out $(OUT)
	$(QIE) probe $(OUT)
	QIE=$(QIE) scripts/edit-samples.sh $(OUT)/edited

test: deps
	@scripts/ensure-deps.sh chromium python3
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	.build/debug/qie-bench stream 1

# An optimised qie in .build/release/qie (the benchmarks build it themselves).
release: deps
	$(SWIFT) build -c release --product qie

bench: deps
	scripts/bench-prepare.sh

clean:
	rm -rf .build $(OUT)
