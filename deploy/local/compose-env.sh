#!/usr/bin/env bash
# Make deploy/env/*.env (git-ignored) from the committed *.env.example templates, with
# random, mutually consistent secrets, and the TLS certificates of every service and the HTTP
# tokens of the pipeline (deploy/local/dev-tls.sh). When every .env exists nothing changes; when only
# some exist the script stops (their secrets must agree), and --force rewrites them all.
#   bash deploy/local/compose-env.sh [--force]
# COMPOSE_ENV_DIR works on another folder of templates (tests); DEV_SECRETS_DIR is dev-tls.sh's.
set -euo pipefail
ENV_DIR="${COMPOSE_ENV_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../env" && pwd)}"
force=0
[[ "${1:-}" == --force ]] && force=1

# The services' TLS certificates and the HTTP tokens (deploy/secrets/, kept when present).
bash "$(dirname "${BASH_SOURCE[0]}")/dev-tls.sh"

gen() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c "${1:-24}"; }
nats_pw="$(gen)" nats_reader_pw="$(gen)" nats_operator_pw="$(gen)" neo4j_pw="$(gen)" minio_pw="$(gen 32)" grafana_pw="$(gen)"
os_admin_pw="$(gen)" os_sightline_pw="$(gen)"

examples=("$ENV_DIR"/*.env.example)
missing=0
for example in "${examples[@]}"; do [[ -f "${example%.example}" ]] || missing=$((missing + 1)); done
if ((force == 0)); then
	if ((missing == 0)); then
		echo "all of $ENV_DIR/*.env exist; nothing to do (--force regenerates every secret)"
		exit 0
	fi
	if ((missing < ${#examples[@]})); then
		echo "some of $ENV_DIR/*.env exist and some do not; their secrets must agree, so rerun with --force" >&2
		exit 1
	fi
fi
umask 077
for example in "${examples[@]}"; do
	out="${example%.example}"
	sed -e "s#change-me-natsreader#$nats_reader_pw#g" -e "s#change-me-natsoperator#$nats_operator_pw#g" \
		-e "s#change-me-nats#$nats_pw#g" -e "s#change-me-neo4j#$neo4j_pw#g" \
		-e "s#change-me-minio#$minio_pw#g" -e "s#change-me-grafana#$grafana_pw#g" \
		-e "s#change-me-osadmin#$os_admin_pw#g" -e "s#change-me-ossightline#$os_sightline_pw#g" "$example" >"$out"
	echo "wrote $out"
done
