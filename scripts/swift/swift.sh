#!/usr/bin/env bash
# A single-node OpenStack Swift (Debian's packages) with its S3 API, on
# 127.0.0.1 only, for tests and development. Everything it writes lives in
# $SWIFT_STATE_DIR (default: <repo>/.swift, git-ignored); it stops exactly
# the processes it started (pid files, checked against their command line).
#
#   scripts/swift/swift.sh start [--fresh]   install if missing, start what is not running, make the bucket
#   scripts/swift/swift.sh stop [NAME...]    stop all four servers, or only the named ones (proxy account container object)
#   scripts/swift/swift.sh status            exit 0 when every server runs and the proxy is healthy
#   scripts/swift/swift.sh env               print the shell exports for the running store
#
# Output of start/env: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
# (tempauth's local test user, not a secret), AWS_REGION, SWIFT_S3_BUCKET;
# $SWIFT_STATE_DIR/env.json holds the same for tests.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
state=${SWIFT_STATE_DIR:-$repo/.swift}
bucket=${SWIFT_S3_BUCKET:-cipherkeep-test}
cors=${SWIFT_CORS_ORIGINS:-*}
servers=(account container object proxy)
packages=(swift swift-proxy swift-account swift-container swift-object python3-swift)
py=/usr/bin/python3 # pyenv's python3 cannot import swift

say() { echo "swift: $*" >&2; }

pid_of() { cat "$state/run/$1.pid" 2>/dev/null || true; }

# Alive and really our server (a recycled pid is someone else's process).
running() {
  local pid; pid=$(pid_of "$1")
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "swift-$1-server $state/etc/$1-server.conf"
}

healthy() {
  local port; port=$(sed -n 's/^proxy=//p' "$state/ports" 2>/dev/null)
  [[ -n $port ]] && curl -fsS --max-time 2 "http://127.0.0.1:$port/healthcheck" >/dev/null 2>&1
}

install_if_missing() {
  if [[ -x /usr/bin/swift-proxy-server ]] && command -v curl >/dev/null && $py -c 'import swift.common.middleware.s3api' 2>/dev/null; then return; fi
  [[ $(id -u) == 0 ]] || { say "Swift is not installed and this is not root: apt-get install ${packages[*]} curl"; exit 1; }
  say "installing ${packages[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${packages[@]}" curl >/dev/null
  # The packages ship systemd units; nothing here may serve on other addresses.
  command -v systemctl >/dev/null && systemctl stop 'swift-*' >/dev/null 2>&1 || true
}

free_ports() { # n free TCP ports on 127.0.0.1 (the last one is left closed: the cache filter's target)
  $py - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(('127.0.0.1', 0))
print(' '.join(str(s.getsockname()[1]) for s in socks))
EOF
}

write_config() {
  read -r pa pc po pp pm < <(free_ports 5)
  mkdir -p "$state/etc" "$state/srv/d1" "$state/run" "$state/log"
  printf 'account=%s\ncontainer=%s\nobject=%s\nproxy=%s\nmemcache=%s\n' "$pa" "$pc" "$po" "$pp" "$pm" >"$state/ports"
  local kind port me
  me=$(id -un) # Swift would otherwise switch to its packaged user 'swift' when it can
  for kind in account container object; do
    port=$(sed -n "s/^$kind=//p" "$state/ports")
    cat >"$state/etc/$kind-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $port
user = $me
workers = 0
swift_dir = $state/etc
devices = $state/srv
mount_check = false
log_name = $kind-server
log_level = WARNING

[pipeline:main]
pipeline = $kind-server

[app:$kind-server]
use = egg:swift#$kind
EOF
  done
  # Without the updater daemons a listing lags a write unless the object
  # server waits for the container update.
  echo 'container_update_timeout = 10' >>"$state/etc/object-server.conf"
  cat >"$state/etc/proxy-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $pp
user = $me
workers = 0
swift_dir = $state/etc
log_name = proxy-server
log_level = WARNING

[pipeline:main]
pipeline = cors_everywhere catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true
cors_allow_origin = $cors
cors_expose_headers = etag, content-range, content-length, accept-ranges, last-modified, x-amz-request-id

# s3api's own answers (listings, errors) get no CORS headers from Swift: see cors_everywhere.py.
[filter:cors_everywhere]
paste.filter_factory = cors_everywhere:filter_factory
allow_origin = $cors

[filter:s3api]
use = egg:swift#s3api
location = us-east-1
cors_preflight_allow_origin = $cors

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin

# No memcached: a closed port. S3 requests authenticate without it; Swift-API tokens do not.
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$pm

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:bulk]
use = egg:swift#bulk
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
EOF
  # One replica, one device per ring.
  $py - "$state/etc" "$pa" "$pc" "$po" <<'EOF'
