"""Appspec parsing and validation: Server (`appspec.yml`), Lambda and ECS appspecs into frozen
dataclasses, with diagnostics that name file, line, column, key, the bad value and what to write
instead. Parsers never raise on bad input; `AppSpecResult.unwrap()` raises `AppSpecError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.lazy import lazy_exports

if TYPE_CHECKING:
    from engine.appspec.acl import AclEntry, parse_acl_entry
    from engine.appspec.detect import AnyAppSpec, AppSpecKind, detect_kind, parse_appspec
    from engine.appspec.diagnostics import AppSpecError, AppSpecResult, Diagnostic, Severity
    from engine.appspec.ecs_appspec import (
        AwsVpcConfiguration,
        CapacityProviderItem,
        EcsAppSpec,
        EcsServiceTarget,
        load_ecs_appspec,
        parse_ecs_appspec,
    )
    from engine.appspec.events import (
        ECS_HOOK_EVENTS,
        LAMBDA_HOOK_EVENTS,
        SERVER_HOOK_EVENTS,
        SERVER_RESERVED_EVENTS,
    )
    from engine.appspec.lambda_appspec import (
        LambdaAppSpec,
        LambdaFunctionTarget,
        load_lambda_appspec,
        parse_lambda_appspec,
    )
    from engine.appspec.resource_appspec import FunctionHook
    from engine.appspec.selinux import SelinuxContext, SelinuxRange, parse_range
    from engine.appspec.server import (
        DEFAULT_HOOK_TIMEOUT,
        FILE_EXISTS_BEHAVIORS,
        MAX_EVENT_TIMEOUT,
        FileMapping,
        HookEvent,
        HookScript,
        Permission,
        ServerAppSpec,
        load_server_appspec,
        parse_server_appspec,
    )

__all__ = [
    "DEFAULT_HOOK_TIMEOUT",
    "ECS_HOOK_EVENTS",
    "FILE_EXISTS_BEHAVIORS",
    "LAMBDA_HOOK_EVENTS",
    "MAX_EVENT_TIMEOUT",
    "SERVER_HOOK_EVENTS",
    "SERVER_RESERVED_EVENTS",
    "AclEntry",
    "AnyAppSpec",
    "AppSpecError",
    "AppSpecKind",
    "AppSpecResult",
    "AwsVpcConfiguration",
    "CapacityProviderItem",
    "Diagnostic",
    "EcsAppSpec",
    "EcsServiceTarget",
    "FileMapping",
    "FunctionHook",
    "HookEvent",
    "HookScript",
    "LambdaAppSpec",
    "LambdaFunctionTarget",
    "Permission",
    "SelinuxContext",
    "SelinuxRange",
    "ServerAppSpec",
    "Severity",
    "detect_kind",
    "load_ecs_appspec",
    "load_lambda_appspec",
    "load_server_appspec",
    "parse_acl_entry",
    "parse_appspec",
    "parse_ecs_appspec",
    "parse_lambda_appspec",
    "parse_range",
    "parse_server_appspec",
]

# each name's module, imported when the name is first used
__getattr__ = lazy_exports(
    __name__,
    {
        "engine.appspec.acl": "AclEntry parse_acl_entry",
        "engine.appspec.detect": "AnyAppSpec AppSpecKind detect_kind parse_appspec",
        "engine.appspec.diagnostics": "AppSpecError AppSpecResult Diagnostic Severity",
        "engine.appspec.ecs_appspec": (
            "AwsVpcConfiguration CapacityProviderItem EcsAppSpec EcsServiceTarget "
            "load_ecs_appspec parse_ecs_appspec"
        ),
        "engine.appspec.events": (
            "ECS_HOOK_EVENTS LAMBDA_HOOK_EVENTS SERVER_HOOK_EVENTS SERVER_RESERVED_EVENTS"
        ),
        "engine.appspec.lambda_appspec": (
            "LambdaAppSpec LambdaFunctionTarget load_lambda_appspec parse_lambda_appspec"
        ),
        "engine.appspec.resource_appspec": "FunctionHook",
        "engine.appspec.selinux": "SelinuxContext SelinuxRange parse_range",
        "engine.appspec.server": (
            "DEFAULT_HOOK_TIMEOUT FILE_EXISTS_BEHAVIORS MAX_EVENT_TIMEOUT FileMapping "
            "HookEvent HookScript Permission ServerAppSpec load_server_appspec "
            "parse_server_appspec"
        ),
    },
)
