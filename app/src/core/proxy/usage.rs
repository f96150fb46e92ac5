//! What a provider's answer reports: its id and usage, from a whole JSON body or from a
//! server-sent-event stream read as it passes (never rewritten, but for the one OpenAI usage
//! chunk the client did not ask for).
//!
//! Token mapping (the contract's four disjoint classes): Anthropic reports them disjoint
//! already; OpenAI's `prompt_tokens` / `input_tokens` include `cached_tokens` (cache reads)
//! and `cache_write_tokens`, which are taken out of `input`; reasoning tokens are part of
//! the output count and priced as output.

use serde_json::Value;

use super::Endpoint;
use crate::core::pricing::Tokens;

/// Usage as the provider reported it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reported {
    /// `msg_…`, `chatcmpl-…` or `resp_…`.
    pub id: Option<String>,
    pub tokens: Tokens,
}

fn u(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return 0,
        }
    }
    cur.as_u64().unwrap_or(0)
}

/// Anthropic's `usage` object.
fn anthropic_tokens(usage: &Value) -> Tokens {
    Tokens {
        input: u(usage, &["input_tokens"]),
        output: u(usage, &["output_tokens"]),
        cache_write: u(usage, &["cache_creation_input_tokens"]),
        cache_read: u(usage, &["cache_read_input_tokens"]),
        // The one-hour part of the cache writes (`cache_creation` splits them by TTL).
        cache_write_1h: u(usage, &["cache_creation", "ephemeral_1h_input_tokens"])
            .min(u(usage, &["cache_creation_input_tokens"])),
    }
}

/// OpenAI's chat `usage` (prompt/completion) or responses `usage` (input/output).
fn openai_tokens(usage: &Value) -> Tokens {
    let (prompt, completion, details) = if usage.get("prompt_tokens").is_some() {
        (
            u(usage, &["prompt_tokens"]),
            u(usage, &["completion_tokens"]),
            "prompt_tokens_details",
        )
    } else {
        (
            u(usage, &["input_tokens"]),
            u(usage, &["output_tokens"]),
            "input_tokens_details",
        )
    };
    let cache_read = u(usage, &[details, "cached_tokens"]).min(prompt);
    let cache_write = u(usage, &[details, "cache_write_tokens"]).min(prompt - cache_read);
    Tokens {
        input: prompt - cache_read - cache_write,
        output: completion,
        cache_write,
        cache_read,
        cache_write_1h: 0,
    }
}

/// The usage of a whole (not streamed) successful answer, if it reports one.
pub fn from_body(endpoint: Endpoint, body: &[u8]) -> Option<Reported> {
    let json: Value = serde_json::from_slice(body).ok()?;
    let usage = json.get("usage").filter(|u| u.is_object())?;
    let tokens = match endpoint {
        Endpoint::Messages => anthropic_tokens(usage),
        Endpoint::ChatCompletions | Endpoint::Responses => openai_tokens(usage),
    };
    Some(Reported {
        id: json.get("id").and_then(Value::as_str).map(str::to_string),
        tokens,
    })
}

/// How a stream ended, as far as its events tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// Still going (or cut off without a final event).
    Open,
    /// The provider's final event arrived with the usage.
    Complete,
    /// The provider sent an error event.
    Error,
}

/// Reads an SSE stream as it passes. Feed it every chunk; it returns the bytes to pass on.
#[derive(Debug)]
pub struct StreamObserver {
    endpoint: Endpoint,
    /// Drop the usage-only chunk (the client did not ask for it; Tally did).
    hide_usage_chunk: bool,
    /// Bytes of an event not yet complete.
    pending: Vec<u8>,
    pub id: Option<String>,
    /// Usage known so far (Anthropic: from message_start, overwritten by message_delta).
    pub tokens: Tokens,
    /// Whether the provider reported the final output count.
    pub usage_final: bool,
    /// Content deltas seen: each carries at least one output token, a floor for a stream
    /// cut before the provider reported its output.
    pub deltas: u64,
    pub end: StreamEnd,
}

impl StreamObserver {
    pub fn new(endpoint: Endpoint, hide_usage_chunk: bool) -> StreamObserver {
        StreamObserver {
            endpoint,
            hide_usage_chunk,
            pending: Vec::new(),
            id: None,
            tokens: Tokens::default(),
            usage_final: false,
            deltas: 0,
            end: StreamEnd::Open,
        }
    }

