"""The commented starter `deploydeck.yml` that `deploydeck init` writes: one application `web`,
one deployment group `fleet` of local instances tagged role=web, each giving the sample web app
(sample_revisions/web-v1) its own WEB_PORT so the copies run side by side."""

from __future__ import annotations

DEFAULT_LOCAL_INSTANCES = 4
MAX_LOCAL_INSTANCES = 1000  # CodeDeploy's limit of instances per deployment
FIRST_WEB_PORT = 8081
STARTER_APPLICATION = "web"
STARTER_GROUP = "fleet"

_HEAD = """\
# deploydeck workspace: what you deploy, to which instances, and how fast.
# Written by `deploydeck init`; docs/workspace.md describes every key.
# Paths are relative to this file's folder; deploydeck keeps its state in .deploydeck/ here.
version: 1

# Tuning for every deployment from this workspace (optional; these are the defaults).
settings:
  max_revisions: 5          # revisions kept on each instance
  kill_grace_seconds: 10    # a hook past its timeout gets SIGTERM, then SIGKILL this much later
  ssh_max_parallel: 20      # SSH hosts worked on at once
  max_bundle_mb: 4096       # larger revisions (unpacked) are refused

# Applications and their deployment groups: which instances get a revision, at what pace,
# and what happens when a deployment fails.
applications:
  web:
    compute_platform: Server          # Server (instances), Lambda or ECS
    deployment_groups:
      fleet:
{config}
        # The group's instances: every instance tagged role=web.
        tag_filters:
          - {{key: role, value: web, type: KEY_AND_VALUE}}
        # Redeploy the last good revision when a deployment fails or you stop it.
        auto_rollback:
          enabled: true
          events: [DEPLOYMENT_FAILURE, DEPLOYMENT_STOP_ON_REQUEST]
        # A file in the way that no deployment installed: fail (DISALLOW), OVERWRITE or RETAIN.
        file_exists_behavior: DISALLOW

# Instances: where revisions are installed. A local instance is a folder on this machine
# (.deploydeck/instances/<name> unless root: says otherwise) and everything an appspec
# installs goes under it, so several run side by side. Hosts over SSH: see docs/workspace.md.
# WEB_PORT tells each copy of the sample web app (sample_revisions/web-v1) where to listen.
instances:
"""

_HALF = """\
        # Half the instances at a time; at least half must stay healthy. Any predefined
        # CodeDeployDefault.* config or one from deployment_configs below fits here."""

_ONE = """\
        # One instance at a time (HalfAtATime needs two or more instances). Any predefined
        # CodeDeployDefault.* config or one from deployment_configs below fits here."""

_INSTANCE = """\
  web-{number}:
    tags: {{role: web}}
    transport: local
    environment:
      WEB_PORT: "{port}"
"""

_TAIL = """
# Custom deployment configs, next to the predefined CodeDeployDefault.* ones.
# To use this one, write deployment_config: QuarterAtATime in the group above.
deployment_configs:
  QuarterAtATime:
    compute_platform: Server
    # At least 75% of the instances stay healthy: a quarter at a time (4 instances or more).
    minimum_healthy_hosts: {type: FLEET_PERCENT, value: 75}
"""


def starter_config(local_instances: int) -> str:
    """The group's config: HalfAtATime, except for a single instance, which HalfAtATime could
    never take offline (its minimum of 50% rounds up to the whole fleet)."""
    return (
        "CodeDeployDefault.HalfAtATime" if local_instances > 1 else "CodeDeployDefault.OneAtATime"
    )


def web_port(number: int, first: int = FIRST_WEB_PORT) -> int:
    """WEB_PORT of instance web-<number> (1-based)."""
    return first + number - 1


def _ports_free(start: int, count: int) -> bool:
    import socket  # here: `deploydeck --help` reads this module's numbers, and needs no socket

    for port in range(start, start + count):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port_range(count: int, first: int = FIRST_WEB_PORT) -> int:
    """The first port of `count` consecutive ports on 127.0.0.1 that nothing listens on now,
    from `first` on (the sample's start script still fails clearly if one is taken later)."""
    for start in range(first, 65536 - count):
        if _ports_free(start, count):
            return start
    raise OSError(f"no {count} consecutive free ports on 127.0.0.1 from {first} on")


def starter_workspace(
    local_instances: int = DEFAULT_LOCAL_INSTANCES, first_port: int = FIRST_WEB_PORT
) -> str:
    """The text of a starter workspace with `local_instances` local instances (1 to 1000),
    whose WEB_PORTs run from `first_port`."""
    if not 1 <= local_instances <= MAX_LOCAL_INSTANCES:
        raise ValueError(f"local_instances must be from 1 to {MAX_LOCAL_INSTANCES}")
    config = starter_config(local_instances)
    comment = _HALF if local_instances > 1 else _ONE
    head = _HEAD.format(config=f"{comment}\n        deployment_config: {config}")
    instances = "".join(
        _INSTANCE.format(number=n, port=web_port(n, first_port))
        for n in range(1, local_instances + 1)
    )
    return head + instances + _TAIL
