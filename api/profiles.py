"""The API's view of profiles: files and the built-in default (read-only here), and the
profiles created through the API, which live in the compacted profiles topic."""
from __future__ import annotations

from typing import Any, Optional

from aiokafka import AIOKafkaProducer

from replaylens.config.settings import Settings
from replaylens.schemas.profiles import DEFAULT_PROFILE, SummaryProfile
from replaylens.sinks.profiles_store import ProfileStore
from replaylens.streams.profiles_topic import CompactedView, decode_profile, encode_profile


class ReadOnlyProfile(Exception):
    """A profile defined by a file or built in: the API cannot replace or delete it."""


class ProfileRegistry:
    def __init__(self, s: Settings, producer: AIOKafkaProducer) -> None:
        self.settings, self.producer = s, producer
        self.files = {p.id: p for p in ProfileStore(s.profiles_dir).all()}
        self.topic = CompactedView(s.kafka_bootstrap, s.topic_profiles, decode_profile)

    async def start(self) -> None:
        await self.topic.start()

    async def stop(self) -> None:
        await self.topic.stop()

    def get(self, profile_id: str) -> Optional[SummaryProfile]:
        return self.topic.values.get(profile_id) or self.files.get(profile_id)

    def source(self, profile_id: str) -> str:
        if profile_id in self.topic.values:
            return "api"
        return "builtin" if self.files.get(profile_id) is DEFAULT_PROFILE else "file"

    def all(self) -> list[SummaryProfile]:
        merged = {**self.files, **self.topic.values}
        return sorted(merged.values(), key=lambda p: (p.id != DEFAULT_PROFILE.id, p.id))

    def describe(self, profile: SummaryProfile) -> dict[str, Any]:
        return {**profile.model_dump(mode="json"), "source": self.source(profile.id)}

    def _check_writable(self, profile_id: str) -> None:
        if profile_id in self.files and profile_id not in self.topic.values:
            raise ReadOnlyProfile(f"profile {profile_id!r} is {self.source(profile_id)}-defined and read-only here")

    async def put(self, profile: SummaryProfile) -> bool:
        """Publish (acknowledged) and see it at once; True when it replaced an API profile."""
        self._check_writable(profile.id)
        existed = profile.id in self.topic.values
        await self.producer.send_and_wait(self.settings.topic_profiles, key=profile.id.encode(),
                                          value=encode_profile(profile))
        self.topic.values[profile.id] = profile  # read-your-writes; the view confirms it later
        return existed

    async def delete(self, profile_id: str) -> bool:
        """Publish a tombstone; False when no API profile has that id."""
        self._check_writable(profile_id)
        if profile_id not in self.topic.values:
            return False
        await self.producer.send_and_wait(self.settings.topic_profiles, key=profile_id.encode(), value=None)
        self.topic.values.pop(profile_id, None)
        return True