    /// Takes one chunk from upstream; returns what the client gets. Without a chunk to hide
    /// that is the chunk itself, at once; with one, whole events (held until complete).
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(chunk);
        let mut out = if self.hide_usage_chunk {
            Vec::new()
        } else {
            chunk.to_vec()
        };
        while let Some((end, sep)) = event_end(&self.pending) {
            let event: Vec<u8> = self.pending.drain(..end + sep).collect();
            let keep = self.observe(&event[..end]);
            if self.hide_usage_chunk && keep {
                out.extend_from_slice(&event);
            }
        }
        out
    }

    /// The rest of an event that never completed (passed on as it was).
    pub fn finish(&mut self) -> Vec<u8> {
        let rest = std::mem::take(&mut self.pending);
        if self.hide_usage_chunk {
            rest
        } else {
            Vec::new()
        }
    }

    /// Reads one event; false when it is the usage chunk to hide.
    fn observe(&mut self, event: &[u8]) -> bool {
        let text = String::from_utf8_lossy(event);
        let mut data = String::new();
        for line in text.lines() {
            if let Some(d) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(d.strip_prefix(' ').unwrap_or(d));
            }
        }
        if data.is_empty() || data == "[DONE]" {
            return true;
        }
        let Ok(json) = serde_json::from_str::<Value>(&data) else {
            return true;
        };
        let kind = json.get("type").and_then(Value::as_str).unwrap_or_default();
        match self.endpoint {
            Endpoint::Messages => match kind {
                "message_start" => {
                    let message = &json["message"];
                    self.id = message
                        .get("id")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    self.tokens = anthropic_tokens(&message["usage"]);
                }
                "content_block_delta" => self.deltas += 1,
                "message_delta" => {
                    // Cumulative counts: each field present overwrites the earlier one.
                    let usage = &json["usage"];
                    for (field, slot) in [
                        ("input_tokens", &mut self.tokens.input),
                        ("output_tokens", &mut self.tokens.output),
                        ("cache_creation_input_tokens", &mut self.tokens.cache_write),
                        ("cache_read_input_tokens", &mut self.tokens.cache_read),
                    ] {
                        if let Some(n) = usage.get(field).and_then(Value::as_u64) {
                            *slot = n;
                        }
                    }
                    // The split by TTL comes only with message_start.
                    self.tokens.cache_write_1h =
                        self.tokens.cache_write_1h.min(self.tokens.cache_write);
                    self.usage_final = usage.get("output_tokens").is_some();
                }
                "message_stop" if self.usage_final => self.end = StreamEnd::Complete,
                "error" => self.end = StreamEnd::Error,
                _ => {}
            },
            Endpoint::ChatCompletions => {
                if json.get("error").is_some() {
                    self.end = StreamEnd::Error;
                    return true;
                }
                if self.id.is_none() {
                    self.id = json.get("id").and_then(Value::as_str).map(str::to_string);
                }
                let choices = json.get("choices").and_then(Value::as_array);
                if choices.is_some_and(|c| !c.is_empty()) {
                    self.deltas += 1;
                }
                if let Some(usage) = json.get("usage").filter(|u| u.is_object()) {
                    self.tokens = openai_tokens(usage);
                    self.usage_final = true;
                    self.end = StreamEnd::Complete;
                    if choices.is_none_or(|c| c.is_empty()) && self.hide_usage_chunk {
                        return false;
                    }
                }
            }
            Endpoint::Responses => match kind {
                "response.created" => {
                    self.id = json["response"]
                        .get("id")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                }
                k if k.ends_with(".delta") => self.deltas += 1,
                "response.completed" | "response.incomplete" | "response.failed" => {
                    if let Some(usage) = json["response"].get("usage").filter(|u| u.is_object()) {
                        self.tokens = openai_tokens(usage);
                        self.usage_final = true;
                    }
                    self.end = if kind == "response.failed" {
                        StreamEnd::Error
                    } else {
                        StreamEnd::Complete
                    };
                }
                "error" => self.end = StreamEnd::Error,
                _ => {}
            },
        }
        true
    }
}

