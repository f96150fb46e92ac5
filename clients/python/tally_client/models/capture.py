from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.outcome_name import OutcomeName, check_outcome_name
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.capture_metadata_type_0 import CaptureMetadataType0


T = TypeVar("T", bound="Capture")


@_attrs_define
class Capture:
    """
    Attributes:
        input_tokens (int):
        output_tokens (int):
        batch (bool | None | Unset): Priced with the batch discount; defaults to the authorization's.
        cache_creation_1h_input_tokens (int | None | Unset): Of `cache_creation_input_tokens`, those written to
            Anthropic's one-hour cache
            (priced at the model's `cache_write_1h` rate).
        cache_creation_input_tokens (int | None | Unset):
        cache_read_input_tokens (int | None | Unset):
        metadata (CaptureMetadataType0 | None | Unset):
        model (None | str | Unset):
        outcome (None | OutcomeName | Unset):
        request_id (None | str | Unset):
    """

    input_tokens: int
    output_tokens: int
    batch: bool | None | Unset = UNSET
    cache_creation_1h_input_tokens: int | None | Unset = UNSET
    cache_creation_input_tokens: int | None | Unset = UNSET
    cache_read_input_tokens: int | None | Unset = UNSET
    metadata: CaptureMetadataType0 | None | Unset = UNSET
    model: None | str | Unset = UNSET
    outcome: None | OutcomeName | Unset = UNSET
    request_id: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.capture_metadata_type_0 import CaptureMetadataType0  # noqa: PLC0415

        input_tokens = self.input_tokens

        output_tokens = self.output_tokens

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
        elif isinstance(self.metadata, CaptureMetadataType0):
            metadata = self.metadata.to_dict()
        else:
            metadata = self.metadata

        model: None | str | Unset
        if isinstance(self.model, Unset):
            model = UNSET
        else:
            model = self.model

        outcome: None | str | Unset
        if isinstance(self.outcome, Unset):
            outcome = UNSET
        elif isinstance(self.outcome, str):
            outcome = self.outcome
        else:
            outcome = self.outcome

        request_id: None | str | Unset
        if isinstance(self.request_id, Unset):
            request_id = UNSET
        else:
            request_id = self.request_id

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
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
        if model is not UNSET:
            field_dict["model"] = model
        if outcome is not UNSET:
            field_dict["outcome"] = outcome
        if request_id is not UNSET:
            field_dict["request_id"] = request_id

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.capture_metadata_type_0 import CaptureMetadataType0  # noqa: PLC0415

        d = dict(src_dict)
        input_tokens = d.pop("input_tokens")

        output_tokens = d.pop("output_tokens")

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

        def _parse_metadata(data: object) -> CaptureMetadataType0 | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                metadata_type_0 = CaptureMetadataType0.from_dict(data)

                return metadata_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(CaptureMetadataType0 | None | Unset, data)

        metadata = _parse_metadata(d.pop("metadata", UNSET))

        def _parse_model(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        model = _parse_model(d.pop("model", UNSET))

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

        def _parse_request_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        request_id = _parse_request_id(d.pop("request_id", UNSET))

        capture = cls(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            batch=batch,
            cache_creation_1h_input_tokens=cache_creation_1h_input_tokens,
            cache_creation_input_tokens=cache_creation_input_tokens,
            cache_read_input_tokens=cache_read_input_tokens,
            metadata=metadata,
            model=model,
            outcome=outcome,
            request_id=request_id,
        )

        return capture
