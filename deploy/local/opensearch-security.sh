#!/usr/bin/env bash
# Runs the Compose stack's OpenSearch configuration (deploy/opensearch/opensearch.yml and
# security/*.yml, certificates from deploy/local/dev-tls.sh handed over by
# deploy/secrets-init/secrets-init.sh) on a real OpenSearch with the security plugin, without
# Docker, so those files are proven and not only read:
#   bash deploy/local/opensearch-security.sh up      # prints the SIGHTLINE_TEST_OPENSEARCH_SECURITY_* env
#   bash deploy/local/opensearch-security.sh down
# The plugin comes from Maven Central (org.opensearch.plugin:opensearch-security), installed into
# a copy of the integ-test distribution of the same version. Maven Central has no security
# plugin for the image's 2.19.6, so this runs 2.19.4 (OPENSEARCH_SECURITY_VERSION), the
# newest 2.19 it has: same major and minor, same settings.
# Everything lives under .local/opensearch-security/ (OPENSEARCH_SECURITY_DIR); ports 4792
# (HTTPS) and 4793 (transport) unless OPENSEARCH_SECURITY_PORT / _TRANSPORT_PORT say otherwise.
# Only opensearch.yml's network settings and paths are overridden (-E flags on the command line).
# DEV_SECRETS_DIR: use the certificates of this dev-tls.sh folder (default: its own).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="$ROOT/.local/cache"
DIR="${OPENSEARCH_SECURITY_DIR:-$ROOT/.local/opensearch-security}"
V="${OPENSEARCH_SECURITY_VERSION:-2.19.4}"
PORT="${OPENSEARCH_SECURITY_PORT:-4792}"
TPORT="${OPENSEARCH_SECURITY_TRANSPORT_PORT:-4793}"
SVC_USER="${SIGHTLINE_TEST_SVC_USER:-sightline-svc}"
TIMEOUT="${OPENSEARCH_SECURITY_TIMEOUT:-240}"
M2="$CACHE/m2"

log() { printf '[opensearch-security] %s\n' "$*" >&2; }
die() {
	printf '[opensearch-security] ERROR: %s\n' "$*" >&2
	exit 1
}

