//! An upper bound of a request's input tokens that never underestimates, computed from the
//! request body alone (no tokenizer, no network).
//!
//! Why it holds:
//! - **Text.** Both providers' tokenizers are byte-level BPE: every token stands for at
//!   least one byte of the UTF-8 text it encodes, so a text never has more tokens than
//!   bytes (one-byte tokens, CJK at three bytes a character and emoji at four are all at
//!   most one token per byte). The body's JSON is at least as long as its strings (escaping
//!   only lengthens them), so the body's length, less the media payloads counted below,
//!   bounds every text the provider renders from it: messages, system, tool definitions.
//!   The JSON around each message (`{"role":"user","content":""}`, 28 bytes) is more than
//!   the few tokens a provider adds per message; [`OVERHEAD_TOKENS`] covers the fixed
//!   prompt a provider adds for tool use (Anthropic's is 346 tokens at most).
//! - **Images** are bounded by their pixels, not their base64 size: the providers resize
//!   large images and publish the cost of what remains ([`image_tokens`]). An image whose
//!   header cannot be read, or one given by URL, counts as the largest image possible.
//! - **Documents** (PDF) and **server tools** (web search, web fetch, code execution, whose
//!   results the provider adds to the input) have no bound in the request, so they count
//!   as the whole context window ([`context_window`]): a request never holds less than it
//!   can cost, at the price of a larger hold for those requests.

use base64::Engine;
use serde_json::Value;

use super::Provider;

/// Tokens a provider adds to every request (tool-use system prompt, reply priming).
pub const OVERHEAD_TOKENS: u64 = 1_024;

/// Anthropic: an image costs `width × height / 750` tokens after it is scaled to fit the
/// model's long edge: 1568 px (about 1,600 tokens at most) for most models, 2576 px for the
/// newest (Opus 4.7 on). The bound assumes the larger: 2576² / 750.
pub const ANTHROPIC_MAX_IMAGE_TOKENS: u64 = 8_848;

/// The most any single image can cost with OpenAI, over every model's published formula:
/// tiles (85 + 170 per 512 px tile after fitting 2048 px and a 768 px short side, ≤ 8
/// tiles: 1,445 for gpt-4o; gpt-4o-mini's 2,833 + 5,667 a tile: 48,169) or 32 px patches
/// (≤ 1,536 patches × 2.46 for the nano models: 3,779). Models without a published
/// formula are held at this.
pub const OPENAI_MAX_IMAGE_TOKENS: u64 = 48_200;

/// The context window a request can fill at most (documents, server tools).
pub fn context_window(provider: Provider, model: &str, long_context_beta: bool) -> u64 {
    match provider {
        Provider::Anthropic if long_context_beta => 1_000_000,
        Provider::Anthropic => 200_000,
        // GPT-4.1 has the largest published window of OpenAI's chat models.
        Provider::OpenAi if model.starts_with("gpt-4o") => 128_000,
        Provider::OpenAi => 1_047_576,
    }
}

/// The bound, with what it found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputBound {
    pub tokens: u64,
    pub images: u32,
    /// Documents or server tools: the bound includes a whole context window.
    pub unbounded_parts: u32,
    /// A typical estimate (text bytes / 4 plus media), for charging a stream that broke
    /// before the provider reported its input (never used for holds).
    pub typical: u64,
}

/// The input-token bound of a request body.
pub fn input_bound(
    provider: Provider,
    model: &str,
    body: &Value,
    body_len: usize,
    long_context: bool,
) -> InputBound {
    let mut walk = Walk {
        provider,
        model,
        media_bytes: 0,
        media_tokens: 0,
        images: 0,
        unbounded: 0,
    };
    walk.value(body, None);
    let text_bytes = (body_len as u64).saturating_sub(walk.media_bytes);
    let window = context_window(provider, model, long_context);
    let unbounded = u64::from(walk.unbounded) * window;
    InputBound {
        tokens: text_bytes
            .saturating_add(walk.media_tokens)
            .saturating_add(unbounded)
            .saturating_add(OVERHEAD_TOKENS),
        images: walk.images,
        unbounded_parts: walk.unbounded,
        typical: text_bytes / 4 + walk.media_tokens,
    }
}

struct Walk<'a> {
    provider: Provider,
    model: &'a str,
    /// Bytes of base64 payloads taken out of the text count.
    media_bytes: u64,
    media_tokens: u64,
    images: u32,
    unbounded: u32,
}

