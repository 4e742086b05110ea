//! Client frames (PROTOCOL.md §1): decoded from a simd-json value into a borrowed view, with the
//! seed aliases (`action` for `type`, `data` for `message.payload`) folded in.

use simd_json::prelude::*;
use simd_json::BorrowedValue;

use super::{Dialect, Replay, TopicName, TopicPattern};
use crate::error::ApiError;

/// Longest `client_id`, in bytes (as long as a token's `sub` may be): it is a presence identity,
/// listed in answers and sent to every node of a cluster.
pub const MAX_CLIENT_ID_BYTES: usize = 256;

/// Largest integer a JSON number can carry exactly in every client (2^53 - 1).
const MAX_SAFE_INT: u64 = (1 << 53) - 1;

/// What a client frame asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Start receiving a topic's events.
    Subscribe,
    /// Stop receiving them.
    Unsubscribe,
    /// Send a message to a topic.
    Publish,
    /// Application-level ping; answered with `pong`.
    Ping,
    /// A token for this connection, or a refresh of it (PROTOCOL.md §4).
    Auth,
    /// Who is on a topic (PROTOCOL.md §1 "Presence").
    Presence,
}

/// A client's `request_id`, kept as the JSON literal it arrived as (a string, or a number from
/// lenient clients) so it is echoed back unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub(crate) Box<str>);

impl RequestId {
    /// The JSON literal, ready to splice into a frame.
    pub fn as_json(&self) -> &str {
        &self.0
    }
}

/// A decoded client frame, borrowing from the parsed value.
#[derive(Debug)]
pub struct ClientFrame<'v> {
    /// What it asks for.
    pub kind: Kind,
    /// The topic; present for subscribe, unsubscribe and publish, unless `pattern` is.
    pub topic: Option<TopicName>,
    /// Subscribe and unsubscribe: the wildcard pattern `topic` held instead of a name.
    pub pattern: Option<TopicPattern>,
    /// Echoed on the reply.
    pub request_id: Option<RequestId>,
    /// Publish: the client's message id, if it chose one.
    pub message_id: Option<&'v str>,
    /// Publish: the payload (`message.payload`, or `data`).
    pub payload: Option<&'v BorrowedValue<'v>>,
    /// Subscribe: what to replay first.
    pub replay: Replay,
    /// Subscribe: `presence_events`, tell the subscriber of joins and leaves.
    pub presence_events: bool,
    /// Optional client name: a subscription's presence identity when there is no token.
    pub client_id: Option<&'v str>,
    /// Auth: the token.
    pub token: Option<&'v str>,
    /// `SeedC` when the frame named its kind with `action` (and not `type`), else `Canonical`.
    pub dialect: Dialect,
}

/// A frame that cannot be served, with the `request_id` to echo when it could be read.
#[derive(Debug)]
pub struct FrameError {
    /// Echoed on the error frame.
    pub request_id: Option<RequestId>,
    /// What was wrong.
    pub error: ApiError,
}

/// A publish as both transports receive it: a WebSocket `publish` frame, or the body of REST's
/// `POST /publish`.
#[derive(Debug)]
pub struct PublishRequest<'v> {
    /// Where it goes.
    pub topic: TopicName,
    /// The client's message id, if it chose one.
    pub message_id: Option<&'v str>,
    /// The payload (`message.payload`, or `data`).
    pub payload: &'v BorrowedValue<'v>,
}

/// Decodes a publish body `{"topic","data"}` or `{"topic","message":{"id"?,"payload"}}`; other
/// fields (`type`, `action`, `request_id`) are not looked at.
pub fn decode_publish<'v>(value: &'v BorrowedValue<'_>) -> Result<PublishRequest<'v>, ApiError> {
    let object = value
        .as_object()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    let topic = match object.get("topic") {
        None | Some(BorrowedValue::Static(StaticNode::Null)) => {
            return Err(ApiError::bad_request("missing field `topic`"))
        }
        Some(v) => v
            .as_str()
            .ok_or_else(|| ApiError::bad_request("`topic` must be a string"))?,
    };
    let topic = TopicName::parse(topic)?;
    if object
        .get("client_id")
        .is_some_and(|v| !v.is_str() && !matches!(v, BorrowedValue::Static(StaticNode::Null)))
    {
        return Err(ApiError::bad_request("`client_id` must be a string"));
    }
    let (message_id, payload) = publish_fields(object)?;
    Ok(PublishRequest {
        topic,
        message_id,
        payload,
    })
}

