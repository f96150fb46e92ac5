from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.record_usage import RecordUsage


T = TypeVar("T", bound="RecordBatch")


@_attrs_define
class RecordBatch:
    """
    Attributes:
        events (list[RecordUsage]): 1–1000 usage events, each as for `POST /v1/usage`.
    """

    events: list[RecordUsage]

    def to_dict(self) -> dict[str, Any]:
        events = []
        for events_item_data in self.events:
            events_item = events_item_data.to_dict()
            events.append(events_item)

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "events": events,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.record_usage import RecordUsage  # noqa: PLC0415

        d = dict(src_dict)
        events = []
        _events = d.pop("events")
        for events_item_data in _events:
            events_item = RecordUsage.from_dict(events_item_data)

            events.append(events_item)

        record_batch = cls(
            events=events,
        )

        return record_batch