impl Walk<'_> {
    fn value(&mut self, v: &Value, key: Option<&str>) {
        match v {
            Value::Object(map) => {
                let kind = map.get("type").and_then(Value::as_str).unwrap_or_default();
                // OpenAI responses that continue a stored response or conversation: the
                // earlier turns are added by the provider, unseen here.
                for k in ["previous_response_id", "conversation"] {
                    if map.get(k).is_some_and(|v| !v.is_null()) && key.is_none() {
                        self.unbounded += 1;
                    }
                }
                match kind {
                    // Anthropic: {"type":"image","source":{"type":"base64","data":…}|{"type":"url"}}
                    "image" if self.provider == Provider::Anthropic => {
                        self.image(map.get("source").and_then(|s| s.get("data")));
                        return;
                    }
                    // Anthropic documents: a PDF (base64 or URL) has no bound in the request.
                    "document" => {
                        let source = map.get("source");
                        let text = source
                            .and_then(|s| s.get("type"))
                            .and_then(Value::as_str)
                            .is_some_and(|t| t == "text" || t == "content");
                        if !text {
                            if let Some(Value::String(data)) = source.and_then(|s| s.get("data")) {
                                self.media_bytes += data.len() as u64;
                            }
                            self.unbounded += 1;
                            return;
                        }
                    }
                    // OpenAI chat: {"type":"image_url","image_url":{"url":"data:…;base64,…"}}
                    "image_url" => {
                        let url = map
                            .get("image_url")
                            .and_then(|u| u.get("url").or(Some(u)))
                            .and_then(Value::as_str);
                        self.image_url(url);
                        return;
                    }
                    // OpenAI responses: {"type":"input_image","image_url":"data:…"}
                    "input_image" => {
                        self.image_url(map.get("image_url").and_then(Value::as_str));
                        return;
                    }
                    // OpenAI files (PDF) in chat or responses.
                    "file" | "input_file" => {
                        let data = map
                            .get("file")
                            .and_then(|f| f.get("file_data"))
                            .or_else(|| map.get("file_data"));
                        if let Some(Value::String(d)) = data {
                            self.media_bytes += d.len() as u64;
                        }
                        self.unbounded += 1;
                        return;
                    }
                    k if self.is_server_tool(k) => self.unbounded += 1,
                    _ => {}
                }
                for (k, child) in map {
                    self.value(child, Some(k));
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.value(item, key);
                }
            }
            _ => {}
        }
    }

    fn is_server_tool(&self, kind: &str) -> bool {
        [
            "web_search",
            "web_fetch",
            "code_execution",
            "file_search",
            "computer_use_preview",
        ]
        .iter()
        .any(|t| kind.starts_with(t))
    }

    fn max_image(&self) -> u64 {
        match self.provider {
            Provider::Anthropic => ANTHROPIC_MAX_IMAGE_TOKENS,
            Provider::OpenAi => OPENAI_MAX_IMAGE_TOKENS,
        }
    }

    fn image(&mut self, data: Option<&Value>) {
        self.images += 1;
        let tokens = match data {
            Some(Value::String(b64)) => {
                self.media_bytes += b64.len() as u64;
                match dimensions_of_base64(b64) {
                    Some((w, h)) => image_tokens(self.provider, self.model, w, h),
                    None => self.max_image(),
                }
            }
            _ => self.max_image(),
        };
        self.media_tokens += tokens;
    }

    fn image_url(&mut self, url: Option<&str>) {
        match url.and_then(|u| u.strip_prefix("data:")) {
            Some(rest) => {
                let b64 = rest.split_once(',').map(|(_, d)| d).unwrap_or("");
                self.image(Some(&Value::String(b64.to_string())));
                // The prefix stays counted as text; only the payload was taken out.
            }
            None => self.image(None),
        }
    }
}

