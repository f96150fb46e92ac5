from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="ModelView")


@_attrs_define
class ModelView:
    """
    Attributes:
        batch_discount_percent (int):
        cache_read (str):  Example: 0.300000000.
        cache_write (str):  Example: 3.750000000.
        cache_write_1h (str): A write to Anthropic's one-hour cache (twice `input` unless set). Example: 6.000000000.
        id (str):
        input_ (str): Per million tokens. Example: 3.000000000.
        object_ (str): Always `model`. Example: model.
        output (str):  Example: 15.000000000.
        price_version (str):
        provider (str):
        version (int): The price-book version in force (each edit is a new one) and its id.
    """

    batch_discount_percent: int
    cache_read: str
    cache_write: str
    cache_write_1h: str
    id: str
    input_: str
    object_: str
    output: str
    price_version: str
    provider: str
    version: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        batch_discount_percent = self.batch_discount_percent

        cache_read = self.cache_read

        cache_write = self.cache_write

        cache_write_1h = self.cache_write_1h

        id = self.id

        input_ = self.input_

        object_ = self.object_

        output = self.output

        price_version = self.price_version

        provider = self.provider

        version = self.version

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "batch_discount_percent": batch_discount_percent,
                "cache_read": cache_read,
                "cache_write": cache_write,
                "cache_write_1h": cache_write_1h,
                "id": id,
                "input": input_,
                "object": object_,
                "output": output,
                "price_version": price_version,
                "provider": provider,
                "version": version,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        batch_discount_percent = d.pop("batch_discount_percent")

        cache_read = d.pop("cache_read")

        cache_write = d.pop("cache_write")

        cache_write_1h = d.pop("cache_write_1h")

        id = d.pop("id")

        input_ = d.pop("input")

        object_ = d.pop("object")

        output = d.pop("output")

        price_version = d.pop("price_version")

        provider = d.pop("provider")

        version = d.pop("version")

        model_view = cls(
            batch_discount_percent=batch_discount_percent,
            cache_read=cache_read,
            cache_write=cache_write,
            cache_write_1h=cache_write_1h,
            id=id,
            input_=input_,
            object_=object_,
            output=output,
            price_version=price_version,
            provider=provider,
            version=version,
        )

        model_view.additional_properties = d
        return model_view

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
