"""The strategies app's models: the feature-flag models live in `strategies.flags.models`."""

from .flags.models import (
    DarkLaunch,
    Flag,
    FlagApiKey,
    FlagApprovalSetting,
    FlagChangeRequest,
    FlagEventBucket,
    FlagSchedule,
    FlagSet,
    ReleaseFlag,
    Segment,
)

__all__ = [
    "DarkLaunch",
    "Flag",
    "FlagApiKey",
    "FlagApprovalSetting",
    "FlagChangeRequest",
    "FlagEventBucket",
    "FlagSchedule",
    "FlagSet",
    "ReleaseFlag",
    "Segment",
]
