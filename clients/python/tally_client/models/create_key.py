from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.limit_period_name import LimitPeriodName, check_limit_period_name
from ..types import UNSET, Unset

T = TypeVar("T", bound="CreateKey")


@_attrs_define
class CreateKey:
    """
    Attributes:
        expires_at (datetime.datetime | None | Unset):
        limit_period (LimitPeriodName | None | Unset):
        name (None | str | Unset):
        spend_limit (None | str | Unset):
    """

    expires_at: datetime.datetime | None | Unset = UNSET
    limit_period: LimitPeriodName | None | Unset = UNSET
    name: None | str | Unset = UNSET
    spend_limit: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        expires_at: None | str | Unset
        if isinstance(self.expires_at, Unset):
            expires_at = UNSET
        elif isinstance(self.expires_at, datetime.datetime):
            expires_at = self.expires_at.isoformat()
        else:
            expires_at = self.expires_at

        limit_period: None | str | Unset
        if isinstance(self.limit_period, Unset):
            limit_period = UNSET
        elif isinstance(self.limit_period, str):
            limit_period = self.limit_period
        else:
            limit_period = self.limit_period

        name: None | str | Unset
        if isinstance(self.name, Unset):
            name = UNSET
        else:
            name = self.name

        spend_limit: None | str | Unset
        if isinstance(self.spend_limit, Unset):
            spend_limit = UNSET
        else:
            spend_limit = self.spend_limit

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if expires_at is not UNSET:
            field_dict["expires_at"] = expires_at
        if limit_period is not UNSET:
            field_dict["limit_period"] = limit_period
        if name is not UNSET:
            field_dict["name"] = name
        if spend_limit is not UNSET:
            field_dict["spend_limit"] = spend_limit

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)

        def _parse_expires_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                expires_at_type_1 = datetime.datetime.fromisoformat(data)

                return expires_at_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        expires_at = _parse_expires_at(d.pop("expires_at", UNSET))

        def _parse_limit_period(data: object) -> LimitPeriodName | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                limit_period_type_1 = check_limit_period_name(data)

                return limit_period_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(LimitPeriodName | None | Unset, data)

        limit_period = _parse_limit_period(d.pop("limit_period", UNSET))

        def _parse_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        name = _parse_name(d.pop("name", UNSET))

        def _parse_spend_limit(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        spend_limit = _parse_spend_limit(d.pop("spend_limit", UNSET))

        create_key = cls(
            expires_at=expires_at,
            limit_period=limit_period,
            name=name,
            spend_limit=spend_limit,
        )

        return create_key
