"""Summary profiles kept as JSON files, one profile per file.

The built-in DEFAULT_PROFILE is always present unless a file with id "default"
replaces it. Loading fails loudly, naming the file, on anything invalid.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Optional, Union

from pydantic import ValidationError

from replaylens.schemas.profiles import DEFAULT_PROFILE, SummaryProfile

_FILE_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ProfileError(ValueError):
    """A profile file or profile that cannot be used."""


def _load_file(path: Path) -> SummaryProfile:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"profile file {path}: cannot read it: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ProfileError(f"profile file {path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"profile file {path}: expected one JSON object (one profile per file)")
    try:
        return SummaryProfile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(profile)'}: {err['msg']}" for err in exc.errors())
        raise ProfileError(f"profile file {path}: invalid profile: {problems}") from None


def load_profiles(directory: Union[str, Path]) -> dict[str, SummaryProfile]:
    """Profiles by id from every *.json file in `directory` (DEFAULT_PROFILE included)."""
    folder = Path(directory)
    if not folder.is_dir():
        raise ProfileError(f"profiles directory {folder} does not exist or is not a directory")
    profiles: dict[str, SummaryProfile] = {DEFAULT_PROFILE.id: DEFAULT_PROFILE}
    origins: dict[str, Path] = {}
    for path in sorted(folder.glob("*.json")):
        profile = _load_file(path)
        if profile.id in origins:
            raise ProfileError(f"profile file {path}: id {profile.id!r} is already defined in {origins[profile.id]}")
        origins[profile.id] = path
        profiles[profile.id] = profile
    return profiles


class ProfileStore:
    """Profiles from a directory (or only the default one when `directory` is None)."""

    def __init__(self, directory: Optional[Union[str, Path]] = None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self._profiles = load_profiles(self.directory) if self.directory is not None \
            else {DEFAULT_PROFILE.id: DEFAULT_PROFILE}

    def get(self, profile_id: str) -> Optional[SummaryProfile]:
        """The profile with this id, or None when there is none."""
        return self._profiles.get(profile_id)

    def all(self) -> list[SummaryProfile]:
        """Every profile, the default one first, then by id."""
        return sorted(self._profiles.values(), key=lambda p: (p.id != DEFAULT_PROFILE.id, p.id))

    def streaming(self) -> list[SummaryProfile]:
        """The profiles that summarize every closed session."""
        return [p for p in self.all() if p.streaming]

    def add(self, profile: SummaryProfile) -> None:
        """Add or replace a profile; with a directory, persist it as <id>.json."""
        if self.directory is not None:
            if not _FILE_SAFE_ID.match(profile.id):
                raise ProfileError(
                    f"profile id {profile.id!r} cannot be a file name: use letters, digits, '.', '_' or '-'")
            self._write(profile)
        self._profiles[profile.id] = profile

    def _write(self, profile: SummaryProfile) -> None:
        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / f"{profile.id}.json"
        # Another file may already hold this id under a different name: replace that one.
        for path in self.directory.glob("*.json"):
            if path != target and _peek_id(path) == profile.id:
                target = path
                break
        text = json.dumps(profile.model_dump(mode="json", exclude_defaults=False), indent=2, ensure_ascii=False)
        # Write then rename: a crash never leaves a half-written profile behind.
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".profile-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


def _peek_id(path: Path) -> Optional[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("id") if isinstance(data, dict) else None
