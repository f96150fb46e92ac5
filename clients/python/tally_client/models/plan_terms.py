from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.failed_request_policy import FailedRequestPolicy, check_failed_request_policy
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.plan_terms_rates import PlanTermsRates
    from ..models.tier import Tier


T = TypeVar("T", bound="PlanTerms")


@_attrs_define
class PlanTerms:
    """The terms of one plan version. Stored as JSON; every field has a default so `{}` is
    the standard plan (list prices).

        Attributes:
            allowed_models (list[str] | None | Unset): The models the plan may use; None: every priced model.
            daily_spend_cap (None | str | Unset):
            default_max_output_tokens (int | Unset): The output tokens the proxy holds for when a request names no limit
                (OpenAI's
                `max_completion_tokens` / `max_output_tokens` are optional).
            failed_request_policy (FailedRequestPolicy | Unset): What a failed request is charged for.
            grace_days (int | Unset): Days of access after a failed renewal before the customer is refused.
            hold_lifetime_seconds (int | Unset):
            included_credits (str | Unset): Credits granted for each monthly period: when the period's invoice is paid on a
                plan with a recurring fee, at the start of each calendar month otherwise.
            low_balance_threshold (str | Unset):
            markup_percent (str | Unset): Added to list prices (ignored for models the plan sets its own rates for).
            max_request_cost (None | str | Unset): The metering proxy refuses a request whose worst-case cost is above this
                (400,
                naming the estimate): the guard against runaway context. None: no guard.
            max_topup (str | Unset):
            min_topup (str | Unset): The smallest and the largest top-up a customer may buy (whole cents).
            monthly_spend_cap (None | str | Unset):
            rates (PlanTermsRates | Unset): The plan's own rates per model, replacing list prices.
            recurring_fee (str | Unset): The monthly fee of a subscription plan, charged by Stripe Billing; zero: the plan
                is not sold as a subscription.
            rollover (bool | Unset): Whether a period's included credits outlive the period (otherwise they expire at
                its end).
            spend_spike_percent (int | None | Unset): `spend.spike` is sent when a customer's spend today passes this
                percentage of
                their average daily spend over the seven days before (300: three times). None: no
                spike alerts.
            tiers (list[Tier] | Unset):
            topup_packs (list[str] | Unset):
    """

    allowed_models: list[str] | None | Unset = UNSET
    daily_spend_cap: None | str | Unset = UNSET
    default_max_output_tokens: int | Unset = UNSET
    failed_request_policy: FailedRequestPolicy | Unset = UNSET
    grace_days: int | Unset = UNSET
    hold_lifetime_seconds: int | Unset = UNSET
    included_credits: str | Unset = UNSET
    low_balance_threshold: str | Unset = UNSET
    markup_percent: str | Unset = UNSET
    max_request_cost: None | str | Unset = UNSET
    max_topup: str | Unset = UNSET
    min_topup: str | Unset = UNSET
    monthly_spend_cap: None | str | Unset = UNSET
    rates: PlanTermsRates | Unset = UNSET
    recurring_fee: str | Unset = UNSET
    rollover: bool | Unset = UNSET
    spend_spike_percent: int | None | Unset = UNSET
    tiers: list[Tier] | Unset = UNSET
    topup_packs: list[str] | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        allowed_models: list[str] | None | Unset
        if isinstance(self.allowed_models, Unset):
            allowed_models = UNSET
        elif isinstance(self.allowed_models, list):
            allowed_models = self.allowed_models

        else:
            allowed_models = self.allowed_models

        daily_spend_cap: None | str | Unset
        if isinstance(self.daily_spend_cap, Unset):
            daily_spend_cap = UNSET
        else:
            daily_spend_cap = self.daily_spend_cap

        default_max_output_tokens = self.default_max_output_tokens

        failed_request_policy: str | Unset = UNSET
        if not isinstance(self.failed_request_policy, Unset):
            failed_request_policy = self.failed_request_policy

        grace_days = self.grace_days

        hold_lifetime_seconds = self.hold_lifetime_seconds

        included_credits = self.included_credits

        low_balance_threshold = self.low_balance_threshold

        markup_percent = self.markup_percent

        max_request_cost: None | str | Unset
        if isinstance(self.max_request_cost, Unset):
            max_request_cost = UNSET
        else:
            max_request_cost = self.max_request_cost

        max_topup = self.max_topup

        min_topup = self.min_topup

        monthly_spend_cap: None | str | Unset
        if isinstance(self.monthly_spend_cap, Unset):
            monthly_spend_cap = UNSET
        else:
            monthly_spend_cap = self.monthly_spend_cap

        rates: dict[str, Any] | Unset = UNSET
        if not isinstance(self.rates, Unset):
            rates = self.rates.to_dict()

        recurring_fee = self.recurring_fee

        rollover = self.rollover

        spend_spike_percent: int | None | Unset
        if isinstance(self.spend_spike_percent, Unset):
            spend_spike_percent = UNSET
        else:
            spend_spike_percent = self.spend_spike_percent

        tiers: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.tiers, Unset):
            tiers = []
            for tiers_item_data in self.tiers:
                tiers_item = tiers_item_data.to_dict()
                tiers.append(tiers_item)

        topup_packs: list[str] | Unset = UNSET
        if not isinstance(self.topup_packs, Unset):
            topup_packs = self.topup_packs

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if allowed_models is not UNSET:
            field_dict["allowed_models"] = allowed_models
        if daily_spend_cap is not UNSET:
            field_dict["daily_spend_cap"] = daily_spend_cap
        if default_max_output_tokens is not UNSET:
            field_dict["default_max_output_tokens"] = default_max_output_tokens
        if failed_request_policy is not UNSET:
            field_dict["failed_request_policy"] = failed_request_policy
        if grace_days is not UNSET:
            field_dict["grace_days"] = grace_days
        if hold_lifetime_seconds is not UNSET:
            field_dict["hold_lifetime_seconds"] = hold_lifetime_seconds
        if included_credits is not UNSET:
            field_dict["included_credits"] = included_credits
        if low_balance_threshold is not UNSET:
            field_dict["low_balance_threshold"] = low_balance_threshold
        if markup_percent is not UNSET:
            field_dict["markup_percent"] = markup_percent
        if max_request_cost is not UNSET:
            field_dict["max_request_cost"] = max_request_cost
        if max_topup is not UNSET:
            field_dict["max_topup"] = max_topup
        if min_topup is not UNSET:
            field_dict["min_topup"] = min_topup
        if monthly_spend_cap is not UNSET:
            field_dict["monthly_spend_cap"] = monthly_spend_cap
        if rates is not UNSET:
            field_dict["rates"] = rates
        if recurring_fee is not UNSET:
            field_dict["recurring_fee"] = recurring_fee
        if rollover is not UNSET:
            field_dict["rollover"] = rollover
        if spend_spike_percent is not UNSET:
            field_dict["spend_spike_percent"] = spend_spike_percent
        if tiers is not UNSET:
            field_dict["tiers"] = tiers
        if topup_packs is not UNSET:
            field_dict["topup_packs"] = topup_packs

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.plan_terms_rates import PlanTermsRates  # noqa: PLC0415
        from ..models.tier import Tier  # noqa: PLC0415

        d = dict(src_dict)

        def _parse_allowed_models(data: object) -> list[str] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                allowed_models_type_0 = cast(list[str], data)

                return allowed_models_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[str] | None | Unset, data)

        allowed_models = _parse_allowed_models(d.pop("allowed_models", UNSET))

        def _parse_daily_spend_cap(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        daily_spend_cap = _parse_daily_spend_cap(d.pop("daily_spend_cap", UNSET))

        default_max_output_tokens = d.pop("default_max_output_tokens", UNSET)

        _failed_request_policy = d.pop("failed_request_policy", UNSET)
        failed_request_policy: FailedRequestPolicy | Unset
        if isinstance(_failed_request_policy, Unset):
            failed_request_policy = UNSET
        else:
            failed_request_policy = check_failed_request_policy(_failed_request_policy)

        grace_days = d.pop("grace_days", UNSET)

        hold_lifetime_seconds = d.pop("hold_lifetime_seconds", UNSET)

        included_credits = d.pop("included_credits", UNSET)

        low_balance_threshold = d.pop("low_balance_threshold", UNSET)

        markup_percent = d.pop("markup_percent", UNSET)

        def _parse_max_request_cost(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        max_request_cost = _parse_max_request_cost(d.pop("max_request_cost", UNSET))

        max_topup = d.pop("max_topup", UNSET)

        min_topup = d.pop("min_topup", UNSET)

        def _parse_monthly_spend_cap(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        monthly_spend_cap = _parse_monthly_spend_cap(d.pop("monthly_spend_cap", UNSET))

        _rates = d.pop("rates", UNSET)
        rates: PlanTermsRates | Unset
        if isinstance(_rates, Unset):
            rates = UNSET
        else:
            rates = PlanTermsRates.from_dict(_rates)

        recurring_fee = d.pop("recurring_fee", UNSET)

        rollover = d.pop("rollover", UNSET)

        def _parse_spend_spike_percent(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        spend_spike_percent = _parse_spend_spike_percent(d.pop("spend_spike_percent", UNSET))

        _tiers = d.pop("tiers", UNSET)
        tiers: list[Tier] | Unset = UNSET
        if _tiers is not UNSET:
            tiers = []
            for tiers_item_data in _tiers:
                tiers_item = Tier.from_dict(tiers_item_data)

                tiers.append(tiers_item)

        topup_packs = cast(list[str], d.pop("topup_packs", UNSET))

        plan_terms = cls(
            allowed_models=allowed_models,
            daily_spend_cap=daily_spend_cap,
            default_max_output_tokens=default_max_output_tokens,
            failed_request_policy=failed_request_policy,
            grace_days=grace_days,
            hold_lifetime_seconds=hold_lifetime_seconds,
            included_credits=included_credits,
            low_balance_threshold=low_balance_threshold,
            markup_percent=markup_percent,
            max_request_cost=max_request_cost,
            max_topup=max_topup,
            min_topup=min_topup,
            monthly_spend_cap=monthly_spend_cap,
            rates=rates,
            recurring_fee=recurring_fee,
            rollover=rollover,
            spend_spike_percent=spend_spike_percent,
            tiers=tiers,
            topup_packs=topup_packs,
        )

        return plan_terms
