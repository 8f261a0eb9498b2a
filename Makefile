# callsign: build, run, test, benchmark and lint.
GO       ?= go
BIN      := bin/callsign
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
STATICCHECK_VERSION := v0.8.2

.PHONY: build run test test-deps unit e2e fuzz bench lint screenshots clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/callsign

# Starts the edge on the example configuration, with its own embedded NATS.
run: build
	./$(BIN) serve -c examples/callsign.yaml

# Installs what the tests drive (sipp, baresip, tcpdump, Chromium, Firefox ESR,
# Playwright, Puppeteer) when missing, then runs
# every test, with the race detector.
# The end-to-end tests run after the unit tests, not beside them: they measure
# audio timing, which other packages' CPU load would disturb.
test: test-deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 30m $$($(GO) list ./... | grep -v /test/e2e)
	$(GO) test -race -count=1 -timeout 30m ./test/e2e/
	scripts/fuzz.sh

test-deps:
	@scripts/test-deps.sh

unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /test/)

e2e: test-deps
	$(GO) test -race -count=1 -v -timeout 30m ./test/e2e/

# Runs every fuzz target for a minute; `test` runs them for 5 s each.
fuzz:
	FUZZTIME=60s scripts/fuzz.sh

# Refreshes the README's softphone and dashboard screenshots from real calls in Chromium.
screenshots: test-deps
	SCREENSHOT_DIR=$(CURDIR)/docs/images $(GO) test -count=1 -run 'TestSoftphoneCall$$|TestDNICall$$' ./test/e2e/

# Go benchmarks, then the sipp load and flood runs written up in
# docs/benchmarks.md.
bench: build test-deps
	$(GO) test -run '^$$' -bench . -benchmem ./...
	scripts/bench-load.sh
	scripts/bench-flood.sh

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt wants to rewrite the files above"; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

clean:
	rm -rf bin
