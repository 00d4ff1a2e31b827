#!/bin/sh
# ApplicationStart: start a real HTTP server in the background on $WEB_PORT (default 8080), and
# fail, with the server's own words, if it cannot listen there (a port already in use).
set -eu
root="${DEPLOYDECK_FS_ROOT:-}/tmp/deploydeck-web"
port="${WEB_PORT:-8080}"
log="$root/run/server.log"
mkdir -p "$root/run"
# -u: the server's "Serving HTTP on ..." line reaches the log as soon as it listens.
nohup python3 -u -m http.server "$port" --bind 127.0.0.1 --directory "$root/site" \
  >"$log" 2>&1 &
pid=$!

# Running, not a zombie waiting to be reaped.
alive() {
  if [ -r "/proc/$1/stat" ]; then
    [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)" != Z ]
  else
    kill -0 "$1" 2>/dev/null
  fi
}

# Wait up to 10 s for it to listen, or to exit.
i=0
while ! grep -q "^Serving HTTP" "$log" 2>/dev/null; do
  if ! alive "$pid" || [ $i -ge 100 ]; then
    tail -n 3 "$log" >&2
    echo "the web server could not listen on 127.0.0.1:$port (above: the end of $log)" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
  fi
  sleep 0.1
  i=$((i + 1))
done
echo $pid >"$root/run/server.pid"
echo "started web server (pid $pid) on http://127.0.0.1:$port/ serving $root/site"
