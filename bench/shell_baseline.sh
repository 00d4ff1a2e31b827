#!/bin/sh
# The shell baseline of the fleet benchmark (bench/fleet.py): one deployment of a revision to
# local instances, doing the file work and running the hook scripts deploydeck's agent does,
# with nothing else (no journal, no state, no safety checks).
#
#   shell_baseline.sh FLEET REVISION PLAN
#
# FLEET     one folder per instance, laid out like a deploydeck local instance:
#           <FLEET>/<name>/agent (deployment root) and <FLEET>/<name>/fs (installed files)
# REVISION  the revision folder (appspec.yml, site/, hooks/<Event>.sh)
# PLAN      one batch per line, instance names separated by spaces; batches run one after
#           another, the instances of a batch in parallel (`&` and `wait`)
#
# DEPLOYMENT_ID, APPLICATION_NAME, DEPLOYMENT_GROUP_NAME and DEPLOYMENT_GROUP_ID come from the
# environment, and MAX_REVISIONS (default 5): like deploydeck's agent, each instance keeps at most
# that many deployment folders of the group, this one included, never removing the last
# successful install's, and removes the oldest (by mtime) before copying the revision; each hook also gets LIFECYCLE_EVENT, DEPLOYDECK_FS_ROOT and the instance's
# INSTANCE_NAME, runs with stdin closed, in the root of the revision it belongs to, and appends
# its output to the deployment's scripts.log. Exit status 0 when every instance succeeded.
set -eu

fleet=$1
revision=$2
plan=$3
: "${DEPLOYMENT_ID:?}" "${APPLICATION_NAME:?}" "${DEPLOYMENT_GROUP_NAME:?}" "${DEPLOYMENT_GROUP_ID:?}"
export DEPLOYMENT_ID APPLICATION_NAME DEPLOYMENT_GROUP_NAME DEPLOYMENT_GROUP_ID
max_revisions=${MAX_REVISIONS:-5}

# hook EVENT LOG: the current folder's (a revision root's) script for EVENT.
hook() {
    LIFECYCLE_EVENT=$1 "./hooks/$1.sh" </dev/null >>"$2" 2>&1
}

# prune GROUP_DIR CURRENT LAST: the retention deploydeck's agent runs before DownloadBundle.
# Counting uses a glob (no process); `ls -tr` (oldest first) runs only when some must go.
prune() {
    others=0
    for entry in "$1"/*; do
        if [ -e "$entry" ] && [ "$entry" != "$2" ]; then others=$((others + 1)); fi
    done
    extra=$((others - max_revisions + 1))
    [ "$extra" -gt 0 ] || return 0
    for entry in $(ls -tr "$1"); do
        [ "$extra" -gt 0 ] || break
        case "$1/$entry" in "$2" | "$3") continue ;; esac
        rm -rf "${1:?}/$entry"
        extra=$((extra - 1))
    done
}

# deploy NAME: the lifecycle on one instance. Runs in its own subshell (`&`), so `cd`, the
# exports and `set -e` (a failing step ends this instance only) stay local to the instance.
deploy() {
    root=$fleet/$1
    deployment=$root/agent/$DEPLOYMENT_GROUP_ID/$DEPLOYMENT_ID
    marker=$root/agent/deployment-instructions/${DEPLOYMENT_GROUP_ID}_last_successful_install
    log=$deployment/logs/scripts.log
    export INSTANCE_NAME="$1" DEPLOYDECK_FS_ROOT="$root/fs"
    mkdir -p "$deployment/logs" "$root/agent/deployment-instructions"

    # ApplicationStop: the previous revision's script, in the previous revision's folder.
    if [ -f "$marker" ]; then
        read -r previous <"$marker"
        cd "$previous/deployment-archive"
        hook ApplicationStop "$log"
    fi

    # DownloadBundle: old revisions pruned, then a directory bundle is copied into the
    # deployment's archive folder.
    last=
    if [ -f "$marker" ]; then read -r last <"$marker"; fi
    prune "$root/agent/$DEPLOYMENT_GROUP_ID" "$deployment" "$last"
    cp -a "$revision" "$deployment/deployment-archive"
    cd "$deployment/deployment-archive"
    hook BeforeInstall "$log"

    # Install: remove the previous install's files, copy the revision's, remember this one.
    rm -rf "$root/fs/srv"
    mkdir -p "$root/fs/srv/app"
    cp -a site/. "$root/fs/srv/app/"
    printf '%s\n' "$deployment" >"$marker"

    hook AfterInstall "$log"
    hook ApplicationStart "$log"
    hook ValidateService "$log"
}

status=0
while read -r batch <&3; do
    pids=
    for name in $batch; do
        deploy "$name" &
        pids="$pids $!"
    done
    for pid in $pids; do
        wait "$pid" || status=1
    done
    if [ "$status" -ne 0 ]; then
        echo "an instance failed; later batches are not started" >&2
        break
    fi
done 3<"$plan"
exit "$status"
