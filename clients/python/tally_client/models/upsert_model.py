from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="UpsertModel")


@_attrs_define
class UpsertModel:
    """
    Attributes:
        batch_discount_percent (int):
        cache_read (str):
        cache_write (str):
        id (str):
        input_ (str):
        output (str):
        provider (str):
        cache_write_1h (None | str | Unset):
        reason (None | str | Unset): Why (kept in the audit log); "changed through the API" when absent.
    """

    batch_discount_percent: int
    cache_read: str
    cache_write: str
    id: str
    input_: str
    output: str
    provider: str
    cache_write_1h: None | str | Unset = UNSET
    reason: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        batch_discount_percent = self.batch_discount_percent

        cache_read = self.cache_read

        cache_write = self.cache_write

        id = self.id

        input_ = self.input_

        output = self.output

        provider = self.provider

        cache_write_1h: None | str | Unset
        if isinstance(self.cache_write_1h, Unset):
            cache_write_1h = UNSET
        else:
            cache_write_1h = self.cache_write_1h

        reason: None | str | Unset
        if isinstance(self.reason, Unset):
            reason = UNSET
        else:
            reason = self.reason

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "batch_discount_percent": batch_discount_percent,
                "cache_read": cache_read,
                "cache_write": cache_write,
                "id": id,
                "input": input_,
                "output": output,
                "provider": provider,
            }
        )
        if cache_write_1h is not UNSET:
            field_dict["cache_write_1h"] = cache_write_1h
        if reason is not UNSET:
            field_dict["reason"] = reason

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        batch_discount_percent = d.pop("batch_discount_percent")

        cache_read = d.pop("cache_read")

        cache_write = d.pop("cache_write")

        id = d.pop("id")

        input_ = d.pop("input")

        output = d.pop("output")

        provider = d.pop("provider")

        def _parse_cache_write_1h(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        cache_write_1h = _parse_cache_write_1h(d.pop("cache_write_1h", UNSET))

        def _parse_reason(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        reason = _parse_reason(d.pop("reason", UNSET))

        upsert_model = cls(
            batch_discount_percent=batch_discount_percent,
            cache_read=cache_read,
            cache_write=cache_write,
            id=id,
            input_=input_,
            output=output,
            provider=provider,
            cache_write_1h=cache_write_1h,
            reason=reason,
        )

        return upsert_model
