//! The simulated provider: answers the Anthropic Messages and OpenAI Chat Completions and
//! Responses APIs in their real shapes (JSON and server-sent events), with deterministic
//! text that says it is simulated and a realistic usage. Test mode uses it when no provider
//! key is configured, so the whole proxy path (a real HTTP call on loopback) runs on a
//! fresh machine; the tests run it on its own port as the provider imitation.
//!
//! A directive in the request's text scripts what a real provider sometimes does:
//! `[sim status=429 retry_after=7]` answers that error; `[sim delay_ms=2000]` waits before
//! the headers; `[sim break_after=3]` drops the connection after three deltas;
//! `[sim slow_ms=100]` waits between chunks; `[sim words=40]` sets the answer's length;
//! `[sim cache_read=100 cache_write=50 cache_write_1h=20]` reports cache tokens.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Query;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use app::core::proxy::Endpoint;

/// What the simulator did, for tests that check the upstream side.
#[derive(Debug, Default)]
pub struct SimStats {
    pub requests: AtomicU64,
    /// Streams sent to their end.
    pub completed: AtomicU64,
    /// Streams whose reader went away before the end.
    pub abandoned: AtomicU64,
    /// The last API key seen (tests check the client's key is not forwarded).
    pub last_key: std::sync::Mutex<Option<String>>,
    /// Tokens served per (provider, model, UTC day): what the usage reports answer.
    pub served:
        std::sync::Mutex<std::collections::BTreeMap<(&'static str, String, String), Served>>,
}

/// Tokens served on one day for one model.
#[derive(Clone, Copy, Debug, Default)]
pub struct Served {
    pub requests: u64,
    /// Input not read from nor written to a cache.
    pub uncached: u64,
    pub output: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub cache_read: u64,
}

pub fn router(stats: Arc<SimStats>) -> Router {
    Router::new()
        .route(
            "/anthropic/v1/messages",
            post(|s, h, b| answer(s, Endpoint::Messages, h, b)),
        )
        .route("/anthropic/v1/messages/count_tokens", post(count_tokens))
        .route(
            "/openai/v1/chat/completions",
            post(|s, h, b| answer(s, Endpoint::ChatCompletions, h, b)),
        )
        .route(
            "/openai/v1/responses",
            post(|s, h, b| answer(s, Endpoint::Responses, h, b)),
        )
        .route(
            "/anthropic/v1/organizations/usage_report/messages",
            get(|s, q| usage_report(s, "anthropic", q)),
        )
        .route(
            "/openai/v1/organization/usage/completions",
            get(|s, q| usage_report(s, "openai", q)),
        )
        .with_state(stats)
}

/// The directive's settings (`[sim k=v …]`) found anywhere in the body.
fn directives(body: &str) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    if let Some(start) = body.find("[sim ") {
        let rest = &body[start + 5..];
        let end = rest.find(']').unwrap_or(rest.len());
        for pair in rest[..end].split_whitespace() {
            if let Some((k, v)) = pair.split_once('=') {
                if let Ok(v) = v.parse() {
                    out.insert(k.to_string(), v);
                }
            }
        }
    }
    out
}

fn text_of(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push(' ');
        }
        Value::Array(a) => a.iter().for_each(|x| text_of(x, out)),
        Value::Object(o) => {
            // The text a model reads: text fields, and whatever nests below.
            const TEXT: [&str; 5] = ["text", "content", "input", "system", "instructions"];
            for (k, x) in o {
                if TEXT.contains(&k.as_str()) || x.is_array() || x.is_object() {
                    text_of(x, out);
                }
            }
        }
        _ => {}
    }
}

/// About four bytes of text a token, as a real tokenizer averages on English.
fn prompt_tokens(request: &Value) -> u64 {
    let mut text = String::new();
    for k in ["system", "messages", "input", "instructions"] {
        if let Some(v) = request.get(k) {
            text_of(v, &mut text);
        }
    }
    (text.len() as u64).div_ceil(4).max(1) + 8
}

fn reply_words(n: u64) -> Vec<String> {
    let base = "This answer comes from Tally's simulated provider: no provider key is configured \
                in test mode, so no model was called and the text is always the same.";
    base.split(' ')
        .cycle()
        .take(usize::try_from(n).unwrap_or(0))
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                w.to_string()
            } else {
                format!(" {w}")
            }
        })
        .collect()
}

fn error_body(endpoint: Endpoint, status: u16) -> Value {
    let message = format!("simulated error {status}");
    match endpoint {
        Endpoint::Messages => {
            let kind = match status {
                429 => "rate_limit_error",
                529 => "overloaded_error",
                400 => "invalid_request_error",
                401 => "authentication_error",
                _ => "api_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_sim"})
        }
        _ => {
            let kind = match status {
                429 => "rate_limit_exceeded",
                400 => "invalid_request_error",
                _ => "server_error",
            };
            json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
        }
    }
}