/// The end of the first complete event in `buf` and the length of its separator.
fn event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' && buf[i + 1] == b'\n' {
            return Some((i, 2));
        }
        if buf[i] == b'\r' && buf.get(i + 1..i + 4) == Some(b"\n\r\n") {
            return Some((i, 4));
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANTHROPIC: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":7,\"output_tokens\":1}}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n\
event: ping\ndata: {\"type\": \"ping\"}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":30}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    #[test]
    fn anthropic_stream_usage_split_anywhere_passes_through_unchanged() {
        for split in [1, 7, 50, 333] {
            let mut o = StreamObserver::new(Endpoint::Messages, false);
            let mut out = Vec::new();
            for chunk in ANTHROPIC.as_bytes().chunks(split) {
                out.extend(o.feed(chunk));
            }
            out.extend(o.finish());
            assert_eq!(out, ANTHROPIC.as_bytes());
            assert_eq!(o.id.as_deref(), Some("msg_1"));
            assert_eq!(
                o.tokens,
                Tokens {
                    input: 12,
                    output: 30,
                    cache_write: 100,
                    cache_read: 7,
                    cache_write_1h: 0
                }
            );
            assert_eq!(o.end, StreamEnd::Complete);
            assert_eq!(o.deltas, 1);
        }
    }

    const CHAT: &str = "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n\
data: {\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":20,\"prompt_tokens_details\":{\"cached_tokens\":60,\"cache_write_tokens\":10},\"completion_tokens_details\":{\"reasoning_tokens\":15}}}\n\n\
data: [DONE]\n\n";

    #[test]
    fn the_usage_chunk_tally_asked_for_is_hidden_and_mapped() {
        let mut o = StreamObserver::new(Endpoint::ChatCompletions, true);
        let mut out = Vec::new();
        for chunk in CHAT.as_bytes().chunks(5) {
            out.extend(o.feed(chunk));
        }
        out.extend(o.finish());
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("prompt_tokens"), "{out}");
        assert!(out.contains("\"Hi\"") && out.ends_with("data: [DONE]\n\n"));
        assert_eq!(
            o.tokens,
            Tokens {
                input: 30,
                output: 20,
                cache_write: 10,
                cache_read: 60,
                cache_write_1h: 0
            }
        );
        assert_eq!(o.id.as_deref(), Some("chatcmpl-1"));

        let mut asked = StreamObserver::new(Endpoint::ChatCompletions, false);
        let out = asked.feed(CHAT.as_bytes());
        assert_eq!(out, CHAT.as_bytes());
        assert_eq!(asked.end, StreamEnd::Complete);
    }

    #[test]
    fn responses_usage_comes_with_the_final_event() {
        let s = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"usage\":null}}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n\
event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"usage\":{\"input_tokens\":9,\"input_tokens_details\":{\"cached_tokens\":4},\"output_tokens\":2,\"output_tokens_details\":{\"reasoning_tokens\":1}}}}\n\n";
        let mut o = StreamObserver::new(Endpoint::Responses, false);
        o.feed(s.as_bytes());
        assert_eq!(o.id.as_deref(), Some("resp_1"));
        assert_eq!(
            o.tokens,
            Tokens {
                input: 5,
                output: 2,
                cache_write: 0,
                cache_read: 4,
                cache_write_1h: 0
            }
        );
        assert_eq!(o.end, StreamEnd::Complete);
    }

    #[test]
    fn anthropic_one_hour_cache_writes_are_split_out() {
        let r = from_body(
            Endpoint::Messages,
            br#"{"id":"msg_1","usage":{"input_tokens":1,"output_tokens":2,"cache_creation_input_tokens":300,
                "cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":200}}}"#,
        )
        .unwrap();
        assert_eq!(r.tokens.cache_write, 300);
        assert_eq!(r.tokens.cache_write_1h, 200);
    }

    #[test]
    fn whole_bodies() {
        let r = from_body(
            Endpoint::Messages,
            br#"{"id":"msg_9","usage":{"input_tokens":3,"output_tokens":4,"cache_read_input_tokens":5}}"#,
        )
        .unwrap();
        assert_eq!(r.id.as_deref(), Some("msg_9"));
        assert_eq!(
            r.tokens,
            Tokens {
                input: 3,
                output: 4,
                cache_write: 0,
                cache_read: 5,
                cache_write_1h: 0
            }
        );
        let r = from_body(
            Endpoint::ChatCompletions,
            br#"{"id":"chatcmpl-9","usage":{"prompt_tokens":10,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4}}}"#,
        )
        .unwrap();
        assert_eq!(
            r.tokens,
            Tokens {
                input: 6,
                output: 2,
                cache_write: 0,
                cache_read: 4,
                cache_write_1h: 0
            }
        );
        assert_eq!(from_body(Endpoint::Responses, b"{}"), None);
    }
}