/// Tokens one `w × h` image costs at most, by the provider's published formula.
pub fn image_tokens(provider: Provider, model: &str, w: u32, h: u32) -> u64 {
    let (w, h) = (u64::from(w.max(1)), u64::from(h.max(1)));
    match provider {
        // w × h / 750 after fitting the model's long edge (1568 px, 2576 px for the newest
        // models; the larger is assumed), never more than the largest image.
        Provider::Anthropic => {
            let (w, h) = fit(w, h, 2576);
            w.saturating_mul(h)
                .div_ceil(750)
                .min(ANTHROPIC_MAX_IMAGE_TOKENS)
        }
        Provider::OpenAi => {
            let tiles = || {
                let (w, h) = fit(w, h, 2048);
                let (w, h) = if w.min(h) > 768 {
                    let s = w.min(h);
                    ((w * 768).div_ceil(s), (h * 768).div_ceil(s))
                } else {
                    (w, h)
                };
                w.div_ceil(512) * h.div_ceil(512)
            };
            let patches = || (w.div_ceil(32) * h.div_ceil(32)).min(1_536);
            let m = model;
            let tokens = if m.starts_with("gpt-4o-mini") {
                2_833 + 5_667 * tiles()
            } else if m.starts_with("gpt-4.1-mini")
                || m.starts_with("gpt-4.1-nano")
                || m.starts_with("o4-mini")
                || m.starts_with("gpt-5-mini")
                || m.starts_with("gpt-5-nano")
            {
                // The largest multiplier of the patch models (2.46), rounded up.
                (patches() * 246).div_ceil(100)
            } else if m.starts_with("gpt-4o")
                || m.starts_with("gpt-4.1")
                || m.starts_with("gpt-4.5")
                || m.starts_with("o1")
                || m.starts_with("o3")
            {
                85 + 170 * tiles()
            } else {
                // A model without a published formula: the largest image of any.
                OPENAI_MAX_IMAGE_TOKENS
            };
            tokens.min(OPENAI_MAX_IMAGE_TOKENS)
        }
    }
}

/// `(w, h)` scaled down (rounding up) so the long edge is at most `edge`.
fn fit(w: u64, h: u64, edge: u64) -> (u64, u64) {
    let long = w.max(h);
    if long <= edge {
        (w, h)
    } else {
        ((w * edge).div_ceil(long), (h * edge).div_ceil(long))
    }
}

/// Width and height from the first bytes of a base64 PNG, JPEG, GIF or WebP image.
pub fn dimensions_of_base64(b64: &str) -> Option<(u32, u32)> {
    // 64 KiB of base64 is 48 KiB of image: enough to reach a JPEG's frame header after
    // typical EXIF and ICC segments.
    let head = &b64.as_bytes()[..b64.len().min(65_536) / 4 * 4];
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(head)
        .ok()?;
    dimensions(&bytes)
}

