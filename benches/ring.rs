//! Replay ring: appends, and history reads while another thread keeps appending.
//!
//! # What is measured
//! - `ring/push`: [`Ring::push`] on a full ring of [`CAPACITY`] slots, so every push also evicts
//!   (and frees) the oldest event. The `Arc<StoredEvent>` is built outside the clock
//!   (`iter_batched`); its frame is a shared clone of one ~300-byte buffer.
//! - `ring/last_n_100/*`: [`Ring::last_n`]`(100)`, what a `last_n` subscribe or a history request
//!   reads, including allocating the result and dropping it (100 `Arc` increments and decrements).
//! - `ring/since_100/*`: [`Ring::since`]`(head - 100)`, what a resuming subscriber reads.
//!   With a writer running, the head moves between reading it and the call, so a few more than
//!   100 events may come back.
//!
//! Each read runs twice: `quiet` (nothing else touches the ring) and `appending` (a second
//! `std::thread` pushes new events as fast as it can for the whole benchmark, started before and
//! stopped after the measured loop). On a live server appends come from the topic's sequencer, at
//! the publish rate, so `appending` is a worst case for the shared `head` cache line.
//! Throughput is events returned per read (100).
//!
//! Not measured: the topic's sequencer lock around appends, and building events (see
//! `benches/codec.rs`, `serialize/event`).
//!
//! # Running
//! ```text
//! cargo bench --bench ring
//! ```

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use herald::broker::{Ring, StoredEvent};
use herald::protocol::Frame;

/// Slots in the ring under test.
const CAPACITY: usize = 1_000;

/// Events each read asks for.
const READ: u64 = 100;

/// A stored event sharing `frame`; the byte ranges are unused by the ring, so they are empty.
fn event(seq: u64, frame: &Frame) -> Arc<StoredEvent> {
    Arc::new(StoredEvent {
        seq,
        frame: frame.clone(),
        id: 0..0,
        payload: 0..0,
        ts: 0..0,
        seed_c: Default::default(),
        deflated: Default::default(),
        at_ms: 0,
    })
}

/// A ring of `CAPACITY` holding events `1..=CAPACITY`.
fn full_ring(frame: &Frame) -> Arc<Ring> {
    let ring = Arc::new(Ring::new(CAPACITY));
    for seq in 1..=CAPACITY as u64 {
        ring.push(event(seq, frame));
    }
    ring
}

/// A thread appending to `ring` until dropped. Only one exists at a time, which keeps the
/// ring's rule that appends are serialized and in `seq` order.
struct Appender {
    /// Tells the thread to stop.
    stop: Arc<AtomicBool>,
    /// The thread; it returns how many events it appended.
    handle: Option<thread::JoinHandle<u64>>,
    /// When it started, for the rate printed on drop.
    started: Instant,
}

impl Appender {
    fn start(ring: &Arc<Ring>, frame: &Frame) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let (ring, frame, stop) = (ring.clone(), frame.clone(), stop.clone());
            thread::spawn(move || {
                let first = ring.head() + 1;
                let mut seq = first;
                while !stop.load(Ordering::Relaxed) {
                    ring.push(event(seq, &frame));
                    seq += 1;
                }
                seq - first
            })
        };
        Self {
            stop,
            handle: Some(handle),
            started: Instant::now(),
        }
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let appended = handle.join().expect("appender thread panicked");
            let secs = self.started.elapsed().as_secs_f64();
            eprintln!(
                "  (appender thread: {appended} events, {:.1} M/s)",
                appended as f64 / secs / 1e6
            );
        }
    }
}

fn push(c: &mut Criterion) {
    let frame = Frame::from("x".repeat(300));
    let ring = full_ring(&frame);
    let mut group = c.benchmark_group("ring");
    group.throughput(Throughput::Elements(1));
    group.bench_function("push", |b| {
        let mut seq = ring.head();
        b.iter_batched(
            || {
                seq += 1;
                event(seq, &frame)
            },
            |event| ring.push(event),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn reads(c: &mut Criterion) {
    let frame = Frame::from("x".repeat(300));
    let mut group = c.benchmark_group("ring");
    group.throughput(Throughput::Elements(READ));
    for appending in [false, true] {
        let mode = if appending { "appending" } else { "quiet" };
        let ring = full_ring(&frame);
        let appender = appending.then(|| Appender::start(&ring, &frame));
        group.bench_function(format!("last_n_100/{mode}"), |b| {
            b.iter(|| black_box(ring.last_n(READ as usize)));
        });
        group.bench_function(format!("since_100/{mode}"), |b| {
            b.iter(|| {
                let after = ring.head() - READ;
                black_box(ring.since(black_box(after)))
            });
        });
        drop(appender);
        // Not a timing check: every read above must have been served from a full ring.
        assert_eq!(ring.last_n(CAPACITY).len(), CAPACITY);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = push, reads
}
criterion_main!(benches);
