#!/bin/sh
# The one-shot secrets-init service of compose.yaml runs this (busybox sh) before the other
# services start. It copies each service's certificate, key and tokens from deploy/secrets
# (made by deploy/local/dev-tls.sh, mounted read-only at $SRC) into that service's own volume
# under $OUT, owned by the user the service's image runs as: keys and tokens mode 600, so a
# service reads only its own key and nothing else can. It runs on every `up`, so a rotated
# certificate (dev-tls.sh --force) reaches the services on their next start.
#   SRC=deploy/secrets OUT=/tmp/x sh deploy/secrets-init/secrets-init.sh   (CHOWN=0 skips chown)
set -eu
SRC="${SRC:-/secrets}"
OUT="${OUT:-/out}"
CHOWN="${CHOWN:-1}"

# put SERVICE OWNER MODE FROM TO: $SRC/FROM to $OUT/SERVICE/TO.
put() {
	if [ ! -f "$SRC/$4" ]; then
		echo "secrets-init: $SRC/$4 is missing; run: bash deploy/local/dev-tls.sh" >&2
		exit 1
	fi
	mkdir -p "$(dirname "$OUT/$1/$5")"
	cp "$SRC/$4" "$OUT/$1/$5.new"
	chmod "$3" "$OUT/$1/$5.new"
	[ "$CHOWN" = 1 ] && chown "$2" "$OUT/$1/$5.new"
	mv -f "$OUT/$1/$5.new" "$OUT/$1/$5"
}
# own SERVICE OWNER: the service's folders belong to it, mode 700.
own() {
	find "$OUT/$1" -type d -exec chmod 700 {} +
	[ "$CHOWN" = 1 ] && chown -R "$2" "$OUT/$1"
	echo "secrets-init: $1 ready ($2)"
}

# nats (the nats image runs as root): /etc/nats-tls
put nats 0:0 600 tls/nats.key nats.key
put nats 0:0 644 tls/nats.pem nats.pem
own nats 0:0

# neo4j (uid 7474): /ssl, the bolt SSL policy's base directory is /ssl/bolt
put neo4j 7474:7474 600 tls/neo4j.key bolt/server.key
put neo4j 7474:7474 644 tls/neo4j.pem bolt/server.pem
put neo4j 7474:7474 644 tls/ca.pem bolt/trusted/ca.pem
mkdir -p "$OUT/neo4j/bolt/revoked"
own neo4j 7474:7474

# opensearch (uid 1000): /usr/share/opensearch/config/certs (certificates must be under config/)
put opensearch 1000:1000 600 tls/opensearch.key opensearch.key
put opensearch 1000:1000 644 tls/opensearch.pem opensearch.pem
put opensearch 1000:1000 644 tls/ca.pem ca.pem
own opensearch 1000:1000

# minio (runs as root): --certs-dir /certs
put minio 0:0 600 tls/minio.key private.key
put minio 0:0 644 tls/minio.pem public.crt
put minio 0:0 644 tls/ca.pem CAs/ca.crt
own minio 0:0

# sightline (distroless nonroot, uid 65532): /run/secrets/sightline
put sightline 65532:65532 600 tls/sightline.key tls/sightline.key
put sightline 65532:65532 644 tls/sightline.pem tls/sightline.pem
put sightline 65532:65532 644 tls/ca.pem tls/ca.pem
for t in admin read ingest prometheus; do
	put sightline 65532:65532 600 "http/$t" "http/$t"
done
own sightline 65532:65532

# nats-exporter (runs as root): /etc/nats-exporter/tls, its HTTPS certificate and the CA it
# checks the NATS monitoring port against (SSL_CERT_FILE)
put nats-exporter 0:0 600 tls/nats-exporter.key nats-exporter.key
put nats-exporter 0:0 644 tls/nats-exporter.pem nats-exporter.pem
put nats-exporter 0:0 644 tls/ca.pem ca.pem
own nats-exporter 0:0

# prometheus (nobody, uid 65534): /etc/prometheus/secrets, its HTTPS certificate, the CA of
# its scrape targets and its read token for the pipeline
put prometheus 65534:65534 600 tls/prometheus.key prometheus.key
put prometheus 65534:65534 644 tls/prometheus.pem prometheus.pem
put prometheus 65534:65534 600 http/prometheus sightline-token
put prometheus 65534:65534 644 tls/ca.pem ca.pem
own prometheus 65534:65534

# grafana (uid 472): /etc/grafana/tls, its HTTPS certificate and the CA of Prometheus
put grafana 472:0 600 tls/grafana.key grafana.key
put grafana 472:0 644 tls/grafana.pem grafana.pem
put grafana 472:0 644 tls/ca.pem ca.pem
own grafana 472:0
