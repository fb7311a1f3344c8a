"""The strategies app's models: the feature-flag models live in `strategies.flags.models`."""

from .experiments.models import (
    Experiment,
    ExperimentEventReceipt,
    ExperimentExposure,
    ExperimentMetricValue,
    ExperimentSnapshot,
)
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
    "Experiment",
    "ExperimentEventReceipt",
    "ExperimentExposure",
    "ExperimentMetricValue",
    "ExperimentSnapshot",
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