java_home() {
	local c v
	for c in ${SIGHTLINE_TEST_JAVA_HOME:-} /usr/lib/jvm/*; do
		[[ -x "$c/bin/java" ]] || continue
		v="$("$c/bin/java" -XshowSettings:properties -version 2>&1 | awk -F' = ' '/java.specification.version/ {print $2}')"
		[[ "$v" == 17 || "$v" == 21 ]] && {
			echo "$c"
			return 0
		}
	done
	return 1
}

fetch() { # GROUP ARTIFACT VERSION: the zip's path in the Maven repository
	local f="$M2/${1//.//}/$2/$3/$2-$3.zip"
	if [[ ! -f "$f" ]]; then
		command -v mvn >/dev/null || die "mvn is needed"
		log "fetching $1:$2:$3:zip from Maven Central"
		mvn -B -q -Dmaven.repo.local="$M2" dependency:get -Dartifact="$1:$2:$3:zip" -Dtransitive=false \
			>"$CACHE/$2-$3-fetch.log" 2>&1 || die "download failed, see $CACHE/$2-$3-fetch.log"
	fi
	echo "$f"
}

pid_of() {
	local pid
	[[ -f "$DIR/pid" ]] || return 1
	pid="$(cat "$DIR/pid")"
	[[ "$pid" =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$DIR" || return 1
	echo "$pid"
}

password() { # NAME: a generated password, kept in $DIR/passwords.env
	grep -s "^$1=" "$DIR/passwords.env" | cut -d= -f2-
}

up() {
	local jhome home="$DIR/opensearch-$V" sec="${DEV_SECRETS_DIR:-$DIR/secrets}" pid
	jhome="$(java_home)" || die "a JDK 17 or 21 is needed"
	mkdir -p "$DIR" "$CACHE"
	if [[ ! -f "$home/.complete" ]]; then
		local dist plugin
		dist="$(fetch org.opensearch.distribution.integ-test-zip opensearch "$V")"
		plugin="$(fetch org.opensearch.plugin opensearch-security "$V.0")"
		rm -rf "$home" "$DIR/unzip" && mkdir -p "$DIR/unzip"
		unzip -q -o "$dist" -d "$DIR/unzip" && mv "$DIR/unzip"/*/ "$home" && rmdir "$DIR/unzip"
		log "installing the security plugin $V.0"
		OPENSEARCH_JAVA_HOME="$jhome" "$home/bin/opensearch-plugin" install --batch "file://$plugin" \
			>"$DIR/plugin-install.log" 2>&1 || die "plugin install failed, see $DIR/plugin-install.log"
		touch "$home/.complete"
	fi
	if pid="$(pid_of)"; then
		log "already running (pid $pid)"
		env_out
		return 0
	fi
	# The stack's certificates, exactly as the containers get them.
	DEV_SECRETS_DIR="$sec" bash "$ROOT/deploy/local/dev-tls.sh" >/dev/null
	rm -rf "$DIR/out" && SRC="$sec" OUT="$DIR/out" CHOWN=0 sh "$ROOT/deploy/secrets-init/secrets-init.sh" >/dev/null
	if [[ ! -f "$DIR/passwords.env" ]]; then
		(
			umask 077
			gen() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24; }
			printf 'OPENSEARCH_INITIAL_ADMIN_PASSWORD=%s\nOPENSEARCH_SIGHTLINE_PASSWORD=%s\n' "$(gen)" "$(gen)" >"$DIR/passwords.env"
		)
	fi
	local conf="$DIR/config"
	rm -rf "$conf" && cp -r "$home/config" "$conf"
	cp "$ROOT/deploy/opensearch/opensearch.yml" "$conf/opensearch.yml"
	cp "$ROOT"/deploy/opensearch/security/{internal_users,roles,roles_mapping}.yml "$conf/opensearch-security/"
	mkdir -p "$conf/certs" && cp -r "$DIR/out/opensearch/." "$conf/certs/"
	sed -i -e 's/^-Xms.*/-Xms512m/' -e 's/^-Xmx.*/-Xmx512m/' -e "s#logs/gc.log#$DIR/logs/gc.log#" \
		-e "s#HeapDumpPath=data#HeapDumpPath=$DIR/data#" -e "s#ErrorFile=logs/#ErrorFile=$DIR/logs/#" "$conf/jvm.options"
	mkdir -p "$DIR"/{data,logs,tmp}
	id "$SVC_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$SVC_USER"
	chown -R "$SVC_USER:" "$DIR/data" "$DIR/logs" "$DIR/tmp" "$conf"
	chmod 700 "$conf/certs" && chmod 600 "$conf/certs/opensearch.key"
	log "starting OpenSearch $V with the security plugin on https://127.0.0.1:$PORT"
	(
		set -a
		. "$DIR/passwords.env"
		set +a
		cd "$DIR"
		exec </dev/null >"$DIR/logs/console.log" 2>&1
		exec setpriv --reuid="$(id -u "$SVC_USER")" --regid="$(id -g "$SVC_USER")" --init-groups \
			setsid env -i PATH=/usr/bin:/bin HOME="$DIR" OPENSEARCH_JAVA_HOME="$jhome" OPENSEARCH_PATH_CONF="$conf" \
			OPENSEARCH_TMPDIR="$DIR/tmp" OPENSEARCH_INITIAL_ADMIN_PASSWORD="$OPENSEARCH_INITIAL_ADMIN_PASSWORD" \
			OPENSEARCH_SIGHTLINE_PASSWORD="$OPENSEARCH_SIGHTLINE_PASSWORD" \
			"$home/bin/opensearch" -Enetwork.host=127.0.0.1 -Ehttp.port="$PORT" -Etransport.port="$TPORT" \
			-Epath.data="$DIR/data" -Epath.logs="$DIR/logs" -Ecluster.routing.allocation.disk.threshold_enabled=false
	) &
	echo $! >"$DIR/pid"
	local i pw
	pw="$(password OPENSEARCH_SIGHTLINE_PASSWORD)"
	for ((i = 0; i < TIMEOUT; i += 2)); do
		if curl -fsS --cacert "$sec/tls/ca.pem" -u "sightline:$pw" \
			"https://127.0.0.1:$PORT/_cluster/health?wait_for_status=yellow&timeout=2s" >/dev/null 2>&1; then
			log "healthy: https with the dev CA, user sightline"
			env_out
			return 0
		fi
		# kill -0, not pid_of: until the subshell has exec'd, its command line is this script's
		kill -0 "$(cat "$DIR/pid")" 2>/dev/null || die "OpenSearch exited; see $DIR/logs/console.log"
		sleep 2
	done
	die "not healthy after ${TIMEOUT}s; see $DIR/logs/console.log"
}

env_out() {
	echo "SIGHTLINE_TEST_OPENSEARCH_SECURITY_URL=https://127.0.0.1:$PORT"
	echo "SIGHTLINE_TEST_OPENSEARCH_SECURITY_CA_FILE=${DEV_SECRETS_DIR:-$DIR/secrets}/tls/ca.pem"
	echo "SIGHTLINE_TEST_OPENSEARCH_SECURITY_PASSWORDS=$DIR/passwords.env"
}

down() {
	local pid
	if pid="$(pid_of)"; then
		log "stopping pid $pid"
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 30); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 1
		done
	fi
	rm -f "$DIR/pid"
}

case "${1:-}" in
up) up ;;
down) down ;;
env) env_out ;;
*) die "usage: $0 up|down|env" ;;
esac
