//! The metering proxy's rules, without HTTP: what a provider request asks for (model,
//! stream, worst-case tokens), what its answer reports (usage, id), and the record of a
//! request that was refused. The HTTP edge (`server::proxy`) authenticates, holds through
//! `metering::authorize_prepared`, forwards, streams and settles through
//! `metering::capture_prepared`.

pub mod bound;
pub mod reconcile;
pub mod usage;

use serde_json::Value;

use super::error::{Error, Result};
use super::ledger::Mode;
use super::metering::{self, ProxyTag};
use super::pricing::{Outcome, Tokens};
use super::Core;

/// The upstream a request goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    Anthropic,
    OpenAi,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic",
            Provider::OpenAi => "openai",
        }
    }

    /// The provider a price-book row names (`anthropic`, `openai`).
    pub fn parse(s: &str) -> Option<Provider> {
        match s {
            "anthropic" => Some(Provider::Anthropic),
            "openai" => Some(Provider::OpenAi),
            _ => None,
        }
    }
}

/// The charged endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// Anthropic `POST /v1/messages`.
    Messages,
    /// OpenAI `POST /v1/chat/completions`.
    ChatCompletions,
    /// OpenAI `POST /v1/responses`.
    Responses,
}

impl Endpoint {
    pub fn provider(self) -> Provider {
        match self {
            Endpoint::Messages => Provider::Anthropic,
            Endpoint::ChatCompletions | Endpoint::Responses => Provider::OpenAi,
        }
    }

    /// The path below the provider's base URL.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Messages => "/v1/messages",
            Endpoint::ChatCompletions => "/v1/chat/completions",
            Endpoint::Responses => "/v1/responses",
        }
    }
}

/// What the proxy needs to know of a request before it forwards it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedRequest {
    pub endpoint: Endpoint,
    pub model: String,
    pub stream: bool,
    /// The worst case: input bound (never an underestimate) and the output limit.
    pub worst_case: Tokens,
    pub input: bound::InputBound,
    /// OpenAI chat streams: the client asked for the usage chunk itself.
    pub client_wants_usage: bool,
}

fn positive(v: Option<&Value>, param: &str) -> Result<Option<u64>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => Ok(Some(n)),
            _ => Err(Error::invalid(
                param,
                format!("{param} must be a positive integer"),
            )),
        },
    }
}

/// Reads a provider request body. `default_output` is the plan's limit for requests that
/// name none; `long_context` is Anthropic's 1M-token beta.
pub fn parse_request(
    endpoint: Endpoint,
    body: &[u8],
    default_output: u64,
    long_context: bool,
) -> Result<ParsedRequest> {
    let json: Value = serde_json::from_slice(body)
        .map_err(|e| Error::invalid("body", format!("the body is not valid JSON: {e}")))?;
    let Some(obj) = json.as_object() else {
        return Err(Error::invalid("body", "the body must be a JSON object"));
    };
    let model = match obj.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => return Err(Error::invalid("model", "model is required")),
    };
    let stream = obj.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let output = match endpoint {
        Endpoint::Messages => positive(obj.get("max_tokens"), "max_tokens")?,
        Endpoint::ChatCompletions => {
            let limit = positive(obj.get("max_completion_tokens"), "max_completion_tokens")?
                .or(positive(obj.get("max_tokens"), "max_tokens")?);
            let n = positive(obj.get("n"), "n")?.unwrap_or(1);
            limit.map(|l| l.saturating_mul(n))
        }
        Endpoint::Responses => positive(obj.get("max_output_tokens"), "max_output_tokens")?,
    }
    .unwrap_or(default_output);
    let provider = endpoint.provider();
    let input = bound::input_bound(provider, &model, &json, body.len(), long_context);
    let client_wants_usage = obj
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(ParsedRequest {
        endpoint,
        model,
        stream,
        worst_case: Tokens {
            input: input.tokens,
            output,
            cache_write: 0,
            cache_read: 0,
            cache_write_1h: 0,
        },
        input,
        client_wants_usage,
    })
}