import sys
from swift.common.ring import RingBuilder
etc, ports = sys.argv[1], dict(zip(('account', 'container', 'object'), map(int, sys.argv[2:5])))
for kind, port in ports.items():
    b = RingBuilder(8, 1, 1)
    b.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': port, 'device': 'd1', 'weight': 100, 'meta': ''})
    b.rebalance()
    b.save(f'{etc}/{kind}.builder')
    b.get_ring().save(f'{etc}/{kind}.ring.gz')
EOF
}

endpoint() { echo "http://127.0.0.1:$(sed -n 's/^proxy=//p' "$state/ports")"; }

print_env() {
  local ep; ep=$(endpoint)
  cat >"$state/env.json" <<EOF
{"endpoint":"$ep","accessKeyId":"test:tester","secretAccessKey":"testing","region":"us-east-1","bucket":"$bucket","stateDir":"$state"}
EOF
  echo "export AWS_ENDPOINT_URL=$ep AWS_ACCESS_KEY_ID=test:tester AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 SWIFT_S3_BUCKET=$bucket"
}

# PUT bucket with an S3 request (signed by curl); 409 means it is there already.
make_bucket() {
  local code
  # The access key holds a colon (account:user), which --user cannot carry: a netrc can.
  printf 'machine 127.0.0.1 login test:tester password testing\n' >"$state/etc/netrc"
  code=$(curl --netrc-file "$state/etc/netrc" -s -o "$state/log/bucket.out" -w '%{http_code}' --max-time 10 -X PUT \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' --aws-sigv4 'aws:amz:us-east-1:s3' "$(endpoint)/$bucket") || true
  [[ $code == 200 || $code == 409 ]]
}

start() {
  local t0=$SECONDS
  [[ ${1:-} == --fresh ]] && { stop; rm -rf "$state"; }
  install_if_missing
  [[ -f /etc/swift/swift.conf ]] || { say "/etc/swift/swift.conf is missing (it comes with the swift package; storage policies are read from it)"; exit 1; }
  local all=1 s
  for s in "${servers[@]}"; do running "$s" || all=0; done
  if ((all)) && healthy && make_bucket; then print_env; say "already running at $(endpoint)"; return; fi
  [[ -f $state/etc/proxy-server.conf ]] || write_config
  for s in "${servers[@]}"; do
    running "$s" && continue
    # setsid: the servers outlive the shell that started them and its signals.
    PYTHONPATH=$repo/scripts/swift EVENTLET_NO_GREENDNS=yes setsid "/usr/bin/swift-$s-server" "$state/etc/$s-server.conf" -v \
      >>"$state/log/$s.log" 2>&1 </dev/null &
    echo $! >"$state/run/$s.pid"
  done
  local deadline=$((SECONDS + ${SWIFT_START_TIMEOUT:-90}))
  until healthy && make_bucket; do
    for s in "${servers[@]}"; do
      running "$s" || { say "$s server exited; its log:"; tail -20 "$state/log/$s.log" >&2; stop; exit 1; }
    done
    ((SECONDS < deadline)) || { say "not healthy after ${SWIFT_START_TIMEOUT:-90}s"; tail -n 5 "$state/log/"*.log >&2; stop; exit 1; }
    sleep 0.2
  done
  print_env
  say "up at $(endpoint), bucket $bucket, in $((SECONDS - t0))s; stop with: npm run s3:stop (or $0 stop)"
}

stop() {
  local names=("$@") s pid i
  ((${#names[@]})) || names=("${servers[@]}")
  for s in "${names[@]}"; do
    if running "$s"; then
      pid=$(pid_of "$s")
      kill -TERM "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do running "$s" || break; sleep 0.1; done
      running "$s" && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$state/run/$s.pid"
  done
}

status() {
  local s
  for s in "${servers[@]}"; do running "$s" || { say "$s server not running"; return 1; }; done
  healthy || { say "proxy not healthy"; return 1; }
  say "running at $(endpoint)"
}

case ${1:-} in
  start) shift; start "$@" ;;
  stop) shift; stop "$@"; say "stopped" ;;
  status) status ;;
  env) status >/dev/null 2>&1 && print_env || { say "not running"; exit 1; } ;;
  *) echo "usage: $0 start [--fresh] | stop [proxy|account|container|object ...] | status | env" >&2; exit 2 ;;
esac
