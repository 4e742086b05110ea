//! `herald token`: mint a development token from `JWT_SECRET` and print it.

use super::{CliError, TokenArgs};
use crate::auth::{mint, MintClaims, RulesText};

/// Mints the token `args` describe and prints it on stdout.
pub fn token(args: TokenArgs) -> Result<(), CliError> {
    let claims = MintClaims {
        sub: args.sub,
        ttl: args.ttl,
        rules: RulesText {
            sub: args.allow_sub,
            publish: args.allow_pub,
            history: args.allow_history,
            presence: args.allow_presence,
            admin: args.admin,
        },
        issuer: args.issuer.filter(|s| !s.is_empty()),
        audience: args.audience.filter(|s| !s.is_empty()),
    };
    let token = mint(&args.secret, &claims).map_err(|e| CliError::Mint(e.to_string()))?;
    println!("{token}");
    Ok(())
}
