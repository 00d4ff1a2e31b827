#!/bin/sh
# ApplicationStop: stop the web server this revision started, if it is running.
root="${DEPLOYDECK_FS_ROOT:-}/tmp/deploydeck-web"
pidfile="$root/run/server.pid"

# Running, not a zombie waiting to be reaped.
alive() {
  if [ -r "/proc/$1/stat" ]; then
    [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)" != Z ]
  else
    kill -0 "$1" 2>/dev/null
  fi
}

if [ ! -f "$pidfile" ]; then
  echo "no web server pid file at $pidfile: nothing to stop"
  exit 0
fi
pid=$(cat "$pidfile")
if alive "$pid"; then
  kill "$pid"
  i=0
  while alive "$pid" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  if alive "$pid"; then
    echo "web server $pid did not stop within 5 seconds of SIGTERM" >&2
    exit 1
  fi
  echo "stopped web server (pid $pid)"
else
  echo "web server $pid was not running"
fi
rm -f "$pidfile"
