#!/usr/bin/env bash
# Development TLS material and HTTP API tokens for the Compose stack, all under the
# git-ignored deploy/secrets/:
#   tls/ca.pem, tls/ca.key             a private CA (made once; ca.key never leaves this folder)
#   tls/NAME.pem, tls/NAME.key         a server certificate for each Compose service that serves
#                                      TLS (NAME: nats, neo4j, opensearch, minio, sightline),
#                                      for the names NAME, localhost and 127.0.0.1, signed by the
#                                      CA, valid 397 days; usable as client certificate too
#                                      (OpenSearch nodes authenticate each other with it)
#   tls/opensearch-admin.pem, .key     OpenSearch's admin client certificate (plugins.security.
#                                      authcz.admin_dn, for securityadmin.sh); never mounted
#   http/admin, http/read, http/ingest, http/prometheus
#                                      one random bearer token per file (http.auth.token_files;
#                                      the file name is the token's name in logs)
# Keys and tokens are mode 600, certificates 644. The containers do not read these files
# directly: the one-shot secrets-init service of compose.yaml copies each service's files
# into that service's own volume, owned by the user the service runs as (deploy/README.md).
# Existing files are kept (a second run writes nothing); --force makes everything again.
# DEV_SECRETS_DIR writes elsewhere; extra NAMEs add server certificates for other names.
#   bash deploy/local/dev-tls.sh [--force] [NAME...]
set -euo pipefail
OUT="${DEV_SECRETS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/secrets}"
# The services of deploy/compose.yaml that serve TLS; deploy/security_test.go checks that
# every secret compose.yaml mounts is one of these files.
SERVICES=(nats neo4j opensearch minio sightline nats-exporter prometheus grafana)
force=0
if [[ "${1:-}" == --force ]]; then
	force=1
	shift
fi
names=("${SERVICES[@]}" "$@")
command -v openssl >/dev/null || {
	echo "openssl is needed (apt-get install -y openssl)" >&2
	exit 1
}
umask 077
mkdir -p "$OUT/tls" "$OUT/http"
if ((force)); then rm -f "$OUT"/tls/* "$OUT"/http/*; fi

if [[ ! -f "$OUT/tls/ca.pem" ]]; then
	openssl req -x509 -new -nodes -newkey rsa:2048 -days 3650 -subj "/CN=Sightline development CA" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
		-keyout "$OUT/tls/ca.key" -out "$OUT/tls/ca.pem" 2>/dev/null
	echo "wrote $OUT/tls/ca.pem (and ca.key)"
fi

# issue NAME SUBJECT EXTENSIONS: NAME.pem and NAME.key signed by the CA, unless they exist.
# RSA 2048 in PKCS#8: the key format every service here reads (Neo4j, OpenSearch, MinIO, NATS, Go).
issue() {
	local n="$1" subj="$2" ext
	[[ -f "$OUT/tls/$n.pem" && -f "$OUT/tls/$n.key" ]] && return 0
	ext="$(mktemp)"
	printf '%s\n' "$3" >"$ext"
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$OUT/tls/$n.key" 2>/dev/null
	openssl req -new -key "$OUT/tls/$n.key" -subj "$subj" -out "$OUT/tls/$n.csr" 2>/dev/null
	openssl x509 -req -in "$OUT/tls/$n.csr" -CA "$OUT/tls/ca.pem" -CAkey "$OUT/tls/ca.key" -CAcreateserial \
		-days 397 -extfile "$ext" -out "$OUT/tls/$n.pem" 2>/dev/null
	rm -f "$ext" "$OUT/tls/$n.csr" "$OUT/tls/ca.srl"
	echo "wrote $OUT/tls/$n.pem (and $n.key)"
}
for n in "${names[@]}"; do
	issue "$n" "/CN=$n" "subjectAltName=DNS:$n,DNS:localhost,IP:127.0.0.1
basicConstraints=critical,CA:FALSE
extendedKeyUsage=serverAuth,clientAuth
keyUsage=critical,digitalSignature,keyEncipherment"
done
issue opensearch-admin "/CN=sightline-opensearch-admin" "basicConstraints=critical,CA:FALSE
extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature,keyEncipherment"

for t in admin read ingest prometheus; do
	[[ -f "$OUT/http/$t" ]] && continue
	openssl rand -hex 32 >"$OUT/http/$t"
	echo "wrote $OUT/http/$t"
done
# Modes are (re)applied on every run: files made by an older version of this script were 644.
chmod 600 "$OUT"/tls/*.key "$OUT"/http/*
chmod 644 "$OUT"/tls/*.pem
chmod 755 "$OUT" "$OUT/tls" "$OUT/http"