static SEQUENCE: AtomicU64 = AtomicU64::new(1);

async fn count_tokens(State(stats): State<Arc<SimStats>>, body: Bytes) -> Response {
    stats.requests.fetch_add(1, Ordering::Relaxed);
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    axum::Json(json!({"input_tokens": prompt_tokens(&request)})).into_response()
}

async fn answer(
    State(stats): State<Arc<SimStats>>,
    endpoint: Endpoint,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    stats.requests.fetch_add(1, Ordering::Relaxed);
    let key = headers
        .get("x-api-key")
        .or(headers.get(header::AUTHORIZATION))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Ok(mut last) = stats.last_key.lock() {
        *last = key;
    }
    let text = String::from_utf8_lossy(&body);
    let d = directives(&text);
    if let Some(ms) = d.get("delay_ms") {
        tokio::time::sleep(Duration::from_millis(*ms)).await;
    }
    if let Some(status) = d.get("status").and_then(|s| u16::try_from(*s).ok()) {
        let mut r = (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(error_body(endpoint, status)),
        )
            .into_response();
        if let Some(secs) = d.get("retry_after") {
            r.headers_mut().insert(header::RETRY_AFTER, (*secs).into());
        }
        return r;
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = request["model"].as_str().unwrap_or("unknown").to_string();
    let stream = request["stream"].as_bool().unwrap_or(false);
    let limit = request["max_tokens"]
        .as_u64()
        .or(request["max_completion_tokens"].as_u64())
        .or(request["max_output_tokens"].as_u64())
        .unwrap_or(u64::MAX);
    let words = reply_words(d.get("words").copied().unwrap_or(24).min(limit));
    let usage = Usage {
        prompt: prompt_tokens(&request),
        output: words.len() as u64,
        cache_read: d.get("cache_read").copied().unwrap_or(0),
        cache_write_5m: d.get("cache_write").copied().unwrap_or(0),
        cache_write_1h: d.get("cache_write_1h").copied().unwrap_or(0),
    };
    if let Ok(mut served) = stats.served.lock() {
        let provider = match endpoint {
            Endpoint::Messages => "anthropic",
            _ => "openai",
        };
        let day = app::core::clock::Clock::now(&app::core::clock::SystemClock).day_key();
        let e = served.entry((provider, model.clone(), day)).or_default();
        e.requests += 1;
        e.uncached += usage.prompt;
        e.output += usage.output;
        e.cache_write_5m += usage.cache_write_5m;
        e.cache_write_1h += usage.cache_write_1h;
        e.cache_read += usage.cache_read;
    }
    let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let shape = Shape {
        endpoint,
        model,
        n,
        usage,
    };
    if !stream {
        return axum::Json(shape.whole(&words.concat())).into_response();
    }
    let include_usage = request["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let events = shape.events(&words, include_usage);
    let break_after = d.get("break_after").copied();
    let slow = Duration::from_millis(d.get("slow_ms").copied().unwrap_or(0));
    let guard = Finished {
        stats: stats.clone(),
        done: false,
    };
    let body = futures::stream::unfold(
        (events.into_iter(), 0u64, guard),
        move |(mut it, deltas, mut guard)| async move {
            if break_after.is_some_and(|b| deltas >= b) {
                // Cut the connection mid-stream: an error ends the body without its end.
                return Some((
                    Err(std::io::Error::other("simulated break")),
                    (it, deltas, guard),
                ));
            }
            let Some((event, is_delta)) = it.next() else {
                guard.done = true;
                drop(guard);
                return None;
            };
            if !slow.is_zero() {
                tokio::time::sleep(slow).await;
            }
            Some((
                Ok::<_, std::io::Error>(Bytes::from(event)),
                (it, deltas + u64::from(is_delta), guard),
            ))
        },
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The provider's usage report in its own shape: one day's bucket per page, so clients
/// must follow `next_page`.
async fn usage_report(
    State(stats): State<Arc<SimStats>>,
    provider: &'static str,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let served = stats.served.lock().map(|s| s.clone()).unwrap_or_default();
    let mut days: Vec<String> = served
        .keys()
        .filter(|(p, _, _)| *p == provider)
        .map(|(_, _, d)| d.clone())
        .collect();
    days.sort();
    days.dedup();
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let Some(day) = days.get(page) else {
        return axum::Json(
            json!({"object": "page", "data": [], "has_more": false, "next_page": null}),
        )
        .into_response();
    };
    let start = app::core::clock::Timestamp::parse_rfc3339(&format!("{day}T00:00:00Z"))
        .map(|t| t.micros() / 1_000_000)
        .unwrap_or(0);
    let lines = served
        .iter()
        .filter(|((p, _, d), _)| *p == provider && d == day);
    let more = page + 1 < days.len();
    let next = more.then(|| (page + 1).to_string());
    let body = if provider == "anthropic" {
        let results: Vec<Value> = lines
            .map(|((_, model, _), s)| json!({
                "uncached_input_tokens": s.uncached,
                "cache_creation": {"ephemeral_1h_input_tokens": s.cache_write_1h, "ephemeral_5m_input_tokens": s.cache_write_5m},
                "cache_read_input_tokens": s.cache_read, "output_tokens": s.output,
                "server_tool_use": {"web_search_requests": 0}, "api_key_id": null, "workspace_id": null,
                "model": model, "service_tier": null, "context_window": null,
            }))
            .collect();
        json!({"data": [{"starting_at": format!("{day}T00:00:00Z"), "ending_at": null, "results": results}],
            "has_more": more, "next_page": next})
    } else {
        let results: Vec<Value> = lines
            .map(|((_, model, _), s)| {
                json!({
                    "object": "organization.usage.completions.result",
                    "input_tokens": s.uncached + s.cache_read + s.cache_write_5m,
                    "input_cached_tokens": s.cache_read, "output_tokens": s.output,
                    "num_model_requests": s.requests, "model": model,
                    "project_id": null, "user_id": null, "api_key_id": null, "batch": null,
                })
            })
            .collect();
        json!({"object": "page", "data": [{"object": "bucket", "start_time": start, "end_time": start + 86_400, "results": results}],
            "has_more": more, "next_page": next})
    };
    axum::Json(body).into_response()
}

/// Counts a stream as completed or abandoned when its body goes away.
struct Finished {
    stats: Arc<SimStats>,
    done: bool,
}

impl Drop for Finished {
    fn drop(&mut self) {
        let counter = if self.done {
            &self.stats.completed
        } else {
            &self.stats.abandoned
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Clone, Copy)]
struct Usage {
    /// All prompt tokens, cache reads and writes included (OpenAI's count).
    prompt: u64,
    output: u64,
    cache_read: u64,
    cache_write_5m: u64,
    cache_write_1h: u64,
}

struct Shape {
    endpoint: Endpoint,
    model: String,
    n: u64,
    usage: Usage,
}

impl Shape {
    fn id(&self) -> String {
        match self.endpoint {
            Endpoint::Messages => format!("msg_sim{:016}", self.n),
            Endpoint::ChatCompletions => format!("chatcmpl-sim{:016}", self.n),
            Endpoint::Responses => format!("resp_sim{:016}", self.n),
        }
    }

    fn anthropic_usage(&self) -> Value {
        let u = self.usage;
        json!({
            "input_tokens": u.prompt,
            "cache_creation_input_tokens": u.cache_write_5m + u.cache_write_1h,
            "cache_read_input_tokens": u.cache_read,
            "cache_creation": {"ephemeral_5m_input_tokens": u.cache_write_5m, "ephemeral_1h_input_tokens": u.cache_write_1h},
            "output_tokens": u.output,
            "service_tier": "standard",
        })
    }

    fn chat_usage(&self) -> Value {
        let u = self.usage;
        let prompt = u.prompt + u.cache_read + u.cache_write_5m;
        json!({
            "prompt_tokens": prompt,
            "completion_tokens": u.output,
            "total_tokens": prompt + u.output,
            "prompt_tokens_details": {"cached_tokens": u.cache_read, "audio_tokens": 0, "cache_write_tokens": u.cache_write_5m},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        })
    }

    fn responses_usage(&self) -> Value {
        let u = self.usage;
        let input = u.prompt + u.cache_read + u.cache_write_5m;
        json!({
            "input_tokens": input,
            "input_tokens_details": {"cached_tokens": u.cache_read, "cache_write_tokens": u.cache_write_5m},
            "output_tokens": u.output,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input + u.output,
        })
    }

    fn response_object(&self, text: &str, status: &str, usage: Value) -> Value {
        json!({
            "id": self.id(), "object": "response", "created_at": 1_767_225_600, "status": status,
            "error": null, "incomplete_details": null, "model": self.model,
            "output": if text.is_empty() { json!([]) } else { json!([{"type": "message", "id": "msg_sim", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}]) },
            "usage": usage,
        })
    }

    fn whole(&self, text: &str) -> Value {
        match self.endpoint {
            Endpoint::Messages => json!({
                "id": self.id(), "type": "message", "role": "assistant", "model": self.model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": self.anthropic_usage(),
            }),
            Endpoint::ChatCompletions => json!({
                "id": self.id(), "object": "chat.completion", "created": 1_767_225_600, "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null},
                    "logprobs": null, "finish_reason": "stop"}],
                "usage": self.chat_usage(),
                "service_tier": "default", "system_fingerprint": "fp_sim",
            }),
            Endpoint::Responses => self.response_object(text, "completed", self.responses_usage()),
        }
    }

    /// The stream's events, each with whether it carries a content delta.
    fn events(&self, words: &[String], include_usage: bool) -> Vec<(String, bool)> {
        let named = |name: &str, data: Value| (format!("event: {name}\ndata: {data}\n\n"), false);
        let mut out = Vec::new();
        match self.endpoint {
            Endpoint::Messages => {
                let mut start_usage = self.anthropic_usage();
                start_usage["output_tokens"] = json!(1);
                out.push(named("message_start", json!({"type": "message_start", "message": {
                    "id": self.id(), "type": "message", "role": "assistant", "model": self.model,
                    "content": [], "stop_reason": null, "stop_sequence": null, "usage": start_usage}})));
                out.push(named(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
                ));
                out.push(named("ping", json!({"type": "ping"})));
                for w in words {
                    let (e, _) = named(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": w}}),
                    );
                    out.push((e, true));
                }
                out.push(named(
                    "content_block_stop",
                    json!({"type": "content_block_stop", "index": 0}),
                ));
                let u = self.usage;
                out.push(named("message_delta", json!({"type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                    "usage": {"input_tokens": u.prompt, "cache_creation_input_tokens": u.cache_write_5m + u.cache_write_1h,
                        "cache_read_input_tokens": u.cache_read, "output_tokens": u.output}})));
                out.push(named("message_stop", json!({"type": "message_stop"})));
            }
            Endpoint::ChatCompletions => {
                let chunk = |delta: Value, finish: Value| {
                    let mut c = json!({"id": self.id(), "object": "chat.completion.chunk", "created": 1_767_225_600,
                        "model": self.model, "system_fingerprint": "fp_sim",
                        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
                    if include_usage {
                        c["usage"] = Value::Null;
                    }
                    format!("data: {c}\n\n")
                };
                out.push((
                    chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                    false,
                ));
                for w in words {
                    out.push((chunk(json!({"content": w}), Value::Null), true));
                }
                out.push((chunk(json!({}), json!("stop")), false));
                if include_usage {
                    let c = json!({"id": self.id(), "object": "chat.completion.chunk", "created": 1_767_225_600,
                        "model": self.model, "system_fingerprint": "fp_sim", "choices": [], "usage": self.chat_usage()});
                    out.push((format!("data: {c}\n\n"), false));
                }
                out.push(("data: [DONE]\n\n".into(), false));
            }
            Endpoint::Responses => {
                let mut seq = 0u64;
                let mut ev = |name: &str, mut data: Value| {
                    data["type"] = json!(name);
                    data["sequence_number"] = json!(seq);
                    seq += 1;
                    format!("event: {name}\ndata: {data}\n\n")
                };
                out.push((
                    ev(
                        "response.created",
                        json!({"response": self.response_object("", "in_progress", Value::Null)}),
                    ),
                    false,
                ));
                out.push((
                    ev(
                        "response.in_progress",
                        json!({"response": self.response_object("", "in_progress", Value::Null)}),
                    ),
                    false,
                ));
                out.push((ev("response.output_item.added", json!({"output_index": 0,
                    "item": {"id": "msg_sim", "type": "message", "status": "in_progress", "role": "assistant", "content": []}})), false));
                out.push((
                    ev(
                        "response.content_part.added",
                        json!({"item_id": "msg_sim", "output_index": 0, "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": []}}),
                    ),
                    false,
                ));
                for w in words {
                    out.push((ev("response.output_text.delta", json!({"item_id": "msg_sim", "output_index": 0, "content_index": 0, "delta": w, "logprobs": []})), true));
                }
                let text = words.concat();
                out.push((ev("response.output_text.done", json!({"item_id": "msg_sim", "output_index": 0, "content_index": 0, "text": text, "logprobs": []})), false));
                out.push((
                    ev(
                        "response.content_part.done",
                        json!({"item_id": "msg_sim", "output_index": 0, "content_index": 0,
                    "part": {"type": "output_text", "text": text, "annotations": []}}),
                    ),
                    false,
                ));
                out.push((ev("response.output_item.done", json!({"output_index": 0,
                    "item": {"id": "msg_sim", "type": "message", "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": text, "annotations": []}]}})), false));
                out.push((ev("response.completed", json!({"response": self.response_object(&text, "completed", self.responses_usage())})), false));
            }
        }
        out
    }
}
