#!/usr/bin/env bash
# Start, stop and report the real services Sightline's tests use, without Docker.
#
#   deploy/local/services.sh up     [neo4j|opensearch|s3|nats|elasticsearch|neo4j-tls|elasticsearch-tls|s3-tls ...]
#   deploy/local/services.sh down   [...]
#   deploy/local/services.sh status [...]
#   deploy/local/services.sh env        # print the env of the running services
#
# With no names: neo4j opensearch s3, plus nats when NATS=1, elasticsearch when ES=1, and
# TLS-only second instances (neo4j-tls, elasticsearch-tls, s3-tls; certificates from a local CA)
# when TLS=1.
# Everything lives under the git-ignored .local/ at the repo root:
#   .local/cache/                      downloads and builds (Maven repo, jars, zips, Go binaries)
#   .local/services/<name>/            conf, data, logs/, pid
#   .local/services/secrets.env        generated passwords and keys (mode 600)
#   .local/services/tls/               the local CA and the server certificate (TLS=1)
#   .local/services.env                the SIGHTLINE_TEST_* variables tests read
# SIGHTLINE_TEST_SERVICES_DIR and SIGHTLINE_TEST_SERVICES_ENV move the services folder and the env
# file (for example to start TLS instances next to services another checkout runs).
# See deploy/README.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="$ROOT/.local"
# A checkout whose .local is a link to another's shares its services: resolve the link, so that
# the pid checks (which match the path in a process's command line) recognise them.
[[ -L "$LOCAL" ]] && LOCAL="$(cd -P "$LOCAL" && pwd)"
CACHE="$LOCAL/cache"
SVC="${SIGHTLINE_TEST_SERVICES_DIR:-$LOCAL/services}"
BIN="$LOCAL/bin"
ENV_FILE="${SIGHTLINE_TEST_SERVICES_ENV:-$LOCAL/services.env}"
SECRETS="$SVC/secrets.env"

NEO4J_VERSION="${NEO4J_VERSION:-5.26.30}"
OPENSEARCH_VERSION="${OPENSEARCH_VERSION:-2.19.6}"
VERSITYGW_VERSION="${VERSITYGW_VERSION:-v1.8.0}"
ELASTICSEARCH_VERSION="${ELASTICSEARCH_VERSION:-8.19.21}"

NEO4J_BOLT_PORT="${NEO4J_BOLT_PORT:-7687}"
NEO4J_HTTP_PORT="${NEO4J_HTTP_PORT:-7474}"
OPENSEARCH_PORT="${OPENSEARCH_PORT:-9200}"
OPENSEARCH_TRANSPORT_PORT="${OPENSEARCH_TRANSPORT_PORT:-9300}"
ELASTICSEARCH_PORT="${ELASTICSEARCH_PORT:-9201}"
ELASTICSEARCH_TRANSPORT_PORT="${ELASTICSEARCH_TRANSPORT_PORT:-9301}"
S3_PORT="${S3_PORT:-9000}"
S3_BUCKET="${S3_BUCKET:-sightline}"
S3_REGION="${S3_REGION:-us-east-1}"
# TLS=1: second instances that only speak TLS, on their own ports and data folders.
NEO4J_TLS_BOLT_PORT="${NEO4J_TLS_BOLT_PORT:-7688}"
NEO4J_TLS_HTTP_PORT="${NEO4J_TLS_HTTP_PORT:-7475}"
ELASTICSEARCH_TLS_PORT="${ELASTICSEARCH_TLS_PORT:-9202}"
ELASTICSEARCH_TLS_TRANSPORT_PORT="${ELASTICSEARCH_TLS_TRANSPORT_PORT:-9302}"
S3_TLS_PORT="${S3_TLS_PORT:-9002}"
TLS_DIR="$SVC/tls"
NATS_CLIENT_PORTS=(14222 14223 14224)
NATS_CLUSTER_PORTS=(16222 16223 16224)
NATS_MONITOR_PORTS=(18222 18223 18224)

SVC_USER="${SIGHTLINE_TEST_SVC_USER:-sightline-svc}"
TIMEOUT="${SIGHTLINE_TEST_SERVICES_TIMEOUT:-180s}"
MVN_OPTS=(-B -q -Dmaven.repo.local="$CACHE/m2")

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

default_services() {
	local s=(neo4j opensearch s3)
	[[ "${NATS:-}" == 1 || "${NATS:-}" == true ]] && s+=(nats)
	[[ "${ES:-}" == 1 || "${ES:-}" == true ]] && s+=(elasticsearch)
	[[ "${TLS:-}" == 1 || "${TLS:-}" == true ]] && s+=(neo4j-tls elasticsearch-tls s3-tls)
	echo "${s[@]}"
}

