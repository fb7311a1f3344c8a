"""The strategies app's models: the feature-flag models live in `strategies.flags.models`."""

from .flags.models import DarkLaunch, Flag, FlagApiKey, FlagEventBucket, FlagSet, Segment

__all__ = ["DarkLaunch", "Flag", "FlagApiKey", "FlagEventBucket", "FlagSet", "Segment"]
