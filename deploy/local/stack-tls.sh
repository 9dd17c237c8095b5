#!/usr/bin/env bash
# The Compose stack's TLS and authentication, without Docker: the pipeline runs with
# deploy/sightline/sightline.yaml against NATS (deploy/nats/*.conf), Neo4j (the neo4j-tls
# settings compose.yaml shares), OpenSearch with its security plugin (deploy/opensearch/) and an
# S3 server over https, every certificate made by dev-tls.sh and laid out by secrets-init.sh,
# every connection TLS and authenticated. Only addresses and the container paths change.
#   bash deploy/local/stack-tls.sh up      # start everything, then check
#   bash deploy/local/stack-tls.sh check   # ingest over https with a token, trace, graph status
#   bash deploy/local/stack-tls.sh down
# Everything lives under .local/stack-tls/ (STACK_TLS_DIR). Ports (all 127.0.0.1):
# STACK_NATS_PORT 4722 (monitoring STACK_NATS_MONITOR_PORT 4782), STACK_HTTP_PORT 4780,
# Neo4j bolt 4787 (http 4774), S3 4791, OpenSearch 4792 (transport 4793).
# The S3 server is versitygw (the local stand-in for MinIO, as in `task test`), serving the
# same certificate as Neo4j (services.sh gives its TLS instances one certificate); with
# STACK_TLS_MINIO=1 it is MinIO instead, run like the minio service (--certs-dir with the
# layout secrets-init makes, port 4794), and the bucket is made like minio-init does (mc,
# trusting the CA from its certs/CAs folder): both are built from the Go module proxy at
# their newest version there (the first build takes minutes).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${STACK_TLS_DIR:-$ROOT/.local/stack-tls}"
NATS_PORT="${STACK_NATS_PORT:-4722}"
NATS_MON="${STACK_NATS_MONITOR_PORT:-4782}"
HTTP_PORT="${STACK_HTTP_PORT:-4780}"
SEC="$DIR/secrets" OUT="$DIR/out"