# ---------------------------------------------------------------- helpers

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid_alive NAME: the pid in .local/services/NAME/pid runs and is ours (its command
# line mentions the service's folder or binary), so a recycled pid is never touched.
pid_of() {
	local f="$SVC/$1/pid" pid
	[[ -f "$f" ]] || return 1
	pid="$(cat "$f")"
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	[[ -r "/proc/$pid/cmdline" ]] || return 1
	[[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$SVC/$1" || return 1
	echo "$pid"
}

# java_home MAJOR...: a JDK whose major version is one of MAJOR.
java_home() {
	local want=("$@") c v
	for c in ${SIGHTLINE_TEST_JAVA_HOME:-} /usr/lib/jvm/* "$(dirname "$(dirname "$(readlink -f "$(command -v java 2>/dev/null || echo /nonexistent)")")")"; do
		[[ -x "$c/bin/java" ]] || continue
		v="$("$c/bin/java" -XshowSettings:properties -version 2>&1 | awk -F' = ' '/java.specification.version/ {print $2}')"
		for w in "${want[@]}"; do [[ "$v" == "$w" ]] && { echo "$c"; return 0; }; done
	done
	return 1
}

ensure_java17() {
	JAVA17="$(java_home 17 21)" && return 0
	if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
		log "no JDK 17/21 found; installing openjdk-17-jdk-headless with apt-get"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q openjdk-17-jdk-headless >/dev/null ||
			{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openjdk-17-jdk-headless >/dev/null; }
		JAVA17="$(java_home 17 21)" && return 0
	fi
	die "Neo4j 5.26 and OpenSearch 2.19 need a JDK 17 or 21; set SIGHTLINE_TEST_JAVA_HOME"
}

ensure_mvn() {
	command -v mvn >/dev/null && return 0
	if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
		log "installing maven with apt-get"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q maven >/dev/null ||
			{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q maven >/dev/null; }
	fi
	command -v mvn >/dev/null || die "mvn (Apache Maven) is needed to fetch Neo4j and OpenSearch from Maven Central"
}

gen_secret() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c "$1"; }

ensure_secrets() {
	mkdir -p "$SVC"
	if [[ ! -f "$SECRETS" ]]; then
		umask 077
		{
			echo "# generated by deploy/local/services.sh; git-ignored; delete with the data to rotate"
			echo "NEO4J_PASSWORD=$(gen_secret 24)"
			echo "S3_ACCESS_KEY=sightline$(gen_secret 8)"
			echo "S3_SECRET_KEY=$(gen_secret 32)"
		} >"$SECRETS"
		umask 022
	fi
	# shellcheck disable=SC1090
	source "$SECRETS"
}

# ensure_tools: unzip (Maven zips) and curl (NATS health) on a bare Debian machine.
ensure_tools() {
	local missing=() t
	for t in unzip curl; do command -v "$t" >/dev/null || missing+=("$t"); done
	((${#missing[@]})) || return 0
	if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
		log "installing ${missing[*]} with apt-get"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null ||
			{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; }
	fi
	for t in "${missing[@]}"; do command -v "$t" >/dev/null || die "$t is needed"; done
}

svcctl() {
	# go build is cached: a no-op rebuild takes about a second.
	(cd "$ROOT" && go build -o "$BIN/svcctl" ./deploy/local/svcctl) || die "building deploy/local/svcctl failed"
	"$BIN/svcctl" "$@"
}

ensure_user() {
	[[ $EUID -eq 0 ]] || { SVC_USER="$(id -un)"; return 0; }
	id "$SVC_USER" >/dev/null 2>&1 && return 0
	log "creating system user $SVC_USER (OpenSearch refuses to run as root)"
	useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$SVC_USER" 2>/dev/null ||
		useradd -r -M -s /bin/false "$SVC_USER"
}

# as_svc_user CMD...: exec CMD as the service user (root only), keeping the pid.
as_svc_user() {
	if [[ $EUID -eq 0 ]]; then
		exec setpriv --reuid="$(id -u "$SVC_USER")" --regid="$(id -g "$SVC_USER")" --init-groups "$@"
	fi
	exec "$@"
}

check_port_free() { # NAME PORT
	if port_open "$2"; then
		die "$1: port 127.0.0.1:$2 is already in use by a process this script did not start (see: ss -ltnp 'sport = :$2')"
	fi
}

# ---------------------------------------------------------------- prepare (cached)

prepare_neo4j() {
	local dir="$CACHE/neo4j-$NEO4J_VERSION"
	[[ -f "$dir/.complete" ]] && return 0
	ensure_mvn
	log "neo4j: resolving org.neo4j:neo4j:$NEO4J_VERSION and its jars from Maven Central"
	rm -rf "$dir"
	mvn "${MVN_OPTS[@]}" -f "$ROOT/deploy/local/maven/neo4j-pom.xml" -Dneo4j.version="$NEO4J_VERSION" \
		dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$dir/lib" >"$CACHE/neo4j-fetch.log" 2>&1 ||
		die "neo4j: Maven download failed, see $CACHE/neo4j-fetch.log"
	touch "$dir/.complete"
}

# fetch_zip GROUP ARTIFACT VERSION DEST: unzip a Maven Central zip into DEST (its one top folder).
fetch_zip() {
	local g="$1" a="$2" v="$3" dest="$4" zip
	[[ -f "$dest/.complete" ]] && return 0
	ensure_mvn
	log "$a: fetching $g:$a:$v:zip from Maven Central"
	mvn "${MVN_OPTS[@]}" dependency:get -Dartifact="$g:$a:$v:zip" -Dtransitive=false >"$CACHE/$a-fetch.log" 2>&1 ||
		die "$a: Maven download failed, see $CACHE/$a-fetch.log"
	zip="$CACHE/m2/${g//.//}/$a/$v/$a-$v.zip"
	rm -rf "$dest" "$dest.tmp" && mkdir -p "$dest.tmp"
	unzip -o -q "$zip" -d "$dest.tmp" || die "$a: cannot unzip $zip"
	mv "$dest.tmp"/*/ "$dest" && rmdir "$dest.tmp"
	touch "$dest/.complete"
}

prepare_opensearch() {
	fetch_zip org.opensearch.distribution.integ-test-zip opensearch "$OPENSEARCH_VERSION" "$CACHE/opensearch-$OPENSEARCH_VERSION"
}

prepare_elasticsearch() {
	fetch_zip org.elasticsearch.distribution.integ-test-zip elasticsearch "$ELASTICSEARCH_VERSION" "$CACHE/elasticsearch-$ELASTICSEARCH_VERSION"
}

prepare_s3() {
	local dir="$CACHE/gobin/versitygw@$VERSITYGW_VERSION"
	[[ -x "$dir/versitygw" ]] && return 0
	log "s3: building versitygw $VERSITYGW_VERSION with go install (about 2 minutes, once)"
	mkdir -p "$dir"
	GOBIN="$dir" GOFLAGS=-mod=mod go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" >"$CACHE/versitygw-build.log" 2>&1 ||
		die "s3: go install versitygw failed, see $CACHE/versitygw-build.log"
}

nats_version() { (cd "$ROOT" && go list -m -f '{{.Version}}' github.com/nats-io/nats-server/v2 2>/dev/null) || true; }

prepare_nats() {
	local v
	v="$(nats_version)"
	[[ -n "$v" ]] || die "nats: github.com/nats-io/nats-server/v2 is not in go.mod yet"
	NATS_BIN="$CACHE/gobin/nats-server@$v/nats-server"
	[[ -x "$NATS_BIN" ]] && return 0
	log "nats: building nats-server $v (the version go.mod embeds)"
	mkdir -p "$(dirname "$NATS_BIN")"
	GOBIN="$(dirname "$NATS_BIN")" go install "github.com/nats-io/nats-server/v2@$v" >"$CACHE/nats-build.log" 2>&1 ||
		die "nats: go install nats-server $v failed, see $CACHE/nats-build.log"
}

# ---------------------------------------------------------------- start

# start_neo4j_instance NAME BOLT_PORT HTTP_PORT [EXTRA_CONF]: one Neo4j under $SVC/NAME.
start_neo4j_instance() {
	local name="$1" bolt="$2" http="$3" extra="${4:-}" dir="$SVC/$1" lib="$CACHE/neo4j-$NEO4J_VERSION/lib" pid
	if pid="$(pid_of "$name")"; then log "$name: already running (pid $pid)"; return 0; fi
	check_port_free "$name" "$bolt"
	check_port_free "$name" "$http"
	mkdir -p "$dir"/{conf,data,logs,run,plugins,import}
	cat >"$dir/conf/neo4j.conf" <<-EOF
		# generated by deploy/local/services.sh; edits are overwritten on the next up
		server.directories.data=$dir/data
		server.directories.logs=$dir/logs
		server.directories.run=$dir/run
		server.directories.plugins=$dir/plugins
		server.directories.import=$dir/import
		server.default_listen_address=127.0.0.1
		server.default_advertised_address=127.0.0.1
		server.bolt.enabled=true
		server.bolt.listen_address=127.0.0.1:$bolt
		server.bolt.advertised_address=127.0.0.1:$bolt
		server.http.enabled=true
		server.http.listen_address=127.0.0.1:$http
		server.https.enabled=false
		server.memory.heap.initial_size=256m
		server.memory.heap.max_size=512m
		server.memory.pagecache.size=64m
		dbms.security.auth_enabled=true
		dbms.usage_report.enabled=false
		db.tx_log.rotation.retention_policy=2 files
		db.tx_log.preallocate=false
	EOF
	[[ -z $extra ]] || printf '%s\n' "$extra" >>"$dir/conf/neo4j.conf"
	if [[ ! -f "$dir/data/dbms/auth.ini" && ! -d "$dir/data/databases" ]]; then
		log "$name: setting the initial password (first start)"
		NEO4J_HOME="$dir" NEO4J_CONF="$dir/conf" "$JAVA17/bin/java" -cp "$lib/*" org.neo4j.cli.AdminTool \
			dbms set-initial-password "$NEO4J_PASSWORD" >"$dir/logs/set-initial-password.log" 2>&1 ||
			die "$name: set-initial-password failed, see $dir/logs/set-initial-password.log"
	fi
	log "$name: starting $NEO4J_VERSION on bolt port $bolt"
	(
		cd "$dir"
		export NEO4J_HOME="$dir" NEO4J_CONF="$dir/conf"
		exec setsid nohup "$JAVA17/bin/java" -Xms256m -Xmx512m -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError \
			-XX:-OmitStackTraceInFastThrow -Dfile.encoding=UTF-8 -Dio.netty.tryReflectionSetAccessible=true \
			--add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED \
			--add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/java.lang=ALL-UNNAMED \
			-cp "$lib/*" org.neo4j.server.CommunityEntryPoint --home-dir="$dir" --config-dir="$dir/conf" \
			</dev/null >"$dir/logs/console.log" 2>&1
	) &
	echo $! >"$dir/pid"
}

start_neo4j() { start_neo4j_instance neo4j "$NEO4J_BOLT_PORT" "$NEO4J_HTTP_PORT"; }

# ---------------------------------------------------------------- TLS (TLS=1)

# ensure_tls: a local CA and one server certificate for 127.0.0.1 and localhost, made once
# with openssl under $SVC/tls (ca.pem is what clients trust; ca.key never leaves the folder).
ensure_tls() {
	[[ -f "$TLS_DIR/server.pem" && -f "$TLS_DIR/ca.pem" ]] && return 0
	command -v openssl >/dev/null || die "openssl is needed for TLS=1"
	log "tls: creating a local CA and a server certificate in $TLS_DIR"
	mkdir -p "$TLS_DIR"
	(
		cd "$TLS_DIR"
		umask 077
		openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Sightline local test CA" \
			-keyout ca.key -out ca.pem -addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out server.key 2>/dev/null
		openssl req -new -key server.key -subj "/CN=localhost" -out server.csr 2>/dev/null
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n' >server.ext
		openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
			-extfile server.ext -out server.pem 2>/dev/null
		rm -f server.csr server.ext ca.srl
		chmod 644 ca.pem server.pem
		chmod 640 server.key
	) || die "tls: openssl failed"
}

# prepare_locked NAME: prepare_NAME while holding $CACHE/NAME.lock (flock when available).
prepare_locked() {
	if command -v flock >/dev/null; then
		(
			flock 9
			"prepare_$1"
		) 9>"$CACHE/$1.lock"
	else
		"prepare_$1"
	fi
}

prepare_neo4j-tls() { prepare_neo4j; }
prepare_elasticsearch-tls() { prepare_elasticsearch; }
prepare_s3-tls() { prepare_s3; }

start_neo4j-tls() {
	ensure_tls
	mkdir -p "$SVC/neo4j-tls/certificates/bolt/trusted" "$SVC/neo4j-tls/certificates/bolt/revoked"
	cp "$TLS_DIR/server.pem" "$TLS_DIR/server.key" "$SVC/neo4j-tls/certificates/bolt/"
	cp "$TLS_DIR/ca.pem" "$SVC/neo4j-tls/certificates/bolt/trusted/"
	start_neo4j_instance neo4j-tls "$NEO4J_TLS_BOLT_PORT" "$NEO4J_TLS_HTTP_PORT" "server.bolt.tls_level=REQUIRED
dbms.ssl.policy.bolt.enabled=true
dbms.ssl.policy.bolt.base_directory=$SVC/neo4j-tls/certificates/bolt
dbms.ssl.policy.bolt.private_key=server.key
dbms.ssl.policy.bolt.public_certificate=server.pem
dbms.ssl.policy.bolt.client_auth=NONE"
}

# start_search NAME HOME PORT TRANSPORT_PORT JAVA_HOME [KIND [EXTRA_YML]]: OpenSearch or
# Elasticsearch (KIND, default NAME), single node on loopback, run as the non-root service user.
start_search() {
	local name="$1" home="$2" port="$3" tport="$4" jhome="$5" kind="${6:-$1}" extra="${7:-}" dir="$SVC/$1" pid
	if pid="$(pid_of "$name")"; then log "$name: already running (pid $pid)"; return 0; fi
	check_port_free "$name" "$port"
	check_port_free "$name" "$tport"
	ensure_user
	mkdir -p "$dir"/{data,logs,tmp,run}
	rm -rf "$dir/config" && cp -r "$home/config" "$dir/config"
	# heap 512m; gc log and heap dumps into our folders, not the (root-owned) install
	sed -i -e 's/^-Xms.*/-Xms512m/' -e 's/^-Xmx.*/-Xmx512m/' \
		-e "s#logs/gc.log#$dir/logs/gc.log#" -e "s#HeapDumpPath=data#HeapDumpPath=$dir/data#" \
		-e "s#ErrorFile=logs/#ErrorFile=$dir/logs/#" "$dir/config/jvm.options"
	# Elasticsearch 8 sizes its heap from the machine's RAM unless told: pin it for both
	mkdir -p "$dir/config/jvm.options.d"
	printf -- '-Xms512m\n-Xmx512m\n' >"$dir/config/jvm.options.d/sightline-heap.options"
	cat >"$dir/config/$kind.yml" <<-EOF
		# generated by deploy/local/services.sh; edits are overwritten on the next up
		cluster.name: sightline-local-$name
		node.name: $name-0
		path.data: $dir/data
		path.logs: $dir/logs
		network.host: 127.0.0.1
		http.port: $port
		transport.port: $tport
		discovery.type: single-node
		action.auto_create_index: true
		cluster.routing.allocation.disk.threshold_enabled: false
	EOF
	if [[ -n $extra ]]; then
		printf '%s\n' "$extra" >>"$dir/config/$kind.yml"
	elif [[ $kind == elasticsearch ]]; then
		printf 'xpack.security.enabled: false\n' \
			>>"$dir/config/elasticsearch.yml"
	fi
	if [[ $name == *-tls ]]; then # certificates must live in the config folder
		mkdir -p "$dir/config/tls" && cp "$TLS_DIR/ca.pem" "$TLS_DIR/server.pem" "$TLS_DIR/server.key" "$dir/config/tls/"
	fi
	chown -R "$SVC_USER:" "$dir" 2>/dev/null || true
	log "$name: starting on port $port as user $SVC_USER"
	local prefix=OPENSEARCH
	[[ $kind == elasticsearch ]] && prefix=ES
	(
		cd "$dir"
		exec </dev/null >"$dir/logs/console.log" 2>&1
		as_svc_user setsid env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="$dir" \
			"${prefix}_JAVA_HOME=$jhome" "${prefix}_PATH_CONF=$dir/config" "${prefix}_TMPDIR=$dir/tmp" \
			"$home/bin/$kind" -p "$dir/run/$name.pid"
	) &
	echo $! >"$dir/pid"
}

start_opensearch() {
	start_search opensearch "$CACHE/opensearch-$OPENSEARCH_VERSION" "$OPENSEARCH_PORT" "$OPENSEARCH_TRANSPORT_PORT" "$JAVA17"
}

start_elasticsearch() {
	local j
	j="$(java_home 25 24 23 22 21)" || die "elasticsearch: needs a JDK 21+ (none found under /usr/lib/jvm)"
	start_search elasticsearch "$CACHE/elasticsearch-$ELASTICSEARCH_VERSION" "$ELASTICSEARCH_PORT" "$ELASTICSEARCH_TRANSPORT_PORT" "$j"
}

# elasticsearch-tls: HTTPS only (x-pack security with the local CA's certificate); anonymous
# requests act as superuser, since this instance exists to test TLS, not authentication.
start_elasticsearch-tls() {
	local j
	j="$(java_home 25 24 23 22 21)" || die "elasticsearch-tls: needs a JDK 21+ (none found under /usr/lib/jvm)"
	ensure_tls
	start_search elasticsearch-tls "$CACHE/elasticsearch-$ELASTICSEARCH_VERSION" "$ELASTICSEARCH_TLS_PORT" \
		"$ELASTICSEARCH_TLS_TRANSPORT_PORT" "$j" elasticsearch "xpack.security.enabled: true
xpack.security.http.ssl.enabled: true
xpack.security.http.ssl.key: tls/server.key
xpack.security.http.ssl.certificate: tls/server.pem
xpack.security.http.ssl.certificate_authorities: [tls/ca.pem]
xpack.security.transport.ssl.enabled: false
xpack.security.authc.anonymous.username: sightline-test
xpack.security.authc.anonymous.roles: superuser
xpack.security.authc.anonymous.authz_exception: true
xpack.ml.enabled: false"
}

start_s3-tls() {
	local dir="$SVC/s3-tls" bin="$CACHE/gobin/versitygw@$VERSITYGW_VERSION/versitygw" pid
	if pid="$(pid_of s3-tls)"; then log "s3-tls: already running (pid $pid)"; return 0; fi
	ensure_tls
	check_port_free s3-tls "$S3_TLS_PORT"
	mkdir -p "$dir"/{data,meta,logs}
	log "s3-tls: starting versitygw $VERSITYGW_VERSION on https://127.0.0.1:$S3_TLS_PORT"
	(
		cd "$dir"
		export ROOT_ACCESS_KEY_ID="$S3_ACCESS_KEY" ROOT_SECRET_ACCESS_KEY="$S3_SECRET_KEY"
		exec setsid nohup "$bin" --port "127.0.0.1:$S3_TLS_PORT" --region "$S3_REGION" --quiet \
			--cert "$TLS_DIR/server.pem" --key "$TLS_DIR/server.key" \
			--access-log "$dir/logs/access.log" \
			posix --sidecar "$dir/meta" "$dir/data" </dev/null >"$dir/logs/versitygw.log" 2>&1
	) &
	echo $! >"$dir/pid"
}

start_s3() {
	local dir="$SVC/s3" bin="$CACHE/gobin/versitygw@$VERSITYGW_VERSION/versitygw" pid
	if pid="$(pid_of s3)"; then log "s3: already running (pid $pid)"; return 0; fi
	check_port_free s3 "$S3_PORT"
	mkdir -p "$dir"/{data,meta,logs}
	log "s3: starting versitygw $VERSITYGW_VERSION on http://127.0.0.1:$S3_PORT (posix backend in $dir/data)"
	(
		cd "$dir"
		# keys through the environment, not the command line (ps shows that)
		export ROOT_ACCESS_KEY_ID="$S3_ACCESS_KEY" ROOT_SECRET_ACCESS_KEY="$S3_SECRET_KEY"
		exec setsid nohup "$bin" --port "127.0.0.1:$S3_PORT" --region "$S3_REGION" --quiet \
			--access-log "$dir/logs/access.log" \
			posix --sidecar "$dir/meta" "$dir/data" </dev/null >"$dir/logs/versitygw.log" 2>&1
	) &
	echo $! >"$dir/pid"
}

start_nats() {
	local dir="$SVC/nats" i pid routes=""
	if pid="$(pid_of nats)"; then log "nats: already running (pid $pid)"; return 0; fi
	for i in 0 1 2; do
		check_port_free nats "${NATS_CLIENT_PORTS[$i]}"
		check_port_free nats "${NATS_CLUSTER_PORTS[$i]}"
		routes+="nats-route://127.0.0.1:${NATS_CLUSTER_PORTS[$i]},"
	done
	routes="${routes%,}"
	for i in 0 1 2; do
		local n="$dir/n$i"
		mkdir -p "$n"/{data,logs}
		cat >"$n/nats.conf" <<-EOF
			# generated by deploy/local/services.sh
			server_name: sightline-n$i
			listen: 127.0.0.1:${NATS_CLIENT_PORTS[$i]}
			http: 127.0.0.1:${NATS_MONITOR_PORTS[$i]}
			# the same fsync policy as deploy/nats/nats.conf: a PubAck means on disk
			jetstream { store_dir: "$n/data", max_memory_store: 256MB, max_file_store: 2GB, sync_interval: always }
			cluster {
			  name: sightline-local
			  listen: 127.0.0.1:${NATS_CLUSTER_PORTS[$i]}
			  routes: [ $(echo "$routes" | sed 's/,/, /g') ]
			}
		EOF
		log "nats: starting node n$i on nats://127.0.0.1:${NATS_CLIENT_PORTS[$i]}"
		(
			cd "$n"
			exec setsid nohup "$NATS_BIN" -c "$n/nats.conf" -l "$n/logs/nats.log" </dev/null >"$n/logs/console.log" 2>&1
		) &
		echo $! >"$n/pid"
	done
	# the pid file of the service as a whole is node 0's; down stops every node
	cp "$dir/n0/pid" "$dir/pid"
}

# ---------------------------------------------------------------- wait

fail_with_log() { # NAME LOG REASON
	printf '[services] ERROR: %s is not healthy: %s\n[services] log: %s (last lines below)\n' "$1" "$3" "$2" >&2
	tail -n 25 "$2" 2>/dev/null | sed 's/^/    /' >&2 || true
	exit 1
}

wait_neo4j() {
	local out
	out="$(svcctl neo4j -timeout "$TIMEOUT" -pidfile "$SVC/neo4j/pid" -uri "bolt://127.0.0.1:$NEO4J_BOLT_PORT" \
		-user neo4j -password "$NEO4J_PASSWORD" 2>&1)" || fail_with_log neo4j "$SVC/neo4j/logs/neo4j.log" "$out (also $SVC/neo4j/logs/console.log, debug.log)"
	log "neo4j: healthy (Bolt answered RETURN 1)"
}

wait_opensearch() {
	local out
	out="$(svcctl opensearch -timeout "$TIMEOUT" -pidfile "$SVC/opensearch/pid" -url "http://127.0.0.1:$OPENSEARCH_PORT" 2>&1)" ||
		fail_with_log opensearch "$SVC/opensearch/logs/sightline-local-opensearch.log" "$out (also $SVC/opensearch/logs/console.log)"
	log "opensearch: healthy (_cluster/health green/yellow)"
}

wait_elasticsearch() {
	local out
	out="$(svcctl elasticsearch -timeout "$TIMEOUT" -pidfile "$SVC/elasticsearch/pid" -url "http://127.0.0.1:$ELASTICSEARCH_PORT" 2>&1)" ||
		fail_with_log elasticsearch "$SVC/elasticsearch/logs/sightline-local-elasticsearch.log" "$out (also $SVC/elasticsearch/logs/console.log)"
	log "elasticsearch: healthy (_cluster/health green/yellow)"
}

wait_neo4j-tls() {
	local out
	out="$(svcctl neo4j -timeout "$TIMEOUT" -pidfile "$SVC/neo4j-tls/pid" -uri "bolt+s://127.0.0.1:$NEO4J_TLS_BOLT_PORT" \
		-ca "$TLS_DIR/ca.pem" -user neo4j -password "$NEO4J_PASSWORD" 2>&1)" ||
		fail_with_log neo4j-tls "$SVC/neo4j-tls/logs/neo4j.log" "$out (also $SVC/neo4j-tls/logs/console.log, debug.log)"
	log "neo4j-tls: healthy (bolt+s answered RETURN 1, certificate checked against the local CA)"
}

wait_elasticsearch-tls() {
	local out
	out="$(svcctl elasticsearch -timeout "$TIMEOUT" -pidfile "$SVC/elasticsearch-tls/pid" \
		-url "https://127.0.0.1:$ELASTICSEARCH_TLS_PORT" -ca "$TLS_DIR/ca.pem" 2>&1)" ||
		fail_with_log elasticsearch-tls "$SVC/elasticsearch-tls/logs/sightline-local-elasticsearch-tls.log" "$out (also $SVC/elasticsearch-tls/logs/console.log)"
	log "elasticsearch-tls: healthy over https"
}

wait_s3-tls() {
	local out
	out="$(svcctl s3 -timeout "$TIMEOUT" -pidfile "$SVC/s3-tls/pid" -endpoint "https://127.0.0.1:$S3_TLS_PORT" -ca "$TLS_DIR/ca.pem" \
		-access "$S3_ACCESS_KEY" -secret "$S3_SECRET_KEY" -region "$S3_REGION" -bucket "$S3_BUCKET" 2>&1)" ||
		fail_with_log s3-tls "$SVC/s3-tls/logs/versitygw.log" "$out"
	log "s3-tls: healthy over https (bucket $S3_BUCKET)"
}

