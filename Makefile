# ivrd — make targets a newcomer can guess.
GO          ?= go
CONFIG      ?= configs/ivrd.yaml
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
TEST_FLAGS  ?= -race -count=1 -timeout 20m
BENCH_FLAGS ?= -run '^$$' -bench . -benchmem -benchtime 1s

.PHONY: all build run test bench bench-quick lint fuzz prompts clean

all: build

## build: compile ivrd and callsim into bin/
build:
	$(GO) build -o bin/ivrd ./cmd/ivrd
	$(GO) build -o bin/callsim ./cmd/callsim

## run: start ivrd with the demo configuration (SIP 127.0.0.1:5060, HTTP 127.0.0.1:8080)
run: build
	./bin/ivrd -config $(CONFIG)

## test: the whole suite (unit, SIP, e2e with SIPp); needs sipp for e2e
test:
	$(GO) test $(TEST_FLAGS) ./...

## bench: Go benchmarks of the hot paths, then the capacity run (loadbench:
## callsim against bin/ivrd on the Redis at 127.0.0.1:6379, and SIPp)
LOADBENCH_FLAGS ?= -json bin/loadbench.json
bench: build
	$(GO) test $(BENCH_FLAGS) ./...
	$(GO) run ./cmd/loadbench -ivrd bin/ivrd $(LOADBENCH_FLAGS)

## bench-quick: a small capacity run that checks the bench itself works
bench-quick: build
	$(GO) run ./cmd/loadbench -ivrd bin/ivrd -quick

## lint: gofmt, go vet, staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## fuzz: run each fuzz target for a short while (FUZZTIME=30s)
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

## prompts: regenerate the demo prompts (needs espeak-ng and sox)
prompts:
	bash configs/prompts/generate.sh

clean:
	rm -rf bin
