#!/usr/bin/env bash
# Starts or stops a Docker engine of our own for the Docker tests (root; Debian's docker.io):
#
#   eval "$(bash scripts/docker-engine.sh start)"   # prints `export DOCKER_HOST=...`
#   bash scripts/docker-engine.sh stop
#
# The engine is `dockerd --bridge=none --iptables=false` on a socket of its own
# (/run/emo-dir-docker/docker.sock, so it never meets another engine's clients), with host
# networking only: containers reach services on 127.0.0.1, no bridge, no NAT rules. `start`
# does nothing (and prints nothing) when an engine already answers `docker info`; `stop` stops
# only the engine `start` started (its pid file), waiting for it to exit.
set -euo pipefail

run_dir=${EMO_DIR_DOCKER_RUN_DIR:-/run/emo-dir-docker}
socket="unix://$run_dir/docker.sock"
pid_file="$run_dir/dockerd.pid"
log_file="$run_dir/dockerd.log"

say() { echo "docker-engine: $*" >&2; }

start() {
  if docker info >/dev/null 2>&1; then
    say "an engine already answers (${DOCKER_HOST:-the default socket}); using it"
    return 0
  fi
  if DOCKER_HOST=$socket docker info >/dev/null 2>&1; then
    say "our engine is already running on $socket"
    echo "export DOCKER_HOST=$socket"
    return 0
  fi
  command -v dockerd >/dev/null 2>&1 || { say "dockerd is not installed (apt-get install docker.io)"; return 1; }
  mkdir -p "$run_dir"
  # setsid: the engine is not in the caller's process group (a Ctrl-C there must not kill it
  # mid-write); `stop` ends it by its pid file.
  setsid dockerd --bridge=none --iptables=false \
    --host "$socket" --exec-root "$run_dir/exec" --pidfile "$pid_file" \
    >"$log_file" 2>&1 </dev/null &
  local dockerd=$! waited=0
  until DOCKER_HOST=$socket docker info >/dev/null 2>&1; do
    if ! kill -0 "$dockerd" 2>/dev/null; then
      say "dockerd exited; the end of $log_file:"
      tail -15 "$log_file" >&2
      return 1
    fi
    # Start-up is a few seconds; a minute means something is wrong, not slow.
    if [ "$waited" -ge 120 ]; then
      say "dockerd did not answer on $socket within 60 s; the end of $log_file:"
      tail -15 "$log_file" >&2
      return 1
    fi
    sleep 0.5
    waited=$((waited + 1))
  done
  say "dockerd $(cat "$pid_file") answers on $socket (log: $log_file)"
  echo "export DOCKER_HOST=$socket"
}

stop() {
  [ -s "$pid_file" ] || { say "no engine of ours is running ($pid_file is missing)"; return 0; }
  local pid
  pid=$(cat "$pid_file")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    # dockerd stops its containers (10 s grace each) and containerd, then exits.
    local waited=0
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 600 ]; do
      sleep 0.1
      waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "dockerd $pid did not exit within 60 s of SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    say "stopped dockerd $pid"
  fi
  rm -f "$pid_file"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
