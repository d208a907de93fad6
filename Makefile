# The two commands: `make samples` runs qie on samples/, `make test` runs every
# test. Both install what is missing first, and both use the same debug build:
# `make test` after `make samples` compiles only the tests.

SWIFT ?= swift
OUT ?= samples-out
QIE = .build/debug/qie

.PHONY: deps samples test release bench docs clean

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

# DocC documentation of the library products: one combined archive,
# $(DOCS)/qie.doccarchive, whose modules link to each other. It is built for
# static hosting: serve the folder with any web server.
DOCS ?= .build/docs
LIBRARIES = QieCore QieFiles QieImaging QieProviders QieClient QieWebhooks QieStore QieReport QiePipeline QieEmulator

docs: deps
	mkdir -p $(DOCS)
	$(SWIFT) package --allow-writing-to-directory $(DOCS) generate-documentation \
		$(addprefix --target ,$(LIBRARIES)) --enable-experimental-combined-documentation \
		--output-path $(DOCS)/qie.doccarchive

clean:
	rm -rf .build $(OUT)
