from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.line_item_view import LineItemView
    from ..models.tier_view import TierView


T = TypeVar("T", bound="UsageEventView")


@_attrs_define
class UsageEventView:
    """
    Attributes:
        authorization_expired (bool): Captured after its authorization expired: charged from available all the same.
        batch (bool):
        cache_creation_1h_input_tokens (int): Of `cache_creation_input_tokens`, those written to Anthropic's one-hour
            cache.
        cache_creation_input_tokens (int):
        cache_read_input_tokens (int):
        cost (str):  Example: 0.008862000.
        created_at (str):
        customer (str):
        id (str):
        input_tokens (int):
        line_items (list[LineItemView]):
        model (str):
        object_ (str): Always `usage_event`. Example: usage_event.
        occurred_at (str):
        outcome (str): `succeeded`, `failed` or `cancelled`.
        output_tokens (int):
        plan_version (str): The id of the plan version the event was priced with.
        refunded_amount (str): What a refund gave back of `cost` (`"0.000000000"` when none). Example: 0.000000000.
        request_id (str):
        authorization (None | str | Unset):
        balance (None | str | Unset): The customer's available balance right after this event (write responses only).
        entitled (bool | None | Unset): Whether the customer may go on (write responses only).
        metadata (Any | Unset):
        price_version (None | str | Unset): The id of the price-book version of the model it was priced with.
        refund_reason (None | str | Unset):
        tier (None | TierView | Unset):
    """

    authorization_expired: bool
    batch: bool
    cache_creation_1h_input_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cost: str
    created_at: str
    customer: str
    id: str
    input_tokens: int
    line_items: list[LineItemView]
    model: str
    object_: str
    occurred_at: str
    outcome: str
    output_tokens: int
    plan_version: str
    refunded_amount: str
    request_id: str
    authorization: None | str | Unset = UNSET
    balance: None | str | Unset = UNSET
    entitled: bool | None | Unset = UNSET
    metadata: Any | Unset = UNSET
    price_version: None | str | Unset = UNSET
    refund_reason: None | str | Unset = UNSET
    tier: None | TierView | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.tier_view import TierView  # noqa: PLC0415

        authorization_expired = self.authorization_expired

        batch = self.batch

        cache_creation_1h_input_tokens = self.cache_creation_1h_input_tokens

        cache_creation_input_tokens = self.cache_creation_input_tokens

        cache_read_input_tokens = self.cache_read_input_tokens

        cost = self.cost

        created_at = self.created_at

        customer = self.customer

        id = self.id

        input_tokens = self.input_tokens

        line_items = []
        for line_items_item_data in self.line_items:
            line_items_item = line_items_item_data.to_dict()
            line_items.append(line_items_item)

        model = self.model

        object_ = self.object_

        occurred_at = self.occurred_at

        outcome = self.outcome

        output_tokens = self.output_tokens

        plan_version = self.plan_version

        refunded_amount = self.refunded_amount

        request_id = self.request_id

        authorization: None | str | Unset
        if isinstance(self.authorization, Unset):
            authorization = UNSET
        else:
            authorization = self.authorization

        balance: None | str | Unset
        if isinstance(self.balance, Unset):
            balance = UNSET
        else:
            balance = self.balance

        entitled: bool | None | Unset
        if isinstance(self.entitled, Unset):
            entitled = UNSET
        else:
            entitled = self.entitled

        metadata = self.metadata

        price_version: None | str | Unset
        if isinstance(self.price_version, Unset):
            price_version = UNSET
        else:
            price_version = self.price_version

        refund_reason: None | str | Unset
        if isinstance(self.refund_reason, Unset):
            refund_reason = UNSET
        else:
            refund_reason = self.refund_reason

        tier: dict[str, Any] | None | Unset
        if isinstance(self.tier, Unset):
            tier = UNSET
        elif isinstance(self.tier, TierView):
            tier = self.tier.to_dict()
        else:
            tier = self.tier

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "authorization_expired": authorization_expired,
                "batch": batch,
                "cache_creation_1h_input_tokens": cache_creation_1h_input_tokens,
                "cache_creation_input_tokens": cache_creation_input_tokens,
                "cache_read_input_tokens": cache_read_input_tokens,
                "cost": cost,
                "created_at": created_at,
                "customer": customer,
                "id": id,
                "input_tokens": input_tokens,
                "line_items": line_items,
                "model": model,
                "object": object_,
                "occurred_at": occurred_at,
                "outcome": outcome,
                "output_tokens": output_tokens,
                "plan_version": plan_version,
                "refunded_amount": refunded_amount,
                "request_id": request_id,
            }
        )
        if authorization is not UNSET:
            field_dict["authorization"] = authorization
        if balance is not UNSET:
            field_dict["balance"] = balance
        if entitled is not UNSET:
            field_dict["entitled"] = entitled
        if metadata is not UNSET:
            field_dict["metadata"] = metadata
        if price_version is not UNSET:
            field_dict["price_version"] = price_version
        if refund_reason is not UNSET:
            field_dict["refund_reason"] = refund_reason
        if tier is not UNSET:
            field_dict["tier"] = tier

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.line_item_view import LineItemView  # noqa: PLC0415
        from ..models.tier_view import TierView  # noqa: PLC0415

        d = dict(src_dict)
        authorization_expired = d.pop("authorization_expired")

        batch = d.pop("batch")

        cache_creation_1h_input_tokens = d.pop("cache_creation_1h_input_tokens")

        cache_creation_input_tokens = d.pop("cache_creation_input_tokens")

        cache_read_input_tokens = d.pop("cache_read_input_tokens")

        cost = d.pop("cost")

        created_at = d.pop("created_at")

        customer = d.pop("customer")

        id = d.pop("id")

        input_tokens = d.pop("input_tokens")

        line_items = []
        _line_items = d.pop("line_items")
        for line_items_item_data in _line_items:
            line_items_item = LineItemView.from_dict(line_items_item_data)

            line_items.append(line_items_item)

        model = d.pop("model")

        object_ = d.pop("object")

        occurred_at = d.pop("occurred_at")

        outcome = d.pop("outcome")

        output_tokens = d.pop("output_tokens")

        plan_version = d.pop("plan_version")

        refunded_amount = d.pop("refunded_amount")

        request_id = d.pop("request_id")

        def _parse_authorization(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        authorization = _parse_authorization(d.pop("authorization", UNSET))

        def _parse_balance(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        balance = _parse_balance(d.pop("balance", UNSET))

        def _parse_entitled(data: object) -> bool | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | Unset, data)

        entitled = _parse_entitled(d.pop("entitled", UNSET))

        metadata = d.pop("metadata", UNSET)

        def _parse_price_version(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        price_version = _parse_price_version(d.pop("price_version", UNSET))

        def _parse_refund_reason(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        refund_reason = _parse_refund_reason(d.pop("refund_reason", UNSET))

        def _parse_tier(data: object) -> None | TierView | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                tier_type_1 = TierView.from_dict(data)

                return tier_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | TierView | Unset, data)

        tier = _parse_tier(d.pop("tier", UNSET))

        usage_event_view = cls(
            authorization_expired=authorization_expired,
            batch=batch,
            cache_creation_1h_input_tokens=cache_creation_1h_input_tokens,
            cache_creation_input_tokens=cache_creation_input_tokens,
            cache_read_input_tokens=cache_read_input_tokens,
            cost=cost,
            created_at=created_at,
            customer=customer,
            id=id,
            input_tokens=input_tokens,
            line_items=line_items,
            model=model,
            object_=object_,
            occurred_at=occurred_at,
            outcome=outcome,
            output_tokens=output_tokens,
            plan_version=plan_version,
            refunded_amount=refunded_amount,
            request_id=request_id,
            authorization=authorization,
            balance=balance,
            entitled=entitled,
            metadata=metadata,
            price_version=price_version,
            refund_reason=refund_reason,
            tier=tier,
        )

        usage_event_view.additional_properties = d
        return usage_event_view

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