log() { printf '[stack-tls] %s\n' "$*" >&2; }
die() {
	printf '[stack-tls] ERROR: %s\n' "$*" >&2
	exit 1
}
svc() { # services.sh in our own folder and ports
	SIGHTLINE_TEST_SERVICES_DIR="$DIR/services" SIGHTLINE_TEST_SERVICES_ENV="$DIR/services.env" \
		NEO4J_TLS_BOLT_PORT=4787 NEO4J_TLS_HTTP_PORT=4774 S3_TLS_PORT=4791 bash "$ROOT/deploy/local/services.sh" "$@"
}
osec() { OPENSEARCH_SECURITY_DIR="$DIR/opensearch-security" DEV_SECRETS_DIR="$SEC" bash "$ROOT/deploy/local/opensearch-security.sh" "$@"; }
# alive PIDFILE: its process runs and is ours (its command line names this folder).
alive() {
	local pid
	[[ -f "$1" ]] && pid="$(cat "$1")" && [[ "$pid" =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] &&
		tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$DIR"
}

# minio_up: MinIO as the minio service runs it, the bucket as minio-init makes it; writes
# $DIR/minio/s3.env with the variables the pipeline's env uses.
minio_up() {
	local gobin="$ROOT/.local/cache/gobin/minio-latest" m="$DIR/minio" i
	mkdir -p "$gobin" "$m/data" "$m/mc/certs/CAs"
	for tool in minio mc; do
		[[ -x "$gobin/$tool" ]] && continue
		log "building $tool from the Go module proxy (minutes)"
		GOBIN="$gobin" go install "github.com/minio/$tool@latest" >"$m/$tool-build.log" 2>&1 ||
			die "go install $tool failed, see $m/$tool-build.log"
	done
	if [[ ! -f "$m/s3.env" ]]; then
		(
			umask 077
			pw="$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32)"
			printf 'SIGHTLINE_TEST_S3_TLS_ENDPOINT=https://127.0.0.1:4794\nSIGHTLINE_TEST_S3_TLS_ACCESS_KEY=sightline\nSIGHTLINE_TEST_S3_TLS_SECRET_KEY=%s\n' "$pw" >"$m/s3.env"
		)
	fi
	local key
	key="$(grep '^SIGHTLINE_TEST_S3_TLS_SECRET_KEY=' "$m/s3.env" | cut -d= -f2-)"
	if ! alive "$m/pid"; then
		(
			cd "$m"
			exec env MINIO_ROOT_USER=sightline MINIO_ROOT_PASSWORD="$key" setsid nohup "$gobin/minio" server "$m/data" \
				--address 127.0.0.1:4794 --console-address 127.0.0.1:4795 --certs-dir "$OUT/minio" </dev/null >"$m/minio.log" 2>&1
		) &
		echo $! >"$m/pid"
	fi
	cp "$SEC/tls/ca.pem" "$m/mc/certs/CAs/ca.pem"
	for ((i = 0; i < 60; i++)); do # the minio service's healthcheck
		MC_HOST_local=https://localhost:4794 "$gobin/mc" --config-dir "$m/mc" ready local >/dev/null 2>&1 && break
		kill -0 "$(cat "$m/pid")" 2>/dev/null || die "minio exited; see $m/minio.log"
		sleep 1
	done
	if ! { "$gobin/mc" --config-dir "$m/mc" alias set local https://localhost:4794 sightline "$key" >/dev/null &&
		"$gobin/mc" --config-dir "$m/mc" mb --ignore-existing local/sightline >/dev/null; }; then
		die "minio-init's commands failed"
	fi
	log "minio: https://127.0.0.1:4794 (--certs-dir from secrets-init), bucket made by mc over https"
}

up() {
	mkdir -p "$DIR"/{nats,bin}
	DEV_SECRETS_DIR="$SEC" bash "$ROOT/deploy/local/dev-tls.sh" >/dev/null
	rm -rf "$OUT" && SRC="$SEC" OUT="$OUT" CHOWN=0 sh "$ROOT/deploy/secrets-init/secrets-init.sh" >/dev/null
	# services.sh's TLS instances use $DIR/services/tls: the stack's CA and Neo4j's certificate
	mkdir -p "$DIR/services/tls"
	cp "$SEC/tls/ca.pem" "$DIR/services/tls/ca.pem"
	cp "$SEC/tls/neo4j.pem" "$DIR/services/tls/server.pem"
	cp "$SEC/tls/neo4j.key" "$DIR/services/tls/server.key"
	if [[ "${STACK_TLS_MINIO:-}" == 1 ]]; then
		svc up neo4j-tls >/dev/null
		minio_up
	else
		svc up neo4j-tls s3-tls >/dev/null
	fi
	osec up >/dev/null

	# NATS: the stack's nats.conf, auth.conf, roles.conf; paths and addresses rewritten.
	local nbin v
	v="$(cd "$ROOT" && go list -m -f '{{.Version}}' github.com/nats-io/nats-server/v2)"
	nbin="$ROOT/.local/cache/gobin/nats-server@$v/nats-server"
	[[ -x "$nbin" ]] || die "$nbin is missing: NATS=1 bash deploy/local/services.sh up nats builds it"
	if [[ ! -f "$DIR/nats/passwords.env" ]]; then
		(
			umask 077
			gen() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24; }
			printf 'NATS_USER=sightline\nNATS_PASSWORD=%s\nNATS_READER_USER=reader\nNATS_READER_PASSWORD=%s\nNATS_OPERATOR_USER=operator\nNATS_OPERATOR_PASSWORD=%s\n' \
				"$(gen)" "$(gen)" "$(gen)" >"$DIR/nats/passwords.env"
		)
	fi
	for f in nats.conf auth.conf roles.conf; do
		sed -e "s#/etc/nats-tls/#$OUT/nats/#" -e "s#/data/jetstream#$DIR/nats/js#" \
			-e "s#listen: 0.0.0.0:4222#listen: 127.0.0.1:$NATS_PORT#" -e "s#https: 127.0.0.1:8222#https: 127.0.0.1:$NATS_MON#" \
			-e "s#max_file_store: 40GB#max_file_store: 2GB#" "$ROOT/deploy/nats/$f" >"$DIR/nats/$f"
	done
	if ! alive "$DIR/nats/pid"; then
		(
			set -a
			. "$DIR/nats/passwords.env"
			set +a
			cd "$DIR/nats"
			exec setsid nohup "$nbin" -c "$DIR/nats/nats.conf" </dev/null >"$DIR/nats/nats.log" 2>&1
		) &
		echo $! >"$DIR/nats/pid"
		log "nats: tls://127.0.0.1:$NATS_PORT (monitoring https://127.0.0.1:$NATS_MON)"
	fi

	# The pipeline: the stack's sightline.yaml with the container paths moved here, and the
	# variables of env/sightline.env for these addresses.
	(cd "$ROOT" && go build -o "$DIR/bin/sightline" ./cmd/sightline)
	sed "s#/run/secrets/sightline/#$OUT/sightline/#g" "$ROOT/deploy/sightline/sightline.yaml" >"$DIR/sightline.yaml"
	local nats_pw
	nats_pw="$(grep '^NATS_PASSWORD=' "$DIR/nats/passwords.env" | cut -d= -f2-)"
	(
		set -a
		. "$DIR/services.env"
		. "$DIR/opensearch-security/passwords.env"
		[[ -f "$DIR/minio/s3.env" ]] && . "$DIR/minio/s3.env"
		set +a
		umask 077
		cat >"$DIR/sightline.env" <<-EOF
			SIGHTLINE_NATS_URLS=tls://sightline:$nats_pw@127.0.0.1:$NATS_PORT
			SIGHTLINE_GRAPH_URI=$SIGHTLINE_TEST_NEO4J_TLS_URI
			SIGHTLINE_GRAPH_USERNAME=neo4j
			SIGHTLINE_GRAPH_PASSWORD=$SIGHTLINE_TEST_NEO4J_TLS_PASSWORD
			SIGHTLINE_INDEX_URLS=https://127.0.0.1:4792
			SIGHTLINE_INDEX_USERNAME=sightline
			SIGHTLINE_INDEX_PASSWORD=$OPENSEARCH_SIGHTLINE_PASSWORD
			SIGHTLINE_ARCHIVE_URL=s3://sightline/sightline
			SIGHTLINE_ARCHIVE_ENDPOINT=$SIGHTLINE_TEST_S3_TLS_ENDPOINT
			SIGHTLINE_ARCHIVE_REGION=us-east-1
			SIGHTLINE_ARCHIVE_USERNAME=$SIGHTLINE_TEST_S3_TLS_ACCESS_KEY
			SIGHTLINE_ARCHIVE_PASSWORD=$SIGHTLINE_TEST_S3_TLS_SECRET_KEY
		EOF
	)
	if ! alive "$DIR/run.pid"; then
		(
			set -a
			. "$DIR/sightline.env"
			set +a
			cd "$DIR"
			exec setsid nohup "$DIR/bin/sightline" run --config "$DIR/sightline.yaml" --set "http.listen=127.0.0.1:$HTTP_PORT" \
				</dev/null >"$DIR/run.log" 2>&1
		) &
		echo $! >"$DIR/run.pid"
	fi
	local i
	for ((i = 0; i < 60; i++)); do
		curl -fsS --cacert "$OUT/sightline/tls/ca.pem" "https://127.0.0.1:$HTTP_PORT/readyz" >/dev/null 2>&1 && break
		kill -0 "$(cat "$DIR/run.pid")" 2>/dev/null || die "sightline run exited; see $DIR/run.log"
		sleep 1
	done
	log "sightline: https://127.0.0.1:$HTTP_PORT (log $DIR/run.log)"
	check
}

