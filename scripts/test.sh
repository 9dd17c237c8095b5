#!/usr/bin/env bash
# The README test command (`task test`) runs this: it brings up every service the tests need
# (Neo4j, OpenSearch, the S3 server, a 3-node NATS cluster, Elasticsearch, and TLS-only
# instances of Neo4j, Elasticsearch and S3, and an OpenSearch with the security plugin set up
# as in Compose), installs Debian's
# Chromium for the browser test when it is missing, then runs every Go test with -race.
# Extra arguments go to `go test` (e.g. `task test -- -run TestTrace ./sinks/index/`).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s (%s)\n' "$*" "$(date +%H:%M:%S)"; }

step "services: Neo4j, OpenSearch, S3, NATS cluster, Elasticsearch, TLS-only Neo4j, Elasticsearch and S3"
NATS=1 ES=1 TLS=1 bash deploy/local/services.sh up
step "OpenSearch with the security plugin, configured as in Compose (deploy/opensearch/)"
# services.sh up rewrote services.env just now: add this one's variables to it.
bash deploy/local/opensearch-security.sh up >>.local/services.env

if ! command -v chromium >/dev/null 2>&1 && [[ ! -x /usr/lib/chromium/chromium ]]; then
	step "installing Debian's chromium for the web page test"
	sudo=""
	[[ $(id -u) -ne 0 ]] && sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

if ! command -v fusermount3 >/dev/null 2>&1 && ! command -v fusermount >/dev/null 2>&1; then
	step "installing fuse3 for the power-cut test (internal/lazyfs, chaos TestPowerCut)"
	sudo=""
	[[ $(id -u) -ne 0 ]] && sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq fuse3 >/dev/null
fi

step "go test -race"
pkgs=("$@")
[[ ${#pkgs[@]} -eq 0 ]] && pkgs=(./...)
go test -race -count=1 -timeout 40m "${pkgs[@]}"
step "all tests passed"