/// The message id and payload of a publish, from `message` or the seed alias `data`.
fn publish_fields<'v>(
    object: &'v simd_json::borrowed::Object<'_>,
) -> Result<(Option<&'v str>, &'v BorrowedValue<'v>), ApiError> {
    let (id, payload) = match object.get("message") {
        Some(BorrowedValue::Object(message)) => {
            let id = match message.get("id") {
                None | Some(BorrowedValue::Static(StaticNode::Null)) => None,
                Some(v) => Some(
                    v.as_str()
                        .ok_or_else(|| ApiError::bad_request("`message.id` must be a string"))?,
                ),
            };
            let payload = message
                .get("payload")
                .ok_or_else(|| ApiError::bad_request("missing field `message.payload`"))?;
            (id, payload)
        }
        Some(_) => return Err(ApiError::bad_request("`message` must be an object")),
        None => (
            None,
            object.get("data").ok_or_else(|| {
                ApiError::bad_request("publish needs `message.payload` (or `data`)")
            })?,
        ),
    };
    // Characters, as JSON Schema's maxLength counts (api/openapi.json): at most 1,020 bytes.
    if id.is_some_and(|id| id.chars().count() > 255) {
        return Err(ApiError::bad_request(
            "`message.id` longer than 255 characters",
        ));
    }
    Ok((id, payload))
}

