from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.outcome_name import OutcomeName, check_outcome_name
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.record_usage_metadata_type_0 import RecordUsageMetadataType0


T = TypeVar("T", bound="RecordUsage")


@_attrs_define
class RecordUsage:
    """
    Attributes:
        customer (str):
        input_tokens (int):
        model (str):
        output_tokens (int):
        request_id (str):
        batch (bool | None | Unset):
        cache_creation_1h_input_tokens (int | None | Unset): Of `cache_creation_input_tokens`, those written to
            Anthropic's one-hour cache
            (priced at the model's `cache_write_1h` rate).
        cache_creation_input_tokens (int | None | Unset):
        cache_read_input_tokens (int | None | Unset):
        metadata (None | RecordUsageMetadataType0 | Unset):
        occurred_at (datetime.datetime | None | Unset):
        outcome (None | OutcomeName | Unset):
    """

    customer: str
    input_tokens: int
    model: str
    output_tokens: int
    request_id: str
    batch: bool | None | Unset = UNSET
    cache_creation_1h_input_tokens: int | None | Unset = UNSET
    cache_creation_input_tokens: int | None | Unset = UNSET
    cache_read_input_tokens: int | None | Unset = UNSET
    metadata: None | RecordUsageMetadataType0 | Unset = UNSET
    occurred_at: datetime.datetime | None | Unset = UNSET
    outcome: None | OutcomeName | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.record_usage_metadata_type_0 import RecordUsageMetadataType0  # noqa: PLC0415

        customer = self.customer

        input_tokens = self.input_tokens

        model = self.model

        output_tokens = self.output_tokens

        request_id = self.request_id

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

        metadata: dict[str, Any] | None | Unset
        if isinstance(self.metadata, Unset):
            metadata = UNSET
        elif isinstance(self.metadata, RecordUsageMetadataType0):
            metadata = self.metadata.to_dict()
        else:
            metadata = self.metadata

        occurred_at: None | str | Unset
        if isinstance(self.occurred_at, Unset):
            occurred_at = UNSET
        elif isinstance(self.occurred_at, datetime.datetime):
            occurred_at = self.occurred_at.isoformat()
        else:
            occurred_at = self.occurred_at

        outcome: None | str | Unset
        if isinstance(self.outcome, Unset):
            outcome = UNSET
        elif isinstance(self.outcome, str):
            outcome = self.outcome
        else:
            outcome = self.outcome

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "customer": customer,
                "input_tokens": input_tokens,
                "model": model,
                "output_tokens": output_tokens,
                "request_id": request_id,
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
        if metadata is not UNSET:
            field_dict["metadata"] = metadata
        if occurred_at is not UNSET:
            field_dict["occurred_at"] = occurred_at
        if outcome is not UNSET:
            field_dict["outcome"] = outcome

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.record_usage_metadata_type_0 import RecordUsageMetadataType0  # noqa: PLC0415

        d = dict(src_dict)
        customer = d.pop("customer")

        input_tokens = d.pop("input_tokens")

        model = d.pop("model")

        output_tokens = d.pop("output_tokens")

        request_id = d.pop("request_id")

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

        def _parse_metadata(data: object) -> None | RecordUsageMetadataType0 | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                metadata_type_0 = RecordUsageMetadataType0.from_dict(data)

                return metadata_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | RecordUsageMetadataType0 | Unset, data)

        metadata = _parse_metadata(d.pop("metadata", UNSET))

        def _parse_occurred_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                occurred_at_type_1 = datetime.datetime.fromisoformat(data)

                return occurred_at_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        occurred_at = _parse_occurred_at(d.pop("occurred_at", UNSET))

        def _parse_outcome(data: object) -> None | OutcomeName | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                outcome_type_1 = check_outcome_name(data)

                return outcome_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | OutcomeName | Unset, data)

        outcome = _parse_outcome(d.pop("outcome", UNSET))

        record_usage = cls(
            customer=customer,
            input_tokens=input_tokens,
            model=model,
            output_tokens=output_tokens,
            request_id=request_id,
            batch=batch,
            cache_creation_1h_input_tokens=cache_creation_1h_input_tokens,
            cache_creation_input_tokens=cache_creation_input_tokens,
            cache_read_input_tokens=cache_read_input_tokens,
            metadata=metadata,
            occurred_at=occurred_at,
            outcome=outcome,
        )

        return record_usage
