#!/bin/sh
# ApplicationStart: start a real HTTP server in the background on $WEB_PORT (default 8080).
set -eu
root="${DEPLOYDECK_FS_ROOT:-}/tmp/deploydeck-web"
port="${WEB_PORT:-8080}"
mkdir -p "$root/run"
nohup python3 -m http.server "$port" --bind 127.0.0.1 --directory "$root/site" \
  >"$root/run/server.log" 2>&1 &
echo $! >"$root/run/server.pid"
echo "started web server (pid $!) on http://127.0.0.1:$port/ serving $root/site"
