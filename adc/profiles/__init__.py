"""Hardware profiles: TOML files describing what a cabinet is made of and how it is wired."""

from adc.profiles.loader import (
    ProfileError,
    ProfileIssue,
    load_profile,
    resolve_profile_path,
    shipped_profiles_dir,
)
from adc.profiles.models import Profile
from adc.profiles.points import PointRef, PointRole

__all__ = [
    "PointRef",
    "PointRole",
    "Profile",
    "ProfileError",
    "ProfileIssue",
    "load_profile",
    "resolve_profile_path",
    "shipped_profiles_dir",
]
