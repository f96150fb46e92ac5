from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="Rates")


@_attrs_define
class Rates:
    """Prices per million tokens, in nano-units.

    Attributes:
        cache_read (str):
        cache_write (str): A cache write (Anthropic's five-minute cache; OpenAI's cache writes).
        input_ (str):
        output (str):
        cache_write_1h (None | str | Unset): A write to Anthropic's one-hour cache; when absent, twice the input rate
            (Anthropic's
            published price for it).
    """

    cache_read: str
    cache_write: str
    input_: str
    output: str
    cache_write_1h: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        cache_read = self.cache_read

        cache_write = self.cache_write

        input_ = self.input_

        output = self.output

        cache_write_1h: None | str | Unset
        if isinstance(self.cache_write_1h, Unset):
            cache_write_1h = UNSET
        else:
            cache_write_1h = self.cache_write_1h

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "cache_read": cache_read,
                "cache_write": cache_write,
                "input": input_,
                "output": output,
            }
        )
        if cache_write_1h is not UNSET:
            field_dict["cache_write_1h"] = cache_write_1h

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        cache_read = d.pop("cache_read")

        cache_write = d.pop("cache_write")

        input_ = d.pop("input")

        output = d.pop("output")

        def _parse_cache_write_1h(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        cache_write_1h = _parse_cache_write_1h(d.pop("cache_write_1h", UNSET))

        rates = cls(
            cache_read=cache_read,
            cache_write=cache_write,
            input_=input_,
            output=output,
            cache_write_1h=cache_write_1h,
        )

        return rates
