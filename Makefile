# The two commands README.md promises: `make run` and `make test`.
GO ?= go
export CGO_ENABLED ?= 1

.PHONY: run test build image vet fmt-check staticcheck unit clean bench-turn bench-sfu bench-signin bench-ws bench-replicas

## run: build and start the all-in-one development deployment on https://localhost:8443
run:
	$(GO) run ./cmd/signal -dev

## build: build the three binaries into ./bin
build:
	$(GO) build -trimpath -o bin/ ./cmd/...

## image: build minimal container images of the three binaries (static, from scratch, non-root, no shell) with podman or docker
CONTAINER ?= $(shell command -v podman 2>/dev/null || command -v docker 2>/dev/null)
IMAGE_PREFIX ?= openconsult
IMAGE_TAG ?= latest
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
image:
	@test -n "$(CONTAINER)" || { echo "make image needs podman or docker"; exit 1; }
	rm -rf bin/image && mkdir -p bin/image/empty
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/image/ ./cmd/...
	cp $(CA_BUNDLE) bin/image/ca-certificates.crt
	echo 'openconsult:x:65532:65532:openconsult:/var/lib/openconsult:/nonexistent' > bin/image/passwd
	echo 'openconsult:x:65532:' > bin/image/group
	for b in signal sfu turnd; do \
		$(CONTAINER) build -f deploy/Containerfile --target $$b -t $(IMAGE_PREFIX)/$$b:$(IMAGE_TAG) bin/image || exit 1; \
	done
	$(CONTAINER) images --filter reference='$(IMAGE_PREFIX)/*'

## test: formatting, go vet, staticcheck (version pinned in go.mod) and the race-enabled tests
test: fmt-check vet staticcheck unit

fmt-check:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) tool staticcheck ./...

# One package at a time: the browser tests run two Chromiums with video,
# which must not share the two cores of a CI machine with other packages.
unit:
	$(GO) test -race -count=1 -p 1 -timeout 30m ./...

## bench-turn: load turnd (and coturn's turnserver when installed; an earlier turnd build first with TURND_BEFORE=path) with the same traffic and print the figures; TURN_RUNS=3 measures each load three times and prints the spread
bench-turn: build
	$(GO) run ./tools/turnload $(if $(TURND_BEFORE),-turnd-before $(TURND_BEFORE)) $(if $(TURN_RUNS),-runs $(TURN_RUNS)) -turnd ./bin/turnd -coturn turnserver -allocations 200 -rate 50 -size 200 -duration 15s
	$(GO) run ./tools/turnload $(if $(TURND_BEFORE),-turnd-before $(TURND_BEFORE)) $(if $(TURN_RUNS),-runs $(TURN_RUNS)) -turnd ./bin/turnd -coturn turnserver -allocations 60 -rate 100 -size 1100 -duration 15s
	$(GO) run ./tools/turnload $(if $(TURND_BEFORE),-turnd-before $(TURND_BEFORE)) $(if $(TURN_RUNS),-runs $(TURN_RUNS)) -turnd ./bin/turnd -coturn turnserver -allocations 200 -rate 100 -size 600 -duration 15s -echo

## bench-signin: send 200 sign-ins at once from 20 addresses to signal -dev and print its peak memory and the 503 count
bench-signin: build
	$(GO) run ./tools/signinload -signal ./bin/signal -attempts 200 -addresses 20

## bench-sfu: load the SFU with consults of three and with grand rounds, through signal -dev and directly, and recording, and print the figures
bench-sfu: build
	$(GO) run ./tools/sfuload -signal ./bin/signal -scenario rooms -rooms 10 -video-kbps 600 -duration 15s -warmup 3s
	$(GO) run ./tools/sfuload -direct -turnd ./bin/turnd -scenario rooms -rooms 10 -video-kbps 600 -simulcast=false -duration 15s -warmup 3s
	$(GO) run ./tools/sfuload -direct -scenario rooms -rooms 10 -video-kbps 600 -duration 15s -warmup 3s
	$(GO) run ./tools/sfuload -direct -scenario rooms -rooms 10 -video-kbps 600 -duration 15s -warmup 3s -udp-listen 127.0.0.1:0
	$(GO) run ./tools/sfuload -direct -turnd ./bin/turnd -scenario rooms -rooms 10 -video-kbps 600 -simulcast=false -duration 15s -warmup 3s -udp-listen 127.0.0.1:0 -own-transport
	$(GO) run ./tools/sfuload -direct -scenario rooms -rooms 10 -video-kbps 600 -duration 15s -warmup 3s -udp-listen 127.0.0.1:0 -own-transport
	$(GO) run ./tools/sfuload -signal ./bin/signal -scenario grandrounds -subscribers 40 -video-kbps 600 -duration 15s -warmup 3s
	$(GO) run ./tools/sfuload -direct -turnd ./bin/turnd -scenario grandrounds -subscribers 40 -video-kbps 600 -duration 15s -warmup 3s
	$(GO) run ./tools/sfuload -direct -turnd ./bin/turnd -scenario grandrounds -subscribers 40 -video-kbps 600 -duration 15s -warmup 3s -udp-listen 127.0.0.1:0 -own-transport
	$(GO) run ./tools/sfuload -direct -record -scenario rooms -rooms 10 -video-kbps 600 -duration 15s -warmup 3s

## bench-ws: open 2,000 idle guest WebSockets on signal -dev and print the server's memory and goroutines per socket
bench-ws: build
	$(GO) run ./tools/wsload -signal ./bin/signal -sockets 2000

## bench-replicas: 10,000 WebSockets on two signal replicas (PostgreSQL and Redis on loopback), every consult split over both; print chat fan-out latency
bench-replicas: build
	$(GO) run ./tools/replicaload -signal ./bin/signal -sockets 10000

clean:
	rm -rf bin
