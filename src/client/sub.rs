//! `herald sub TOPIC`: subscribe, then copy the topic's events to stdout as JSON lines.

use std::io::Write;

use futures_util::{FutureExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::ws::{close, closed, connect, drain, request, FrameHead};
use super::{CliError, SubArgs};

/// Events `sub` writes between two flushes of stdout (and checks of Ctrl-C) while frames keep
/// arriving without a pause.
const MAX_UNFLUSHED: usize = 256;

/// Runs `herald sub`: subscribe, then copy events to stdout until Ctrl-C, SIGTERM or the server
/// closes (1000 or 1001 is a clean end).
pub async fn sub(args: SubArgs) -> Result<(), CliError> {
    // Installed before connecting, so Ctrl-C at any point ends `sub` the same clean way.
    let signal = stop_signal();
    tokio::pin!(signal);
    let mut frame = json!({"type": "subscribe", "topic": args.topic, "request_id": "sub"});
    if let Some(n) = args.last_n {
        frame["last_n"] = n.into();
    }
    if let Some(s) = args.since_seq {
        frame["since_seq"] = s.into();
    }
    if let Some(e) = &args.epoch {
        frame["epoch"] = e.as_str().into();
    }
    let subscribe = async {
        let mut ws = connect(&args.client).await?;
        let ack = request(&mut ws, frame, "sub").await?;
        Ok::<_, CliError>((ws, ack))
    };
    let (mut ws, ack) = tokio::select! {
        biased;
        () = &mut signal => return Ok(()),
        subscribed = subscribe => subscribed?,
    };
    let ack: Value = serde_json::from_str(&ack).unwrap_or_default();
    eprintln!(
        "herald: subscribed to {} at seq {} (epoch {})",
        args.topic,
        ack["seq"],
        ack["epoch"].as_str().unwrap_or("?")
    );
    if let (Some(since), Some(false)) = (args.since_seq, ack["recovered"].as_bool()) {
        eprintln!(
            "herald: warning: messages after seq {since} were lost (epoch changed or ring overrun); \
             replaying what the server still holds"
        );
    }

    let mut out = std::io::BufWriter::new(std::io::stdout());
    let mut unflushed = 0;
    let result = loop {
        // Flush when nothing else is ready (or after a long burst), so a burst is one write; the
        // signal is checked at every flush.
        let ready = if unflushed < MAX_UNFLUSHED {
            ws.next().now_or_never()
        } else {
            None
        };
        let next = match ready {
            Some(next) => next,
            None => {
                if let Err(e) = out.flush() {
                    break stdout_error(e);
                }
                unflushed = 0;
                tokio::select! {
                    biased;
                    () = &mut signal => {
                        close(&mut ws).await;
                        break Ok(());
                    }
                    next = ws.next() => next,
                }
            }
        };
        unflushed += 1;
        let text = match next {
            Some(Ok(Message::Text(t))) => t.as_str().to_owned(),
            Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
            Some(Ok(Message::Close(frame))) => {
                drain(&mut ws).await;
                break closed(frame);
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => break Err(CliError::Lost(e.to_string())),
            None => {
                break Err(CliError::Lost(
                    "the stream ended without a close frame".into(),
                ))
            }
        };
        let Ok(head) = serde_json::from_str::<FrameHead>(&text) else {
            continue;
        };
        match (head.kind.as_str(), head.msg.as_deref()) {
            ("event", _) => {
                let written = if text.contains('\n') {
                    // Events are compact JSON; re-encode anything else so one event is one line.
                    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                    writeln!(out, "{value}")
                } else {
                    writeln!(out, "{text}")
                };
                if let Err(e) = written {
                    break stdout_error(e);
                }
            }
            ("info", Some("topic_deleted")) if head.topic.as_deref() == Some(&args.topic) => {
                close(&mut ws).await;
                break Err(CliError::TopicDeleted(args.topic.clone()));
            }
            ("info", Some("shutting_down")) => eprintln!("herald: the server is shutting down"),
            ("error", _) => {
                if let Some(e) = head.error {
                    eprintln!("herald: server error: {}: {}", e.code, e.message);
                }
            }
            _ => {}
        }
    };
    match out.flush() {
        Err(e) if result.is_ok() => stdout_error(e),
        _ => result,
    }
}

/// A closed pipe (`herald sub t | head -3`) ends `sub` quietly; other write errors do not.
fn stdout_error(e: std::io::Error) -> Result<(), CliError> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(CliError::Stdout(e))
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed when this is called, not
/// when first polled, so a signal that arrives early is not fatal.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {}
                () = wait(terminate) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
