from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..models.event_type_name import EventTypeName, check_event_type_name

T = TypeVar("T", bound="CreateEndpoint")


@_attrs_define
class CreateEndpoint:
    """
    Attributes:
        events (list[EventTypeName]): Event types (`balance.low`, `topup.succeeded`, …), or `*` for all.
        url (str): An http:// or https:// address that accepts POSTed JSON.
    """

    events: list[EventTypeName]
    url: str

    def to_dict(self) -> dict[str, Any]:
        events = []
        for events_item_data in self.events:
            events_item: str = events_item_data
            events.append(events_item)

        url = self.url

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "events": events,
                "url": url,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        events = []
        _events = d.pop("events")
        for events_item_data in _events:
            events_item = check_event_type_name(events_item_data)

            events.append(events_item)

        url = d.pop("url")

        create_endpoint = cls(
            events=events,
            url=url,
        )

        return create_endpoint
