"""The demo's lifecycle hook: invoked by a Lambda deployment with DeploymentId and
LifecycleEventHookExecutionId, it reports Succeeded through CodeDeploy's
PutLifecycleEventHookExecutionStatus at the endpoint the gateway gives it, as a hook written for
AWS would (an SDK pointed there by AWS_ENDPOINT_URL_CODEDEPLOY does the same)."""

import json
import os
import sys
import urllib.request

for line in sys.stdin:
    event = json.loads(line)["event"]
    body = {
        "deploymentId": event["DeploymentId"],
        "lifecycleEventHookExecutionId": event["LifecycleEventHookExecutionId"],
        "status": os.environ.get("HOOK_STATUS", "Succeeded"),
    }
    request = urllib.request.Request(
        os.environ["AWS_ENDPOINT_URL_CODEDEPLOY"],
        data=json.dumps(body).encode(),
        headers={
            "X-Amz-Target": "CodeDeploy_20141006.PutLifecycleEventHookExecutionStatus",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    with urllib.request.urlopen(request) as response:
        response.read()
    sys.stdout.write(json.dumps({"result": {"reported": body["status"]}}) + "\n")
    sys.stdout.flush()
