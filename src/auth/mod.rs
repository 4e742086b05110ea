//! Per-client authorization (issue 15): who a client is and what it may do.
//!
//! This module owns the decision, not its enforcement. It verifies JWTs ([`Auth::verify`]: the
//! configured algorithm families only, size-capped before parsing, never fetching keys), loads the
//! defaults of `PERMISSIONS_FILE` ([`Permissions`]), compiles each identity's rights once into
//! [`Grants`] (NATS-style topic patterns, `{sub}` substituted safely) and answers
//! [`Grants::allows`] without allocating. It also mints development tokens ([`mint()`]) for
//! `herald token`. The engine's one door calls it on every operation; nothing here knows about
//! sockets, HTTP or the broker.
//!
//! # Layout
//! - [`pattern`]: topic patterns as written, checked, `{sub}` substituted.
//! - `matcher`: [`Matcher`], the compiled patterns (hash set plus token trie).
//! - [`grants`]: the rules as written, [`Capability`] and the compiled [`Grants`].
//! - [`permissions`]: `PERMISSIONS_FILE` (TOML `[anonymous]`, `[authenticated]`).
//! - `keys`: `JWT_SECRET` / `JWT_PUBLIC_KEY` and the validation rules per algorithm.
//! - [`refusal`]: [`AuthError`], why a token was refused.
//! - [`verify`]: [`Auth`], token in, [`Identity`] out.
//! - [`mod@mint`]: HS256 tokens for the CLI.

pub mod grants;
mod keys;
mod matcher;
pub mod mint;
pub mod pattern;
pub mod permissions;
pub mod refusal;
pub mod verify;

pub use grants::{Capability, Grants, Rules, RulesText};
pub use matcher::Matcher;
pub use mint::{mint, MintClaims, MintError};
pub use pattern::{PatternError, PatternTemplate};
pub use permissions::Permissions;
pub use refusal::{AuthError, MAX_TOKEN_BYTES};
pub use verify::{Auth, AuthCounts, Identity};