/// Decodes a parsed client frame.
pub fn decode<'v>(value: &'v BorrowedValue<'_>) -> Result<ClientFrame<'v>, FrameError> {
    let Some(object) = value.as_object() else {
        return Err(FrameError {
            request_id: None,
            error: ApiError::bad_request("a frame must be a JSON object"),
        });
    };
    let request_id = match object.get("request_id") {
        None | Some(BorrowedValue::Static(StaticNode::Null)) => None,
        Some(v) if v.is_str() || v.is_i64() || v.is_u64() => {
            Some(RequestId(v.encode().into_boxed_str()))
        }
        Some(_) => {
            return Err(FrameError {
                request_id: None,
                error: ApiError::bad_request("`request_id` must be a string"),
            })
        }
    };
    let fail = |message: String| FrameError {
        request_id: request_id.clone(),
        error: ApiError::bad_request(message),
    };
    let (kind_value, dialect) = match object.get("type") {
        Some(kind) => (Some(kind), Dialect::Canonical),
        None => (object.get("action"), Dialect::SeedC),
    };
    let kind = match kind_value.map(|v| v.as_str()) {
        None => return Err(fail("missing field `type`".into())),
        Some(None) => return Err(fail("`type` must be a string".into())),
        Some(Some("subscribe")) => Kind::Subscribe,
        Some(Some("unsubscribe")) => Kind::Unsubscribe,
        Some(Some("publish")) => Kind::Publish,
        Some(Some("ping")) => Kind::Ping,
        Some(Some("auth")) => Kind::Auth,
        Some(Some("presence")) => Kind::Presence,
        Some(Some(other)) => {
            let shown: String = other.chars().take(64).collect();
            return Err(fail(format!(
                "unknown type `{shown}` (expected subscribe, unsubscribe, publish, ping, auth \
                 or presence)"
            )));
        }
    };
    let string = |key: &str| -> Result<Option<&'v str>, FrameError> {
        match object.get(key) {
            None | Some(BorrowedValue::Static(StaticNode::Null)) => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| fail(format!("`{key}` must be a string"))),
        }
    };
    // An empty one names no one: the connection's name stands in.
    let client_id = string("client_id")?.filter(|id| !id.is_empty());
    if client_id.is_some_and(|id| id.len() > MAX_CLIENT_ID_BYTES) {
        return Err(fail(format!(
            "`client_id` longer than {MAX_CLIENT_ID_BYTES} bytes"
        )));
    }
    let (topic, pattern) = if matches!(kind, Kind::Ping | Kind::Auth) {
        (None, None)
    } else {
        let name = string("topic")?.ok_or_else(|| fail("missing field `topic`".into()))?;
        match (kind, TopicPattern::is_pattern(name)) {
            (Kind::Publish, true) => {
                return Err(fail(
                    "cannot publish to a topic pattern (`*` or `>`): name one topic".into(),
                ))
            }
            (Kind::Presence, true) => {
                return Err(fail(
                    "presence is per topic, not per pattern (`*` or `>`): name one topic".into(),
                ))
            }
            (_, true) => (
                None,
                Some(TopicPattern::parse(name).map_err(|e| fail(e.message))?),
            ),
            (_, false) => (
                Some(TopicName::parse(name).map_err(|e| fail(e.message))?),
                None,
            ),
        }
    };
    let mut frame = ClientFrame {
        kind,
        topic,
        pattern,
        request_id: None,
        message_id: None,
        payload: None,
        replay: Replay::None,
        presence_events: false,
        client_id,
        token: None,
        dialect,
    };
    match kind {
        Kind::Publish => {
            let (message_id, payload) = publish_fields(object).map_err(|e| FrameError {
                request_id: request_id.clone(),
                error: e,
            })?;
            frame.message_id = message_id;
            frame.payload = Some(payload);
        }
        Kind::Subscribe => {
            let int = |key: &str| -> Result<Option<u64>, FrameError> {
                match object.get(key) {
                    None | Some(BorrowedValue::Static(StaticNode::Null)) => Ok(None),
                    Some(v) => match v.as_u64() {
                        Some(n) if n <= MAX_SAFE_INT && !v.is_f64() => Ok(Some(n)),
                        _ => Err(fail(format!(
                            "`{key}` must be an integer between 0 and {MAX_SAFE_INT}"
                        ))),
                    },
                }
            };
            let last_n = int("last_n")?;
            let since_seq = int("since_seq")?;
            let epoch = string("epoch")?;
            // since_seq is the more precise request, so it wins when both are given.
            frame.replay = match (since_seq, last_n) {
                (Some(seq), _) => Replay::Since {
                    seq,
                    epoch: epoch.map(str::to_string),
                },
                (None, Some(n)) if n > 0 => Replay::LastN(n),
                (None, Some(_)) => Replay::LastN(0),
                (None, None) => Replay::None,
            };
            // A pattern has no single `seq` line to replay from or resume in (PROTOCOL.md §1).
            if frame.pattern.is_some() && !matches!(frame.replay, Replay::None) {
                return Err(fail(
                    "`last_n` and `since_seq` need one topic: a pattern subscription is live only"
                        .into(),
                ));
            }
            frame.presence_events = match object.get("presence_events") {
                None | Some(BorrowedValue::Static(StaticNode::Null)) => false,
                Some(v) => v
                    .as_bool()
                    .ok_or_else(|| fail("`presence_events` must be true or false".into()))?,
            };
            // Presence counts subscriptions by name: a pattern is on no topic in particular.
            if frame.pattern.is_some() && frame.presence_events {
                return Err(fail(
                    "`presence_events` needs one topic: a pattern subscription has no presence"
                        .into(),
                ));
            }
        }
        Kind::Auth => {
            frame.token =
                Some(string("token")?.ok_or_else(|| fail("missing field `token`".into()))?);
        }
        Kind::Unsubscribe | Kind::Ping | Kind::Presence => {}
    }
    frame.request_id = request_id;
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(Kind, Option<String>, Replay, Option<String>), String> {
        let mut bytes = text.as_bytes().to_vec();
        let value = simd_json::to_borrowed_value(&mut bytes).map_err(|e| e.to_string())?;
        decode(&value)
            .map(|f| {
                (
                    f.kind,
                    f.topic.map(|t| t.to_string()),
                    f.replay,
                    f.payload.map(|p| p.encode()),
                )
            })
            .map_err(|e| {
                format!(
                    "{}|{}",
                    e.request_id
                        .map(|r| r.as_json().to_string())
                        .unwrap_or_default(),
                    e.error.message
                )
            })
    }

    #[test]
    fn publish_forms_and_aliases() {
        let (k, t, _, p) =
            parse(r#"{"type":"publish","topic":"a","message":{"id":"1","payload":{"x":1}}}"#)
                .unwrap();
        assert_eq!(
            (k, t.as_deref(), p.as_deref()),
            (Kind::Publish, Some("a"), Some(r#"{"x":1}"#))
        );
        let (k, _, _, p) = parse(r#"{"action":"publish","topic":"a","data":[1,2]}"#).unwrap();
        assert_eq!((k, p.as_deref()), (Kind::Publish, Some("[1,2]")));
        // message wins over data
        let (_, _, _, p) =
            parse(r#"{"type":"publish","topic":"a","data":1,"message":{"payload":2}}"#).unwrap();
        assert_eq!(p.as_deref(), Some("2"));
    }

    #[test]
    fn replay_fields() {
        let (_, _, r, _) = parse(r#"{"type":"subscribe","topic":"a","last_n":5}"#).unwrap();
        assert_eq!(r, Replay::LastN(5));
        let (_, _, r, _) =
            parse(r#"{"type":"subscribe","topic":"a","last_n":5,"since_seq":3,"epoch":"e"}"#)
                .unwrap();
        assert_eq!(
            r,
            Replay::Since {
                seq: 3,
                epoch: Some("e".into())
            }
        );
    }

    #[test]
    fn message_id_limit_counts_characters() {
        let frame = |id: &str| {
            format!(r#"{{"type":"publish","topic":"t","message":{{"id":"{id}","payload":1}}}}"#)
        };
        // 255 two-byte characters (510 bytes) fit, as JSON Schema's maxLength 255 promises.
        assert!(parse(&frame(&"é".repeat(255))).is_ok());
        let err = parse(&frame(&"é".repeat(256))).unwrap_err();
        assert!(err.contains("longer than 255 characters"), "{err}");
    }

    #[test]
    fn bad_frames_name_the_problem_and_keep_request_id() {
        let cases = [
            (r#"[1]"#, "|a frame must be a JSON object"),
            (r#"{"request_id":"r"}"#, r#""r"|missing field `type`"#),
            (r#"{"type":"nope","request_id":7}"#, "7|unknown type `nope`"),
            (
                r#"{"type":"subscribe","request_id":"r"}"#,
                r#""r"|missing field `topic`"#,
            ),
            (
                r#"{"type":"subscribe","topic":"a b"}"#,
                "|topic name may only contain",
            ),
            (
                r#"{"type":"subscribe","topic":5}"#,
                "|`topic` must be a string",
            ),
            (
                r#"{"type":"subscribe","topic":"a","last_n":-1}"#,
                "|`last_n` must be an integer",
            ),
            (
                r#"{"type":"subscribe","topic":"a","last_n":1.5}"#,
                "|`last_n` must be an integer",
            ),
            (
                r#"{"type":"subscribe","topic":"a","last_n":9007199254740992}"#,
                "|`last_n` must",
            ),
            (r#"{"type":"publish","topic":"a"}"#, "|publish needs"),
            (
                r#"{"type":"publish","topic":"a","message":"x"}"#,
                "|`message` must be an object",
            ),
            (
                r#"{"type":"publish","topic":"a","message":{"id":1,"payload":1}}"#,
                "|`message.id`",
            ),
        ];
        for (input, want) in cases {
            let got = parse(input).unwrap_err();
            assert!(
                got.starts_with(want),
                "{input}: got {got:?}, want prefix {want:?}"
            );
        }
    }

    #[test]
    fn unknown_fields_are_ignored() {
        assert!(parse(r#"{"type":"ping","extra":{"deep":[1]}}"#).is_ok());
    }
}
