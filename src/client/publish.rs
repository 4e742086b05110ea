//! `herald pub TOPIC [MESSAGE | -]`: publish one message or one per stdin line, printing each ack.

use std::io::{BufRead, IsTerminal, Write};

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::ws::{close, connect, request, Socket};
use super::{CliError, PubArgs};

/// Stdin lines read ahead of the publisher. When full, the reader thread blocks, so a fast
/// producer piped into `herald pub -` is paced by the server's acks instead of filling memory.
const STDIN_QUEUE: usize = 64;

/// Runs `herald pub`: one message, or one per stdin line; stops at the first error.
pub async fn publish(args: PubArgs) -> Result<(), CliError> {
    let from_stdin = match args.message.as_deref() {
        Some("-") => true,
        Some(_) => false,
        None if std::io::stdin().is_terminal() => return Err(CliError::NoMessage),
        None => true,
    };
    let mut ws = connect(&args.client).await?;
    if !from_stdin {
        let message = args.message.unwrap_or_default();
        publish_one(&mut ws, &args.topic, &message, 1, String::new()).await?;
    } else {
        let mut lines = stdin_lines();
        let mut count = 0u64;
        while let Some(line) = lines.recv().await {
            let (number, line) = line.map_err(CliError::Stdin)?;
            if line.trim().is_empty() {
                continue;
            }
            count += 1;
            let context = format!(" (stdin line {number})");
            publish_one(&mut ws, &args.topic, &line, count, context).await?;
        }
    }
    close(&mut ws).await;
    Ok(())
}

/// Publishes `message` and prints its ack as one line on stdout.
async fn publish_one(
    ws: &mut Socket,
    topic: &str,
    message: &str,
    n: u64,
    context: String,
) -> Result<(), CliError> {
    let payload = serde_json::from_str::<Value>(message)
        .unwrap_or_else(|_| Value::String(message.to_owned()));
    let request_id = format!("pub-{n}");
    let frame = json!({"type": "publish", "topic": topic, "message": {"payload": payload},
        "request_id": request_id});
    let ack = request(ws, frame, &request_id).await.map_err(|e| match e {
        CliError::Server { code, message, .. } => CliError::Server {
            code,
            message,
            context,
        },
        other => other,
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{ack}")
        .and_then(|()| out.flush())
        .map_err(CliError::Stdout)
}

/// Stdin lines, numbered from 1, read on a thread of their own: a blocking read cannot be
/// cancelled, and the thread ends with the process.
fn stdin_lines() -> mpsc::Receiver<std::io::Result<(u64, String)>> {
    let (tx, rx) = mpsc::channel(STDIN_QUEUE);
    std::thread::spawn(move || {
        for (i, line) in std::io::stdin().lock().lines().enumerate() {
            let failed = line.is_err();
            let item = line.map(|l| (i as u64 + 1, l.trim_end_matches('\r').to_owned()));
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
        }
    });
    rx
}
