from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="LineItemView")


@_attrs_define
class LineItemView:
    """
    Attributes:
        amount (str):  Example: 0.003612000.
        kind (str): `input`, `output`, `cache_write` (five minutes), `cache_write_1h` or `cache_read`.
        rate_per_million (str):  Example: 3.000000000.
        tokens (int):
        batch_discount_percent (None | str | Unset):  Example: 0.00.
        list_rate_per_million (None | str | Unset): The price book's rate (or the plan's own rate for the model) before
            markup and
            discounts; null on events priced before it was recorded. Example: 3.000000000.
        markup_percent (None | str | Unset):  Example: 20.00.
        tier_discount_percent (None | str | Unset):  Example: 10.00.
    """

    amount: str
    kind: str
    rate_per_million: str
    tokens: int
    batch_discount_percent: None | str | Unset = UNSET
    list_rate_per_million: None | str | Unset = UNSET
    markup_percent: None | str | Unset = UNSET
    tier_discount_percent: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        amount = self.amount

        kind = self.kind

        rate_per_million = self.rate_per_million

        tokens = self.tokens

        batch_discount_percent: None | str | Unset
        if isinstance(self.batch_discount_percent, Unset):
            batch_discount_percent = UNSET
        else:
            batch_discount_percent = self.batch_discount_percent

        list_rate_per_million: None | str | Unset
        if isinstance(self.list_rate_per_million, Unset):
            list_rate_per_million = UNSET
        else:
            list_rate_per_million = self.list_rate_per_million

        markup_percent: None | str | Unset
        if isinstance(self.markup_percent, Unset):
            markup_percent = UNSET
        else:
            markup_percent = self.markup_percent

        tier_discount_percent: None | str | Unset
        if isinstance(self.tier_discount_percent, Unset):
            tier_discount_percent = UNSET
        else:
            tier_discount_percent = self.tier_discount_percent

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "amount": amount,
                "kind": kind,
                "rate_per_million": rate_per_million,
                "tokens": tokens,
            }
        )
        if batch_discount_percent is not UNSET:
            field_dict["batch_discount_percent"] = batch_discount_percent
        if list_rate_per_million is not UNSET:
            field_dict["list_rate_per_million"] = list_rate_per_million
        if markup_percent is not UNSET:
            field_dict["markup_percent"] = markup_percent
        if tier_discount_percent is not UNSET:
            field_dict["tier_discount_percent"] = tier_discount_percent

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        amount = d.pop("amount")

        kind = d.pop("kind")

        rate_per_million = d.pop("rate_per_million")

        tokens = d.pop("tokens")

        def _parse_batch_discount_percent(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        batch_discount_percent = _parse_batch_discount_percent(d.pop("batch_discount_percent", UNSET))

        def _parse_list_rate_per_million(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        list_rate_per_million = _parse_list_rate_per_million(d.pop("list_rate_per_million", UNSET))

        def _parse_markup_percent(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        markup_percent = _parse_markup_percent(d.pop("markup_percent", UNSET))

        def _parse_tier_discount_percent(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        tier_discount_percent = _parse_tier_discount_percent(d.pop("tier_discount_percent", UNSET))

        line_item_view = cls(
            amount=amount,
            kind=kind,
            rate_per_million=rate_per_million,
            tokens=tokens,
            batch_discount_percent=batch_discount_percent,
            list_rate_per_million=list_rate_per_million,
            markup_percent=markup_percent,
            tier_discount_percent=tier_discount_percent,
        )

        line_item_view.additional_properties = d
        return line_item_view

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
