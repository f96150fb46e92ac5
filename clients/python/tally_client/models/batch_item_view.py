from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.batch_item_view_error_type_0 import BatchItemViewErrorType0
    from ..models.usage_event_view import UsageEventView


T = TypeVar("T", bound="BatchItemView")


@_attrs_define
class BatchItemView:
    """
    Attributes:
        status (str): `created`, `duplicate` or `error`.
        error (BatchItemViewErrorType0 | None | Unset):
        event (None | Unset | UsageEventView):
        request_id (None | str | Unset):
    """

    status: str
    error: BatchItemViewErrorType0 | None | Unset = UNSET
    event: None | Unset | UsageEventView = UNSET
    request_id: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.batch_item_view_error_type_0 import BatchItemViewErrorType0  # noqa: PLC0415
        from ..models.usage_event_view import UsageEventView  # noqa: PLC0415

        status = self.status

        error: dict[str, Any] | None | Unset
        if isinstance(self.error, Unset):
            error = UNSET
        elif isinstance(self.error, BatchItemViewErrorType0):
            error = self.error.to_dict()
        else:
            error = self.error

        event: dict[str, Any] | None | Unset
        if isinstance(self.event, Unset):
            event = UNSET
        elif isinstance(self.event, UsageEventView):
            event = self.event.to_dict()
        else:
            event = self.event

        request_id: None | str | Unset
        if isinstance(self.request_id, Unset):
            request_id = UNSET
        else:
            request_id = self.request_id

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "status": status,
            }
        )
        if error is not UNSET:
            field_dict["error"] = error
        if event is not UNSET:
            field_dict["event"] = event
        if request_id is not UNSET:
            field_dict["request_id"] = request_id

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.batch_item_view_error_type_0 import BatchItemViewErrorType0  # noqa: PLC0415
        from ..models.usage_event_view import UsageEventView  # noqa: PLC0415

        d = dict(src_dict)
        status = d.pop("status")

        def _parse_error(data: object) -> BatchItemViewErrorType0 | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                error_type_0 = BatchItemViewErrorType0.from_dict(data)

                return error_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(BatchItemViewErrorType0 | None | Unset, data)

        error = _parse_error(d.pop("error", UNSET))

        def _parse_event(data: object) -> None | Unset | UsageEventView:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                event_type_1 = UsageEventView.from_dict(data)

                return event_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Unset | UsageEventView, data)

        event = _parse_event(d.pop("event", UNSET))

        def _parse_request_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        request_id = _parse_request_id(d.pop("request_id", UNSET))

        batch_item_view = cls(
            status=status,
            error=error,
            event=event,
            request_id=request_id,
        )

        batch_item_view.additional_properties = d
        return batch_item_view

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
