from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="SubscriptionView")


@_attrs_define
class SubscriptionView:
    """
    Attributes:
        cancel_at_period_end (bool):
        created_at (str):
        customer (str):
        id (str): `sub_…`
        object_ (str): Always `subscription`. Example: subscription.
        plan (str):
        status (str): `incomplete`, `active`, `past_due` or `canceled`.
        current_period_end (None | str | Unset):
        current_period_start (None | str | Unset):
        grace_ends_at (None | str | Unset): While past due: when access stops unless an invoice is paid.
        pending_plan (None | str | Unset): A downgrade that takes effect at the period's end.
        url (None | str | Unset): Where to send the customer to subscribe (while `incomplete`).
    """

    cancel_at_period_end: bool
    created_at: str
    customer: str
    id: str
    object_: str
    plan: str
    status: str
    current_period_end: None | str | Unset = UNSET
    current_period_start: None | str | Unset = UNSET
    grace_ends_at: None | str | Unset = UNSET
    pending_plan: None | str | Unset = UNSET
    url: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        cancel_at_period_end = self.cancel_at_period_end

        created_at = self.created_at

        customer = self.customer

        id = self.id

        object_ = self.object_

        plan = self.plan

        status = self.status

        current_period_end: None | str | Unset
        if isinstance(self.current_period_end, Unset):
            current_period_end = UNSET
        else:
            current_period_end = self.current_period_end

        current_period_start: None | str | Unset
        if isinstance(self.current_period_start, Unset):
            current_period_start = UNSET
        else:
            current_period_start = self.current_period_start

        grace_ends_at: None | str | Unset
        if isinstance(self.grace_ends_at, Unset):
            grace_ends_at = UNSET
        else:
            grace_ends_at = self.grace_ends_at

        pending_plan: None | str | Unset
        if isinstance(self.pending_plan, Unset):
            pending_plan = UNSET
        else:
            pending_plan = self.pending_plan

        url: None | str | Unset
        if isinstance(self.url, Unset):
            url = UNSET
        else:
            url = self.url

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "cancel_at_period_end": cancel_at_period_end,
                "created_at": created_at,
                "customer": customer,
                "id": id,
                "object": object_,
                "plan": plan,
                "status": status,
            }
        )
        if current_period_end is not UNSET:
            field_dict["current_period_end"] = current_period_end
        if current_period_start is not UNSET:
            field_dict["current_period_start"] = current_period_start
        if grace_ends_at is not UNSET:
            field_dict["grace_ends_at"] = grace_ends_at
        if pending_plan is not UNSET:
            field_dict["pending_plan"] = pending_plan
        if url is not UNSET:
            field_dict["url"] = url

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        cancel_at_period_end = d.pop("cancel_at_period_end")

        created_at = d.pop("created_at")

        customer = d.pop("customer")

        id = d.pop("id")

        object_ = d.pop("object")

        plan = d.pop("plan")

        status = d.pop("status")

        def _parse_current_period_end(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        current_period_end = _parse_current_period_end(d.pop("current_period_end", UNSET))

        def _parse_current_period_start(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        current_period_start = _parse_current_period_start(d.pop("current_period_start", UNSET))

        def _parse_grace_ends_at(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        grace_ends_at = _parse_grace_ends_at(d.pop("grace_ends_at", UNSET))

        def _parse_pending_plan(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        pending_plan = _parse_pending_plan(d.pop("pending_plan", UNSET))

        def _parse_url(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        url = _parse_url(d.pop("url", UNSET))

        subscription_view = cls(
            cancel_at_period_end=cancel_at_period_end,
            created_at=created_at,
            customer=customer,
            id=id,
            object_=object_,
            plan=plan,
            status=status,
            current_period_end=current_period_end,
            current_period_start=current_period_start,
            grace_ends_at=grace_ends_at,
            pending_plan=pending_plan,
            url=url,
        )

        subscription_view.additional_properties = d
        return subscription_view

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
