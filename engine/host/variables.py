"""The environment variables the agent sets for every hook script, over any instance value of
the same name. Kept apart from the agent so that a workspace check can name them without
importing the agent (and asyncio with it)."""

# a unique value per hook run, inherited by everything the hook starts (processes.py)
HOOK_RUN_VARIABLE = "DEPLOYDECK_HOOK_RUN"

AGENT_VARIABLES = (
    "LIFECYCLE_EVENT",
    "DEPLOYMENT_ID",
    "APPLICATION_NAME",
    "DEPLOYMENT_GROUP_NAME",
    "DEPLOYMENT_GROUP_ID",
    "DEPLOYDECK_FS_ROOT",
    HOOK_RUN_VARIABLE,  # set per script run by hooks.run_script
)