check() {
	local ca="$OUT/sightline/tls/ca.pem" h="https://127.0.0.1:$HTTP_PORT" cid code
	cid="stack-tls-$(date +%s)"
	curl -fsS --cacert "$ca" "$h/readyz" >/dev/null || die "not ready: $h/readyz"
	code="$(curl -s -o /dev/null -w '%{http_code}' --cacert "$ca" -H 'Content-Type: application/json' "$h/v1/events" --data-binary '{}')"
	[[ $code == 401 ]] || die "POST /v1/events without a token: $code, want 401"
	curl -fsS --cacert "$ca" -H "Authorization: Bearer $(cat "$OUT/sightline/http/ingest")" -H 'Content-Type: application/json' \
		-H "X-Correlation-ID: $cid" "$h/v1/events" --data-binary \
		'{"type":"snapshot.stack_tls","data":{"scope":"stack-tls","tag":'"$(date +%s)"',"final":true,"count":1,"nodes":[{"label":"Service","key":"checkout"}]}}' >/dev/null
	local i out=""
	for ((i = 0; i < 30; i++)); do
		out="$("$DIR/bin/sightline" trace "$cid" --api "$h" --api-ca "$ca" --token-file "$OUT/sightline/http/read" 2>&1)" && [[ $out == *snapshot.stack_tls* ]] && break
		sleep 1
	done
	[[ $out == *snapshot.stack_tls* ]] || die "the event did not reach the index (OpenSearch over https): $out"
	log "ingest (https, token) -> NATS (tls) -> processor -> index (OpenSearch https, user sightline): trace $cid found"
	(
		set -a
		. "$DIR/sightline.env"
		set +a
		for ((i = 0; i < 30; i++)); do
			"$DIR/bin/sightline" graph status --config "$DIR/sightline.yaml" 2>/dev/null | grep -q '^stack-tls ' && exit 0
			sleep 1
		done
		exit 1
	) || die "the snapshot did not reach Neo4j (bolt+s)"
	log "graph sink wrote scope stack-tls to Neo4j over bolt+s"
	curl -fsS --cacert "$ca" -H "Authorization: Bearer $(cat "$OUT/sightline/http/read")" "$h/healthz/components"
	echo
}

down() {
	local f
	for f in "$DIR/run.pid" "$DIR/nats/pid" "$DIR/minio/pid"; do
		if alive "$f"; then
			kill "$(cat "$f")" 2>/dev/null || true
		fi
		rm -f "$f"
	done
	osec down || true
	svc down neo4j-tls s3-tls 2>/dev/null || true
}

case "${1:-}" in
up) up ;;
check) check ;;
down) down ;;
*) die "usage: $0 up|check|down" ;;
esac
