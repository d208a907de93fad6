# The two commands: `make samples` runs qie on samples/, `make test` runs every
# test, the example program and the benchmarks' quick modes. Both install what
# is missing first, and both use the same debug build: `make test` after
# `make samples` compiles only the tests and the example.

SWIFT ?= swift
OUT ?= samples-out
QIE = .build/debug/qie
EXAMPLE = Examples/EditFolder

# Examples/EditFolder is a package of its own that depends on qie by path. It
# builds in qie's own .build, where every module it needs is compiled already:
# 10 to 30 seconds once qie is built, against 9 minutes on 2 cores in a .build
# of its own (SwiftNIO, Hummingbird, GRDB... all compiled again).
# Sharing .build needs two things, on every build that shares it:
# - --disable-build-manifest-caching: both packages plan into .build/debug.yaml,
#   and SwiftPM would otherwise reuse the other package's plan and build the
#   wrong targets;
# - SWIFT_DETERMINISTIC_HASHING=1: SwiftPM 6.3 passes a dependency's traits
#   (-D flags) in hash order, which changes from one process to the next, so
#   Hummingbird (two traits) would be compiled again whenever a plan is made.
#   Only the builds get it; tests run with the usual random hashing.
BUILD = SWIFT_DETERMINISTIC_HASHING=1 $(SWIFT) build --disable-build-manifest-caching

.PHONY: deps samples test example release bench docs clean

deps:
	@scripts/ensure-deps.sh

samples: deps
	$(BUILD) --product qie
	$(QIE) prepare samples --size 1024x1280 --fit contain --format jpeg --quality 90 --out $(OUT)
	$(QIE) probe $(OUT)
	QIE=$(QIE) scripts/edit-samples.sh $(OUT)/edited

# The example builds first, so .build is left planned for qie itself, as a
# plain `swift build` or `swift test` afterwards expects. The command-line
# tests run in a test process of their own: they wait on the processes they
# start, which holds threads, and a test process shares as many threads as
# the machine has cores among all its tests; the in-process servers and
# clients of the other tests never wait behind those.
test: deps example
	@scripts/ensure-deps.sh chromium python3 postgresql
	@scripts/ensure-openai-sdk.sh
	@scripts/ensure-litellm.sh
	$(BUILD) --build-tests
	$(SWIFT) test --skip-build --skip QieCLITests
	$(SWIFT) test --skip-build --filter QieCLITests
	.build/debug/qie-bench stream 1
	.build/debug/qie-bench finishing quick
	scripts/bench.sh --quick

# Builds the example as a user's package would be built, and runs it: it edits
# a folder on the in-process emulator, stops, resumes, and checks the results.
example: deps
	$(BUILD) --package-path $(EXAMPLE) --scratch-path $(CURDIR)/.build
	.build/debug/EditFolder

# An optimised qie in .build/release/qie (the benchmarks build it themselves).
release: deps
	SWIFT_DETERMINISTIC_HASHING=1 $(SWIFT) build -c release --product qie

bench: deps
	scripts/bench.sh

# DocC documentation of the library products: one combined archive,
# $(DOCS)/qie.doccarchive, whose modules link to each other. It is built for
# static hosting: serve the folder with any web server.
DOCS ?= .build/docs
LIBRARIES = QieCore QieFiles QieImaging QieProviders QieClient QieWebhooks QieStore QieReport QiePipeline QieEmulator QieGateway

docs: deps
	mkdir -p $(DOCS)
	$(SWIFT) package --allow-writing-to-directory $(DOCS) generate-documentation \
		$(addprefix --target ,$(LIBRARIES)) --enable-experimental-combined-documentation \
		--output-path $(DOCS)/qie.doccarchive

clean:
	rm -rf .build $(EXAMPLE)/.build $(OUT)
