from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="Estimate")


@_attrs_define
class Estimate:
    """
    Attributes:
        customer (str):
        input_tokens (int):
        max_output_tokens (int):
        model (str):
        batch (bool | None | Unset): Priced with the model's batch discount.
        cache_creation_1h_input_tokens (int | None | Unset): Of `cache_creation_input_tokens`, those written to
            Anthropic's one-hour cache
            (priced at the model's `cache_write_1h` rate).
        cache_creation_input_tokens (int | None | Unset):
        cache_read_input_tokens (int | None | Unset):
    """

    customer: str
    input_tokens: int
    max_output_tokens: int
    model: str
    batch: bool | None | Unset = UNSET
    cache_creation_1h_input_tokens: int | None | Unset = UNSET
    cache_creation_input_tokens: int | None | Unset = UNSET
    cache_read_input_tokens: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        customer = self.customer

        input_tokens = self.input_tokens

        max_output_tokens = self.max_output_tokens

        model = self.model

        batch: bool | None | Unset
        if isinstance(self.batch, Unset):
            batch = UNSET
        else:
            batch = self.batch

        cache_creation_1h_input_tokens: int | None | Unset
        if isinstance(self.cache_creation_1h_input_tokens, Unset):
            cache_creation_1h_input_tokens = UNSET
        else:
            cache_creation_1h_input_tokens = self.cache_creation_1h_input_tokens

        cache_creation_input_tokens: int | None | Unset
        if isinstance(self.cache_creation_input_tokens, Unset):
            cache_creation_input_tokens = UNSET
        else:
            cache_creation_input_tokens = self.cache_creation_input_tokens

        cache_read_input_tokens: int | None | Unset
        if isinstance(self.cache_read_input_tokens, Unset):
            cache_read_input_tokens = UNSET
        else:
            cache_read_input_tokens = self.cache_read_input_tokens

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "customer": customer,
                "input_tokens": input_tokens,
                "max_output_tokens": max_output_tokens,
                "model": model,
            }
        )
        if batch is not UNSET:
            field_dict["batch"] = batch
        if cache_creation_1h_input_tokens is not UNSET:
            field_dict["cache_creation_1h_input_tokens"] = cache_creation_1h_input_tokens
        if cache_creation_input_tokens is not UNSET:
            field_dict["cache_creation_input_tokens"] = cache_creation_input_tokens
        if cache_read_input_tokens is not UNSET:
            field_dict["cache_read_input_tokens"] = cache_read_input_tokens

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        customer = d.pop("customer")

        input_tokens = d.pop("input_tokens")

        max_output_tokens = d.pop("max_output_tokens")

        model = d.pop("model")

        def _parse_batch(data: object) -> bool | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | Unset, data)

        batch = _parse_batch(d.pop("batch", UNSET))

        def _parse_cache_creation_1h_input_tokens(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        cache_creation_1h_input_tokens = _parse_cache_creation_1h_input_tokens(
            d.pop("cache_creation_1h_input_tokens", UNSET)
        )

        def _parse_cache_creation_input_tokens(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        cache_creation_input_tokens = _parse_cache_creation_input_tokens(d.pop("cache_creation_input_tokens", UNSET))

        def _parse_cache_read_input_tokens(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        cache_read_input_tokens = _parse_cache_read_input_tokens(d.pop("cache_read_input_tokens", UNSET))

        estimate = cls(
            customer=customer,
            input_tokens=input_tokens,
            max_output_tokens=max_output_tokens,
            model=model,
            batch=batch,
            cache_creation_1h_input_tokens=cache_creation_1h_input_tokens,
            cache_creation_input_tokens=cache_creation_input_tokens,
            cache_read_input_tokens=cache_read_input_tokens,
        )

        return estimate
