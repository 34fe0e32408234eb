//! What travels in a NOTIFY payload: the port's channel and payload inline, or the id of a stored message.
//!
//! Every message is a NOTIFY on the one PostgreSQL channel [`PG_CHANNEL`]. Its payload is text:
//!
//! * `cpc1 i <channel> <payload>`: the port's channel name and payload, each in standard base64 (so any bytes,
//!   NUL included, travel as ASCII whatever the server's encoding), when that fits in [`MAX_NOTIFY_PAYLOAD`];
//! * `cpc1 r <id>`: otherwise, the id of a row of `cpc_pubsub_messages` holding both.
//!
//! Anything else on the channel (another program's NOTIFY) does not decode, and is skipped.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;

/// The PostgreSQL channel every message is sent on and every listener listens to (a plain identifier: no
/// quoting needed). The port's channel travels in the payload, so any channel name works (PostgreSQL channel
/// names are identifiers of at most 63 bytes) and patterns are matched by the listener.
pub(super) const PG_CHANNEL: &str = "cpc_pubsub";

/// The longest NOTIFY payload sent inline, in bytes: PostgreSQL refuses 8000 or more (with its default 8 KiB
/// pages); a little is kept in reserve.
pub(super) const MAX_NOTIFY_PAYLOAD: usize = 7900;

/// How an inline payload starts.
const INLINE: &str = "cpc1 i ";
/// How a reference to a stored message starts (the publish statement appends the id).
pub(super) const STORED: &str = "cpc1 r ";

/// A decoded NOTIFY payload.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Wire {
    /// The message itself.
    Inline { channel: String, payload: Bytes },
    /// The id of the `cpc_pubsub_messages` row holding it.
    Stored(i64),
}

/// The NOTIFY payload carrying `channel` and `payload` inline, or `None` when it would be too long.
pub(super) fn inline(channel: &str, payload: &[u8]) -> Option<String> {
    let len = INLINE.len() + base64_len(channel.len()) + 1 + base64_len(payload.len());
    if len > MAX_NOTIFY_PAYLOAD {
        return None;
    }
    let mut text = String::with_capacity(len);
    text.push_str(INLINE);
    STANDARD.encode_string(channel, &mut text);
    text.push(' ');
    STANDARD.encode_string(payload, &mut text);
    Some(text)
}

/// The length of `n` bytes in padded base64.
fn base64_len(n: usize) -> usize {
    n.div_ceil(3).saturating_mul(4)
}

/// Decodes a NOTIFY payload; `Err` names why it is not one of ours.
pub(super) fn decode(text: &str) -> Result<Wire, &'static str> {
    if let Some(rest) = text.strip_prefix(INLINE) {
        let (channel, payload) = rest.split_once(' ').ok_or("no payload")?;
        let channel = STANDARD.decode(channel).map_err(|_| "channel is not base64")?;
        let channel = String::from_utf8(channel).map_err(|_| "channel is not UTF-8")?;
        if channel.is_empty() {
            return Err("empty channel");
        }
        let payload = STANDARD.decode(payload).map_err(|_| "payload is not base64")?;
        return Ok(Wire::Inline { channel, payload: Bytes::from(payload) });
    }
    if let Some(id) = text.strip_prefix(STORED) {
        return id.parse().map(Wire::Stored).map_err(|_| "bad message id");
    }
    Err("not a cpc message")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn inline_payloads_round_trip_any_bytes() {
        let payload: Vec<u8> = (0..=255u8).collect();
        for channel in ["a", "ünï 频道 🔔\n\0 x", "with spaces "] {
            let text = inline(channel, &payload).unwrap();
            assert!(text.is_ascii());
            assert_eq!(
                decode(&text).unwrap(),
                Wire::Inline { channel: channel.into(), payload: Bytes::from(payload.clone()) }
            );
        }
        assert_eq!(
            decode(&inline("c", b"").unwrap()).unwrap(),
            Wire::Inline { channel: "c".into(), payload: Bytes::new() }
        );
    }

    #[test]
    fn too_long_payloads_are_not_inline() {
        assert!(inline("c", &vec![1u8; 5000]).is_some());
        assert!(inline("c", &vec![1u8; 6000]).is_none());
        assert!(inline(&"c".repeat(4096), &[0u8; 2000]).is_none());
        let largest = (MAX_NOTIFY_PAYLOAD - INLINE.len() - 1 - 4) / 4 * 3;
        assert!(inline("c", &vec![0u8; largest]).unwrap().len() <= MAX_NOTIFY_PAYLOAD);
    }

    #[test]
    fn references_and_foreign_payloads() {
        assert_eq!(decode("cpc1 r 42").unwrap(), Wire::Stored(42));
        for foreign in
            ["", "hello", "cpc1 r x", "cpc1 i", "cpc1 i !!! AAAA", "cpc1 i AAAA", "cpc1 i  AAAA", "cpc1 i /w== AA"]
        {
            assert!(decode(foreign).is_err(), "{foreign:?}");
        }
    }
}
