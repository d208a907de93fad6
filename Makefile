# The two commands: `make samples` runs qie on samples/, `make test` runs every
# test and the example program. Both install what is missing first.

SWIFT ?= swift
OUT ?= samples-out

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
#   Hummingbird (two traits) would be compiled again whenever a plan is made
#   (swiftlang/swift-package-manager#10525). Only the builds get it; tests run
#   with the usual random hashing.
SHARED_BUILD = SWIFT_DETERMINISTIC_HASHING=1 $(SWIFT) build --disable-build-manifest-caching
EXAMPLE = Examples/EditFolder

.PHONY: deps build samples test example bench clean

deps:
	@scripts/ensure-deps.sh

build: deps
	$(SWIFT) build -c release --product qie

samples: build
	.build/release/qie prepare samples --size 1024x1280 --fit contain --format jpeg --quality 90 --out $(OUT)
	.build/release/qie probe $(OUT)
	scripts/edit-samples.sh $(OUT)/edited

# The example runs first, so .build is left planned for qie itself, as a plain
# `swift build` or `swift test` afterwards expects.
test: deps example
	@scripts/ensure-deps.sh chromium python3
	$(SHARED_BUILD) --build-tests
	$(SWIFT) test --skip-build

# Builds the example as a user's package would be built, and runs it: it edits
# a folder on the in-process emulator, stops, resumes, and checks the results.
example: deps
	$(SHARED_BUILD) --package-path $(EXAMPLE) --scratch-path $(CURDIR)/.build
	.build/debug/EditFolder

bench: build
	scripts/bench-prepare.sh

clean:
	rm -rf .build $(EXAMPLE)/.build $(OUT)