wait_s3() {
	local out
	out="$(svcctl s3 -timeout "$TIMEOUT" -pidfile "$SVC/s3/pid" -endpoint "http://127.0.0.1:$S3_PORT" \
		-access "$S3_ACCESS_KEY" -secret "$S3_SECRET_KEY" -region "$S3_REGION" -bucket "$S3_BUCKET" 2>&1)" ||
		fail_with_log s3 "$SVC/s3/logs/versitygw.log" "$out"
	log "s3: healthy (bucket $S3_BUCKET exists and lists)"
}

wait_nats() {
	local i deadline=$((SECONDS + 60))
	for i in 0 1 2; do
		until curl -fsS -m 2 "http://127.0.0.1:${NATS_MONITOR_PORTS[$i]}/healthz?js-enabled-only=true" >/dev/null 2>&1; do
			pid_of_node nats "$i" >/dev/null || fail_with_log nats "$SVC/nats/n$i/logs/nats.log" "node n$i exited"
			((SECONDS < deadline)) || fail_with_log nats "$SVC/nats/n$i/logs/nats.log" "node n$i /healthz not ok after 60s"
			sleep 1
		done
	done
	log "nats: 3-node JetStream cluster healthy"
}

pid_of_node() { # nats I
	local f="$SVC/$1/n$2/pid" pid
	[[ -f "$f" ]] || return 1
	pid="$(cat "$f")"
	[[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$SVC/$1/n$2" && echo "$pid"
}

# ---------------------------------------------------------------- env

write_env() {
	local tmp="$ENV_FILE.tmp"
	umask 077
	{
		echo "# written by deploy/local/services.sh up; git-ignored (contains secrets)"
		if pid_of neo4j >/dev/null; then
			echo "SIGHTLINE_TEST_NEO4J_URI=bolt://127.0.0.1:$NEO4J_BOLT_PORT"
			echo "SIGHTLINE_TEST_NEO4J_USER=neo4j"
			echo "SIGHTLINE_TEST_NEO4J_PASSWORD=$NEO4J_PASSWORD"
		fi
		if pid_of opensearch >/dev/null; then
			echo "SIGHTLINE_TEST_OPENSEARCH_URL=http://127.0.0.1:$OPENSEARCH_PORT"
		fi
		if pid_of elasticsearch >/dev/null; then
			echo "SIGHTLINE_TEST_ELASTICSEARCH_URL=http://127.0.0.1:$ELASTICSEARCH_PORT"
		fi
		if pid_of s3 >/dev/null; then
			echo "SIGHTLINE_TEST_S3_ENDPOINT=http://127.0.0.1:$S3_PORT"
			echo "SIGHTLINE_TEST_S3_BUCKET=$S3_BUCKET"
			echo "SIGHTLINE_TEST_S3_ACCESS_KEY=$S3_ACCESS_KEY"
			echo "SIGHTLINE_TEST_S3_SECRET_KEY=$S3_SECRET_KEY"
			echo "SIGHTLINE_TEST_S3_REGION=$S3_REGION"
		fi
		if [[ -f "$TLS_DIR/ca.pem" ]] && { pid_of neo4j-tls || pid_of elasticsearch-tls || pid_of s3-tls; } >/dev/null; then
			echo "SIGHTLINE_TEST_TLS_CA_FILE=$TLS_DIR/ca.pem"
		fi
		if pid_of neo4j-tls >/dev/null; then
			echo "SIGHTLINE_TEST_NEO4J_TLS_URI=bolt+s://127.0.0.1:$NEO4J_TLS_BOLT_PORT"
			echo "SIGHTLINE_TEST_NEO4J_TLS_USER=neo4j"
			echo "SIGHTLINE_TEST_NEO4J_TLS_PASSWORD=$NEO4J_PASSWORD"
		fi
		if pid_of elasticsearch-tls >/dev/null; then
			echo "SIGHTLINE_TEST_ELASTICSEARCH_TLS_URL=https://127.0.0.1:$ELASTICSEARCH_TLS_PORT"
		fi
		if pid_of s3-tls >/dev/null; then
			echo "SIGHTLINE_TEST_S3_TLS_ENDPOINT=https://127.0.0.1:$S3_TLS_PORT"
			echo "SIGHTLINE_TEST_S3_TLS_BUCKET=$S3_BUCKET"
			echo "SIGHTLINE_TEST_S3_TLS_ACCESS_KEY=$S3_ACCESS_KEY"
			echo "SIGHTLINE_TEST_S3_TLS_SECRET_KEY=$S3_SECRET_KEY"
			echo "SIGHTLINE_TEST_S3_TLS_REGION=$S3_REGION"
		fi
		if pid_of nats >/dev/null; then
			local urls="" p
			for p in "${NATS_CLIENT_PORTS[@]}"; do urls+="nats://127.0.0.1:$p,"; done
			echo "SIGHTLINE_TEST_NATS_CLUSTER_URLS=${urls%,}"
		fi
	} >"$tmp"
	umask 022
	mv "$tmp" "$ENV_FILE"
}

print_env() {
	[[ -f "$ENV_FILE" ]] || die "no $ENV_FILE; run: task services:up"
	grep -v '^#' "$ENV_FILE"
	echo "# load into a shell: set -a; . $ENV_FILE; set +a" >&2
}

# ---------------------------------------------------------------- commands

cmd_up() {
	local names=("$@") n t0=$SECONDS
	((${#names[@]})) || read -r -a names <<<"$(default_services)"
	mkdir -p "$CACHE" "$SVC" "$BIN"
	ensure_secrets
	ensure_tools
	ensure_java17
	# downloads and builds run in parallel; each is a no-op when cached
	# A TLS-only instance runs the same download as its plain twin: each artifact is prepared
	# once (two parallel unzips into one folder fail on a fresh machine), under a lock so two
	# concurrent "up" runs do not race either.
	local pids=() fails=0 prepared=" " base
	for n in "${names[@]}"; do
		case "$n" in
		neo4j | opensearch | elasticsearch | s3 | neo4j-tls | elasticsearch-tls | s3-tls)
			base="${n%-tls}"
			[[ $prepared == *" $base "* ]] && continue
			prepared+="$base "
			(prepare_locked "$base") & pids+=($!)
			;;
		nats) ;;
		*) die "unknown service '$n' (neo4j, opensearch, s3, nats, elasticsearch, neo4j-tls, elasticsearch-tls, s3-tls)" ;;
		esac
	done
	(cd "$ROOT" && go build -o "$BIN/svcctl" ./deploy/local/svcctl) & pids+=($!)
	for p in "${pids[@]}"; do wait "$p" || fails=1; done
	((fails == 0)) || die "preparing the services failed (messages above)"
	for n in "${names[@]}"; do
		[[ $n == nats ]] && prepare_nats
		"start_$n"
	done
	for n in "${names[@]}"; do "wait_$n"; done
	write_env
	log "all up in $((SECONDS - t0))s; env written to $ENV_FILE:"
	print_env
}

stop_pid() { # NAME PID
	local pid="$2" i
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 1 60); do
		kill -0 "$pid" 2>/dev/null || return 0
		[[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" == Z ]] && return 0
		sleep 0.5
	done
	log "$1: pid $pid ignored SIGTERM for 30s; sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
}

cmd_down() {
	local names=("$@") n pid i
	((${#names[@]})) || names=(nats s3-tls elasticsearch-tls neo4j-tls elasticsearch s3 opensearch neo4j)
	for n in "${names[@]}"; do
		if [[ $n == nats ]]; then
			for i in 0 1 2; do
				if pid="$(pid_of_node nats "$i")"; then log "nats: stopping node n$i (pid $pid)"; stop_pid nats "$pid"; fi
				rm -f "$SVC/nats/n$i/pid"
			done
			rm -f "$SVC/nats/pid"
			continue
		fi
		if pid="$(pid_of "$n")"; then
			log "$n: stopping (pid $pid)"
			stop_pid "$n" "$pid"
		fi
		rm -f "$SVC/$n/pid"
	done
	if [[ -f "$SECRETS" ]]; then ensure_secrets; write_env; fi
	log "down: done"
}

cmd_status() {
	local names=("$@") n pid state rc=0
	((${#names[@]})) || names=(neo4j opensearch s3 nats elasticsearch neo4j-tls elasticsearch-tls s3-tls)
	[[ -f "$SECRETS" ]] && source "$SECRETS"
	for n in "${names[@]}"; do
		if pid="$(pid_of "$n")"; then
			case "$n" in
			neo4j) "$BIN/svcctl" neo4j -timeout 0s -uri "bolt://127.0.0.1:$NEO4J_BOLT_PORT" -password "${NEO4J_PASSWORD:-}" 2>/dev/null && state=healthy || state=unhealthy ;;
			opensearch) "$BIN/svcctl" opensearch -timeout 0s -url "http://127.0.0.1:$OPENSEARCH_PORT" 2>/dev/null && state=healthy || state=unhealthy ;;
			elasticsearch) "$BIN/svcctl" elasticsearch -timeout 0s -url "http://127.0.0.1:$ELASTICSEARCH_PORT" 2>/dev/null && state=healthy || state=unhealthy ;;
			s3) "$BIN/svcctl" s3 -timeout 0s -endpoint "http://127.0.0.1:$S3_PORT" -access "${S3_ACCESS_KEY:-}" -secret "${S3_SECRET_KEY:-}" -region "$S3_REGION" 2>/dev/null && state=healthy || state=unhealthy ;;
			nats) curl -fsS -m 2 "http://127.0.0.1:${NATS_MONITOR_PORTS[0]}/healthz" >/dev/null 2>&1 && state=healthy || state=unhealthy ;;
			neo4j-tls) "$BIN/svcctl" neo4j -timeout 0s -uri "bolt+s://127.0.0.1:$NEO4J_TLS_BOLT_PORT" -ca "$TLS_DIR/ca.pem" -password "${NEO4J_PASSWORD:-}" 2>/dev/null && state=healthy || state=unhealthy ;;
			elasticsearch-tls) "$BIN/svcctl" elasticsearch -timeout 0s -url "https://127.0.0.1:$ELASTICSEARCH_TLS_PORT" -ca "$TLS_DIR/ca.pem" 2>/dev/null && state=healthy || state=unhealthy ;;
			s3-tls) "$BIN/svcctl" s3 -timeout 0s -endpoint "https://127.0.0.1:$S3_TLS_PORT" -ca "$TLS_DIR/ca.pem" -access "${S3_ACCESS_KEY:-}" -secret "${S3_SECRET_KEY:-}" -region "$S3_REGION" 2>/dev/null && state=healthy || state=unhealthy ;;
			esac
			[[ $state == healthy ]] || rc=1
			printf '%-18s %-10s pid %-8s logs %s\n' "$n" "$state" "$pid" "$([[ $n == nats ]] && echo "$SVC/nats/n{0,1,2}/logs/" || echo "$SVC/$n/logs/")"
		else
			printf '%-18s %-10s\n' "$n" stopped
		fi
	done
	return $rc
}

main() {
	local cmd="${1:-}"
	shift || true
	case "$cmd" in
	up) cmd_up "$@" ;;
	down) cmd_down "$@" ;;
	status) cmd_status "$@" ;;
	env) print_env ;;
	*)
		sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
		exit 2
		;;
	esac
}

main "$@"
