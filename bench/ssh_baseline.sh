#!/bin/sh
# The plain OpenSSH baseline of the SSH benchmark (bench/ssh.py): one deployment of a revision to
# SSH hosts, all hosts in parallel, doing the copies and running the hook scripts deploydeck's
# agent does on each host, with OpenSSH alone (no agent, no journal, no checks).
#
#   ssh_baseline.sh HOSTS REVISION
#
# HOSTS     one host per line: NAME PORT AGENT_ROOT FS_ROOT (the host is root@127.0.0.1:PORT;
#           AGENT_ROOT and FS_ROOT are folders on the host, as deploydeck's agent_root/fs_root)
# REVISION  the revision folder (appspec.yml, site/, hooks/<Event>.sh), here on the controller
#
# From the environment: SSH_KEY, KNOWN_HOSTS, CONTROL_DIR (a short folder for ControlMaster
# sockets), DEPLOYMENT_ID, APPLICATION_NAME, DEPLOYMENT_GROUP_NAME, DEPLOYMENT_GROUP_ID.
#
# Per host: one ControlMaster connection (ControlPersist=60, ended with `ssh -O exit` at the end,
# as deploydeck closes its connection), then one ssh command per lifecycle step on it:
# ApplicationStop (the previous revision's script, in its folder), DownloadBundle (`tar | ssh
# tar`, into <AGENT_ROOT>/<group id>/<deployment id>/deployment-archive), BeforeInstall, Install
# (remove the previous files, copy site/ to <FS_ROOT>/srv/app, remember this deployment),
# AfterInstall, ApplicationStart, ValidateService. Hooks get LIFECYCLE_EVENT, DEPLOYMENT_ID,
# APPLICATION_NAME, DEPLOYMENT_GROUP_NAME, DEPLOYMENT_GROUP_ID, DEPLOYDECK_FS_ROOT and
# INSTANCE_NAME, stdin closed, run in their revision's root, output appended to the deployment's
# logs/scripts.log. Exit status 0 when every host succeeded.
set -eu

hosts=$1
revision=$2
: "${SSH_KEY:?}" "${KNOWN_HOSTS:?}" "${CONTROL_DIR:?}"
: "${DEPLOYMENT_ID:?}" "${APPLICATION_NAME:?}" "${DEPLOYMENT_GROUP_NAME:?}" "${DEPLOYMENT_GROUP_ID:?}"

# deploy NAME PORT AGENT_ROOT FS_ROOT: the lifecycle on one host, in its own subshell (`&`).
deploy() {
    name=$1 agent=$3 fs=$4
    set -- -p "$2" -i "$SSH_KEY" -o IdentitiesOnly=yes -o BatchMode=yes \
        -o UserKnownHostsFile="$KNOWN_HOSTS" -o StrictHostKeyChecking=yes \
        -o ControlMaster=auto -o ControlPath="$CONTROL_DIR/$2" -o ControlPersist=60 \
        root@127.0.0.1
    deployment=$agent/$DEPLOYMENT_GROUP_ID/$DEPLOYMENT_ID
    archive=$deployment/deployment-archive
    marker=$agent/deployment-instructions/${DEPLOYMENT_GROUP_ID}_last_successful_install
    log=$deployment/logs/scripts.log
    vars="DEPLOYMENT_ID=$DEPLOYMENT_ID APPLICATION_NAME=$APPLICATION_NAME"
    vars="$vars DEPLOYMENT_GROUP_NAME=$DEPLOYMENT_GROUP_NAME DEPLOYMENT_GROUP_ID=$DEPLOYMENT_GROUP_ID"
    vars="$vars DEPLOYDECK_FS_ROOT=$fs INSTANCE_NAME=$name"

    # ApplicationStop: the previous revision's script, in the previous revision's folder.
    ssh -n "$@" "mkdir -p $deployment/logs $agent/deployment-instructions &&
        if [ -f $marker ]; then
            read -r previous < $marker && cd \$previous/deployment-archive &&
            $vars LIFECYCLE_EVENT=ApplicationStop ./hooks/ApplicationStop.sh </dev/null >>$log 2>&1
        fi"
    # DownloadBundle: the revision, streamed as a tar into the deployment's archive folder.
    tar -C "$revision" -cf - . | ssh "$@" "mkdir -p $archive && tar -C $archive -xf -"
    hook BeforeInstall "$@"
    # Install: remove the previous install's files, copy the revision's, remember this one.
    ssh -n "$@" "rm -rf $fs/srv && mkdir -p $fs/srv/app && cp -a $archive/site/. $fs/srv/app/ &&
        printf '%s\n' $deployment > $marker"
    hook AfterInstall "$@"
    hook ApplicationStart "$@"
    hook ValidateService "$@"
    ssh -O exit "$@" 2>/dev/null
}

# hook EVENT SSH-ARGS...: this deployment's script for EVENT, run on the host.
hook() {
    event=$1
    shift
    ssh -n "$@" "cd $archive && $vars LIFECYCLE_EVENT=$event ./hooks/$event.sh </dev/null >>$log 2>&1"
}

status=0
pids=
while read -r name port agent fs <&3; do
    deploy "$name" "$port" "$agent" "$fs" &
    pids="$pids $!"
done 3<"$hosts"
for pid in $pids; do
    wait "$pid" || status=1
done
exit "$status"