/// The body to send upstream: the client's bytes, except an OpenAI chat stream that did not
/// ask for usage gets `stream_options.include_usage` (Tally needs the usage to charge).
pub fn upstream_body(parsed: &ParsedRequest, body: &[u8]) -> Result<Option<Vec<u8>>> {
    if parsed.endpoint != Endpoint::ChatCompletions || !parsed.stream || parsed.client_wants_usage {
        return Ok(None);
    }
    let mut json: Value = serde_json::from_slice(body)
        .map_err(|e| Error::invalid("body", format!("the body is not valid JSON: {e}")))?;
    let obj = json
        .as_object_mut()
        .ok_or_else(|| Error::invalid("body", "the body must be a JSON object"))?;
    let options = obj
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(o) = options.as_object_mut() {
        o.insert("include_usage".into(), Value::Bool(true));
    }
    serde_json::to_vec(&json)
        .map(Some)
        .map_err(|e| Error::internal(e.to_string()))
}

/// What a settled proxied request is charged: tokens, outcome and, when less than the full
/// answer was seen, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    pub tokens: Tokens,
    pub outcome: Outcome,
    pub reason: Option<&'static str>,
}

/// A 2xx answer that reported no usage, or broke before it could: the provider may have
/// done the work, so the failed-request policy applies to what is known (the typical
/// input estimate, no output).
pub fn unreported(parsed: &ParsedRequest, reason: &'static str) -> Settlement {
    Settlement {
        tokens: Tokens {
            input: parsed.input.typical,
            ..Tokens::default()
        },
        outcome: Outcome::Failed,
        reason: Some(reason),
    }
}

/// How a stream is charged, from what its events told, whether the client stayed, and
/// whether the upstream broke (`broken`: its reason).
///
/// - complete, client there: the reported usage, `succeeded`;
/// - complete, client gone (drained): the reported usage, `cancelled`;
/// - client gone before the end (aborted): the tokens streamed so far, `cancelled`;
/// - anything else (an error event, a cut, silence): the tokens known, `failed`, so the
///   plan's failed-request policy decides.
///
/// The tokens known: Anthropic's input from `message_start` (OpenAI reports input only at
/// the end, so the typical estimate stands in), and at least one output token per delta.
pub fn stream_settlement(
    parsed: &ParsedRequest,
    observed: &usage::StreamObserver,
    client_stayed: bool,
    broken: Option<&'static str>,
) -> Settlement {
    let o = observed;
    let known = Tokens {
        input: if o.tokens.input == 0 && !o.usage_final && parsed.endpoint != Endpoint::Messages {
            parsed.input.typical
        } else {
            o.tokens.input
        },
        output: o.tokens.output.max(o.deltas),
        ..o.tokens
    };
    let settle = |tokens, outcome, reason| Settlement {
        tokens,
        outcome,
        reason,
    };
    match (o.end, client_stayed, broken) {
        (usage::StreamEnd::Complete, true, None) => settle(o.tokens, Outcome::Succeeded, None),
        (usage::StreamEnd::Complete, false, None) => {
            settle(o.tokens, Outcome::Cancelled, Some("client_disconnected"))
        }
        (_, false, None) => settle(known, Outcome::Cancelled, Some("client_disconnected")),
        (end, _, broken) => {
            let reason = match (end, broken) {
                (usage::StreamEnd::Error, _) => "upstream_error_event",
                (_, Some(r)) => r,
                _ => "stream_incomplete",
            };
            settle(known, Outcome::Failed, Some(reason))
        }
    }
}

