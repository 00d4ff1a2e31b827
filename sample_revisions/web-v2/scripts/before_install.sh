#!/bin/sh
# BeforeInstall: show what the agent tells hooks, and make room for the server's files.
echo "$LIFECYCLE_EVENT of $APPLICATION_NAME, deployment $DEPLOYMENT_ID, group $DEPLOYMENT_GROUP_NAME"
mkdir -p "${DEPLOYDECK_FS_ROOT:-}/tmp/deploydeck-web/run"
# The console's demo fleet sets DEMO_HOOK_DELAY so deployments last long enough to watch.
sleep "${DEMO_HOOK_DELAY:-0}"