/// Width and height from an image's header bytes.
pub fn dimensions(b: &[u8]) -> Option<(u32, u32)> {
    let be32 =
        |i: usize| -> Option<u32> { Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?)) };
    let le16 = |i: usize| -> Option<u32> {
        Some(u32::from(u16::from_le_bytes(
            b.get(i..i + 2)?.try_into().ok()?,
        )))
    };
    let be16 = |i: usize| -> Option<u32> {
        Some(u32::from(u16::from_be_bytes(
            b.get(i..i + 2)?.try_into().ok()?,
        )))
    };
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some((be32(16)?, be32(20)?));
    }
    if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        return Some((le16(6)?, le16(8)?));
    }
    if b.starts_with(b"RIFF") && b.get(8..12) == Some(b"WEBP") {
        return match b.get(12..16)? {
            b"VP8 " => Some((le16(26)? & 0x3fff, le16(28)? & 0x3fff)),
            b"VP8L" => {
                let v = u32::from_le_bytes(b.get(21..25)?.try_into().ok()?);
                Some(((v & 0x3fff) + 1, ((v >> 14) & 0x3fff) + 1))
            }
            b"VP8X" => {
                let w = u32::from_le_bytes([*b.get(24)?, *b.get(25)?, *b.get(26)?, 0]) + 1;
                let h = u32::from_le_bytes([*b.get(27)?, *b.get(28)?, *b.get(29)?, 0]) + 1;
                Some((w, h))
            }
            _ => None,
        };
    }
    if b.starts_with(&[0xff, 0xd8]) {
        let mut i = 2;
        while i + 9 < b.len() {
            if b[i] != 0xff {
                return None;
            }
            let marker = b[i + 1];
            // Start-of-frame markers carry the dimensions (not DHT c4, JPG c8, DAC cc).
            if (0xc0..=0xcf).contains(&marker) && ![0xc4, 0xc8, 0xcc].contains(&marker) {
                return Some((be16(i + 7)?, be16(i + 5)?));
            }
            i += 2 + usize::try_from(be16(i + 2)?).ok()?;
        }
        return None;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bound(provider: Provider, body: &Value) -> u64 {
        let text = body.to_string();
        input_bound(provider, "m", body, text.len(), false).tokens
    }

    #[test]
    fn text_counts_every_byte_so_one_byte_tokens_cjk_and_emoji_are_covered() {
        for text in [
            "a".repeat(10_000),
            "中文字符".repeat(1_000),
            "🎉🙂".repeat(1_000),
        ] {
            let body = json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": text}]});
            // One token per byte is the most a byte-level BPE can produce.
            assert!(bound(Provider::Anthropic, &body) >= text.len() as u64 + OVERHEAD_TOKENS);
        }
    }

    #[test]
    fn escaped_text_is_still_bounded_by_its_decoded_bytes() {
        let text = "\u{0}\u{1}\"\\".repeat(500);
        let body = json!({"messages": [{"role": "user", "content": text}]});
        assert!(bound(Provider::OpenAi, &body) >= text.len() as u64);
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        b.extend_from_slice(&w.to_be_bytes());
        b.extend_from_slice(&h.to_be_bytes());
        b.extend_from_slice(&[8, 6, 0, 0, 0]);
        b.resize(4_000, 0);
        b
    }

    #[test]
    fn images_are_bounded_by_pixels_not_by_their_base64_size() {
        let data = base64::engine::general_purpose::STANDARD.encode(png(200, 150));
        let body = json!({"messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}]}]});
        let b = input_bound(
            Provider::Anthropic,
            "m",
            &body,
            body.to_string().len(),
            false,
        );
        assert_eq!(b.images, 1);
        // 200×150/750 = 40 tokens, far below the 5,000-odd bytes of base64.
        assert!(b.tokens < OVERHEAD_TOKENS + 300, "{b:?}");
        assert!(b.tokens >= OVERHEAD_TOKENS + 40);
    }

    #[test]
    fn image_formulas() {
        assert_eq!(image_tokens(Provider::Anthropic, "m", 1000, 1000), 1_334);
        assert_eq!(image_tokens(Provider::Anthropic, "m", 8000, 8000), 8_848);
        // OpenAI's published examples: 1024×1024 is 765 and 2048×4096 is 1,105 for gpt-4o.
        assert_eq!(image_tokens(Provider::OpenAi, "gpt-4o", 1024, 1024), 765);
        assert_eq!(image_tokens(Provider::OpenAi, "gpt-4o", 2048, 4096), 1_105);
        assert_eq!(
            image_tokens(Provider::OpenAi, "gpt-4o-mini", 1024, 1024),
            2_833 + 4 * 5_667
        );
        assert_eq!(
            image_tokens(Provider::OpenAi, "gpt-4.1-nano", 8000, 8000),
            3_779
        );
        assert_eq!(
            image_tokens(Provider::OpenAi, "gpt-9", 10, 10),
            OPENAI_MAX_IMAGE_TOKENS
        );
    }

    #[test]
    fn unreadable_or_remote_images_count_as_the_largest() {
        let body = json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,!!!!"}}]}]});
        let b = input_bound(Provider::OpenAi, "m", &body, body.to_string().len(), false);
        assert_eq!(b.images, 2);
        assert!(b.tokens >= 2 * OPENAI_MAX_IMAGE_TOKENS);
    }

    #[test]
    fn documents_and_server_tools_hold_a_context_window() {
        let body = json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}],
            "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}}]}]});
        let b = input_bound(
            Provider::Anthropic,
            "m",
            &body,
            body.to_string().len(),
            false,
        );
        assert_eq!(b.unbounded_parts, 2);
        assert!(b.tokens >= 400_000);
    }

    #[test]
    fn image_headers() {
        assert_eq!(dimensions(&png(640, 480)), Some((640, 480)));
        let gif = b"GIF89a\x40\x01\xf0\x00".to_vec();
        assert_eq!(dimensions(&gif), Some((320, 240)));
        // A JPEG with an APP0 segment, then SOF0 for 300×200.
        let mut jpeg = vec![0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10];
        jpeg.extend_from_slice(&[0; 14]);
        jpeg.extend_from_slice(&[0xff, 0xc0, 0x00, 0x11, 0x08, 0x00, 0xc8, 0x01, 0x2c, 0x03]);
        jpeg.extend_from_slice(&[0; 16]);
        assert_eq!(dimensions(&jpeg), Some((300, 200)));
        assert_eq!(dimensions(b"not an image"), None);
    }
}