/// Records a proxied request that was refused before anything was held or sent (402 for
/// the balance, a cap or a key limit; 400 for the request-cost guard), so that no request
/// goes unexplained.
pub async fn record_refused(
    core: &Core,
    mode: Mode,
    customer_id: &str,
    tag: &ProxyTag,
    model: &str,
    reason: &str,
) -> Result<()> {
    let row = metering::proxy_row(
        mode,
        customer_id,
        tag,
        model,
        None,
        crate::core::store::ProxyStatus::Refused,
        Some(reason),
        core.clock.now(),
    );
    let mut tx = core.store.begin().await?;
    tx.insert_proxy_request(&row).await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_limits_per_endpoint_and_the_plan_default() {
        let p = |e, body: &str| parse_request(e, body.as_bytes(), 4096, false);
        let m = p(
            Endpoint::Messages,
            r#"{"model":"claude","max_tokens":100,"messages":[]}"#,
        )
        .unwrap();
        assert_eq!(m.worst_case.output, 100);
        let c = p(
            Endpoint::ChatCompletions,
            r#"{"model":"gpt","max_completion_tokens":50,"n":3,"messages":[]}"#,
        )
        .unwrap();
        assert_eq!(c.worst_case.output, 150);
        let r = p(Endpoint::Responses, r#"{"model":"gpt","input":"hi"}"#).unwrap();
        assert_eq!(r.worst_case.output, 4096);
        assert!(p(Endpoint::Messages, r#"{"max_tokens":1}"#).is_err());
        assert!(p(Endpoint::Messages, r#"{"model":"c","max_tokens":-1}"#).is_err());
        assert!(p(Endpoint::Messages, "not json").is_err());
    }

    #[test]
    fn streams_are_charged_by_how_they_ended() {
        let body = br#"{"model":"gpt","stream":true,"messages":[{"role":"user","content":"hello there"}]}"#;
        let parsed = parse_request(Endpoint::ChatCompletions, body, 10, false).unwrap();
        let mut o = usage::StreamObserver::new(Endpoint::ChatCompletions, false);
        o.feed(b"data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n");
        // Cut before the usage: typical input, one token a delta, failed.
        let cut = stream_settlement(&parsed, &o, true, Some("stream_broken"));
        assert_eq!(cut.outcome, Outcome::Failed);
        assert_eq!(cut.reason, Some("stream_broken"));
        assert_eq!(
            (cut.tokens.input, cut.tokens.output),
            (parsed.input.typical, 1)
        );
        let aborted = stream_settlement(&parsed, &o, false, None);
        assert_eq!(aborted.outcome, Outcome::Cancelled);
        o.feed(b"data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\n");
        let done = stream_settlement(&parsed, &o, true, None);
        assert_eq!((done.outcome, done.reason), (Outcome::Succeeded, None));
        assert_eq!((done.tokens.input, done.tokens.output), (7, 3));
        let drained = stream_settlement(&parsed, &o, false, None);
        assert_eq!(drained.outcome, Outcome::Cancelled);
        assert_eq!(drained.tokens.output, 3);
    }

    #[test]
    fn only_chat_streams_without_usage_are_rewritten() {
        let body = br#"{"model":"gpt","stream":true,"messages":[]}"#;
        let parsed = parse_request(Endpoint::ChatCompletions, body, 10, false).unwrap();
        let sent: Value =
            serde_json::from_slice(&upstream_body(&parsed, body).unwrap().unwrap()).unwrap();
        assert_eq!(sent["stream_options"]["include_usage"], Value::Bool(true));
        let asked = br#"{"model":"gpt","stream":true,"stream_options":{"include_usage":true}}"#;
        let parsed = parse_request(Endpoint::ChatCompletions, asked, 10, false).unwrap();
        assert!(parsed.client_wants_usage);
        assert_eq!(upstream_body(&parsed, asked).unwrap(), None);
        let plain = br#"{"model":"gpt","messages":[]}"#;
        let parsed = parse_request(Endpoint::ChatCompletions, plain, 10, false).unwrap();
        assert_eq!(upstream_body(&parsed, plain).unwrap(), None);
    }
}
