#!/usr/bin/env bash
# .ci/postgres.sh: a private PostgreSQL server for corebank's tests and CI.
#
#   .ci/postgres.sh start   install if needed, initdb once, start; print the URL
#   .ci/postgres.sh stop    stop the server (the data directory stays)
#   .ci/postgres.sh url     print the admin URL
#   .ci/postgres.sh status  exit 0 if the server is running
#   .ci/postgres.sh reset   stop and delete the data directory
#
# The server listens on 127.0.0.1 only (port COREBANK_PG_PORT, default 55432),
# trusts loopback connections, and runs with fsync and synchronous_commit on:
# durability is what the tests check. Its bootstrap superuser is "corebank".
# The URL (stdout of start and url) is what COREBANK_TEST_POSTGRES_URL expects:
#
#   export COREBANK_TEST_POSTGRES_URL=$(.ci/postgres.sh start)
#
# initdb refuses to run as root, so as root the server runs as the system user
# corebank-pg (created here); otherwise as the calling user. Every command is
# idempotent and safe to run concurrently (start takes a lock); messages go to
# stderr.
set -euo pipefail

port=${COREBANK_PG_PORT:-55432}
os_user=corebank-pg
if [[ $(id -u) -eq 0 ]]; then
	data=${COREBANK_PG_DATA:-/var/tmp/corebank-pg-$port}
else
	data=${COREBANK_PG_DATA:-/var/tmp/corebank-pg-$(id -un)-$port}
fi
url="postgres://corebank@127.0.0.1:$port/postgres?sslmode=disable"

log() { echo "postgres.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# bindir prints the newest installed server's bin directory, 15 preferred.
bindir() {
	if [[ -x /usr/lib/postgresql/15/bin/initdb ]]; then
		echo /usr/lib/postgresql/15/bin
		return
	fi
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	[[ -n $d && -x $d/initdb ]] && echo "$d"
}

install_server() {
	[[ -n $(bindir) ]] && return
	[[ $(id -u) -eq 0 ]] || die "PostgreSQL server binaries not found and not root: apt-get install postgresql"
	log "installing postgresql from Debian"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y -q postgresql </dev/null >&2; then
		apt-get update -q </dev/null >&2
		apt-get install -y -q postgresql </dev/null >&2
	fi
	[[ -n $(bindir) ]] || die "postgresql installed but no server binaries under /usr/lib/postgresql"
}

# as runs a command as the server's owner.
as() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u "$os_user" -- "$@"
	else
		"$@"
	fi
}

running() {
	local bin
	bin=$(bindir) || return 1
	[[ -n $bin && -f $data/PG_VERSION ]] || return 1
	as "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1
}

start() {
	install_server
	local bin
	bin=$(bindir)
	if [[ $(id -u) -eq 0 ]] && ! id -u "$os_user" >/dev/null 2>&1; then
		log "creating system user $os_user"
		useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$os_user" ||
			id -u "$os_user" >/dev/null 2>&1 || die "cannot create user $os_user"
	fi
	mkdir -p "$data"
	chmod 700 "$data"
	[[ $(id -u) -eq 0 ]] && chown "$os_user:" "$data"

	# Another start (a parallel test binary) may be doing the same: serialize.
	exec 9>"$data.lock"
	flock 9

	if [[ ! -f $data/PG_VERSION ]]; then
		log "initdb $data"
		as "$bin/initdb" -D "$data" -U corebank --auth=trust --encoding=UTF8 --locale=C.UTF-8 >&2 ||
			as "$bin/initdb" -D "$data" -U corebank --auth=trust --encoding=UTF8 --locale=C >&2
		as tee -a "$data/postgresql.conf" >/dev/null <<-EOF

			# corebank test server (.ci/postgres.sh)
			listen_addresses = '127.0.0.1'
			port = $port
			unix_socket_directories = '$data'
			max_connections = 200
			shared_buffers = 128MB
			fsync = on
			synchronous_commit = on
			full_page_writes = on
			logging_collector = off
		EOF
		# Trust on loopback and on the private socket only.
		as tee "$data/pg_hba.conf" >/dev/null <<-EOF
			local all all trust
			host all all 127.0.0.1/32 trust
		EOF
	fi

	if ! running; then
		log "starting on 127.0.0.1:$port"
		# 9>&-: the server must not inherit (and hold forever) the start lock.
		as "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 120 start >&2 9>&- ||
			{ tail -n 20 "$data/server.log" >&2; die "pg_ctl start failed"; }
	fi
	local i
	for i in $(seq 1 120); do
		if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U corebank -d postgres; then
			# The bootstrap superuser is corebank; make sure of it on old data dirs.
			"$bin/psql" -q -X -v ON_ERROR_STOP=1 "$url" -c "SELECT 1" >/dev/null ||
				die "server on port $port does not accept user corebank (another server on that port?)"
			echo "$url"
			return
		fi
		sleep 0.5
	done
	die "server on 127.0.0.1:$port not ready after 60s"
}

stop() {
	if running; then
		log "stopping"
		as "$(bindir)/pg_ctl" -D "$data" -m fast -w -t 60 stop >&2
	fi
}

case ${1:-} in
start) start ;;
stop) stop ;;
url) echo "$url" ;;
status) running ;;
reset)
	stop
	rm -rf "$data" "$data.lock"
	;;
*)
	echo "usage: $0 start|stop|url|status|reset" >&2
	exit 2
	;;
esac
