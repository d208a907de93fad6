# The two commands: `make samples` runs qie on samples/, `make test` runs every test.
# Both install what is missing first.

SWIFT ?= swift
OUT ?= samples-out

.PHONY: deps build samples test bench docs clean

deps:
	@scripts/ensure-deps.sh

build: deps
	$(SWIFT) build -c release --product qie

samples: build
	.build/release/qie prepare samples --size 1024x1280 --fit contain --format jpeg --quality 90 --out $(OUT)
	.build/release/qie probe $(OUT)
	scripts/edit-samples.sh $(OUT)/edited

test: deps
	@scripts/ensure-deps.sh chromium python3
	$(SWIFT) test

bench: build
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
