//! Set-up of a soak: the flags checked and worked out into a [`Plan`], then every connection of
//! the run opened (bounded by `--setup-timeout`) before anything is published.

use anyhow::{bail, Context, Result};
use tokio::time::timeout;

use super::churn::{self, DROP_IN_FLIGHT};
use super::measure::{default_log_every, default_warmup};
use crate::cli::SoakArgs;
use crate::client::herald::{Resumable, SubscribeAck};
use crate::client::{Publisher, Subscriber};
use crate::payload::STAMP_LEN;
use crate::progress::Progress;
use crate::scenario::engine;
use crate::target::{Endpoint, TargetKind};
use crate::topic::{Layout, TopicSet};

/// Connections opened at once during set-up.
const CONNECT_CONCURRENCY: usize = 32;

/// What the flags work out to, before anything connects.
pub struct Plan {
    /// Latency and growth are judged from this long after the start.
    pub warmup: std::time::Duration,
    /// Period of the status lines printed above the progress line (0: none).
    pub log_every: std::time::Duration,
    /// Whether a REST publisher runs (`--rest-rate` > 0); it is one more publisher of the layout.
    pub rest_on: bool,
    /// The herald under test.
    pub endpoint: Endpoint,
    /// Every subscriber (steady and churning) and publisher (WebSocket and REST).
    pub layout: Layout,
    /// The topic names.
    pub topics: TopicSet,
    /// Subscribers `0..steady` stay connected; the rest are the churners.
    pub steady: usize,
}

impl Plan {
    /// Checks the flags and works out the run.
    pub fn new(args: &SoakArgs) -> Result<Self> {
        validate(args)?;
        let warmup = args.warmup.unwrap_or_else(|| default_warmup(args.duration));
        if warmup >= args.duration {
            bail!("--warmup must be shorter than --duration");
        }
        let log_every = args
            .log_every
            .unwrap_or_else(|| default_log_every(args.duration));
        let rest_on = args.rest_rate > 0.0;
        let endpoint = args
            .target
            .endpoint(args.subscribers + args.publishers + DROP_IN_FLIGHT + 1)?;
        let layout = Layout {
            topics: args.topics,
            subscribers: args.subscribers,
            per_subscriber: 1,
            publishers: args.publishers + usize::from(rest_on),
        };
        Ok(Self {
            warmup,
            log_every,
            rest_on,
            endpoint,
            layout,
            topics: TopicSet::new(args.topics),
            steady: args.subscribers - args.churners,
        })
    }
}

/// Every connection of the run, open and subscribed.
pub struct Clients {
    /// Steady subscribers, as in `fanout`.
    pub subscribers: Vec<Subscriber>,
    /// WebSocket publishers.
    pub publishers: Vec<Publisher>,
    /// Churning subscribers with their subscribe acks (their resume point).
    pub churners: Vec<(Resumable, SubscribeAck)>,
}

/// Opens the steady subscribers and WebSocket publishers as in `fanout`, then the churners.
pub async fn connect(plan: &Plan, args: &SoakArgs, progress: &Progress) -> Result<Clients> {
    let set_up = async {
        let ws_layout = Layout {
            subscribers: plan.steady,
            publishers: args.publishers,
            ..plan.layout
        };
        let (subscribers, publishers) = engine::connect(
            &plan.endpoint,
            &ws_layout,
            &plan.topics,
            CONNECT_CONCURRENCY,
            progress,
        )
        .await?;
        let churners = connect_churners(plan, progress).await?;
        anyhow::Ok(Clients {
            subscribers,
            publishers,
            churners,
        })
    };
    timeout(args.setup_timeout, set_up)
        .await
        .with_context(|| format!("set-up took longer than {:?}", args.setup_timeout))?
}

fn validate(args: &SoakArgs) -> Result<()> {
    if args.target.target != TargetKind::Herald {
        bail!("the soak scenario is herald-only (it resumes with since_seq + epoch)");
    }
    if args.subscribers == 0 || args.topics == 0 || args.publishers == 0 {
        bail!("--subscribers, --topics and --publishers must be at least 1");
    }
    if args.churners > args.subscribers {
        bail!("--churners cannot exceed --subscribers");
    }
    if args.payload < STAMP_LEN {
        bail!("--payload must be at least {STAMP_LEN} bytes (publisher id, counter, send time)");
    }
    for (name, v) in [
        ("--rate", args.rate),
        ("--rest-rate", args.rest_rate),
        ("--drop-rate", args.drop_rate),
        ("--max-rss-growth", args.max_rss_growth),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            bail!("{name} must be a non-negative number");
        }
    }
    if args.rate == 0.0 {
        bail!("--rate must be positive (the soak runs at a fixed rate)");
    }
    if args.duration.is_zero() || args.sample_every.is_zero() {
        bail!("--duration and --sample-every must be positive");
    }
    if args.churners > 0 && args.churn_every.is_zero() {
        bail!("--churn-every must be positive");
    }
    Ok(())
}

/// Connects the churners: subscribers `plan.steady..`, one topic each.
async fn connect_churners(
    plan: &Plan,
    progress: &Progress,
) -> Result<Vec<(Resumable, SubscribeAck)>> {
    engine::open_all(
        plan.steady..plan.layout.subscribers,
        CONNECT_CONCURRENCY,
        &plan.endpoint,
        |i| {
            let topic = plan
                .topics
                .name(plan.layout.subscriber_topics(i).next().unwrap_or(0));
            let endpoint = plan.endpoint.clone();
            async move { churn::subscribe(&endpoint, i, &topic, None, &mut |_| {}).await }
        },
        |done, total| progress.set(format!("connecting churning subscribers {done}/{total}")),
    )
    .await
}
