//! `PERMISSIONS_FILE`: the default rights of anonymous connections and of every valid token.
//!
//! ```toml
//! [anonymous]                  # no credentials
//! sub = ["public.>"]
//!
//! [authenticated]              # every valid token, on top of its own `herald` claim
//! sub = ["user.{sub}.>"]
//! pub = ["user.{sub}.outbox"]
//! history = ["public.>"]
//! presence = []
//! admin = false
//! ```

use std::path::Path;

use serde::Deserialize;

use super::grants::{Rules, RulesText};

/// The two tables of the file, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    /// Rights of a connection without credentials; also part of every token's rights.
    pub anonymous: Rules,
    /// Rights added to every valid token's own claim.
    pub authenticated: Rules,
}

/// The file as written; unknown tables are refused so a typo (`[authenticaed]`) is caught.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileText {
    /// `[anonymous]`.
    #[serde(default)]
    anonymous: RulesText,
    /// `[authenticated]`.
    #[serde(default)]
    authenticated: RulesText,
}

impl Permissions {
    /// Reads and checks the file; errors name the file, the table and field, and what is wrong.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("PERMISSIONS_FILE {}: cannot read: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("PERMISSIONS_FILE {}: {e}", path.display()))
    }

    /// Parses and checks the file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: FileText = toml::from_str(text).map_err(|e| {
            // toml's message spans several lines (a source excerpt); one line reads better in a
            // start-up error.
            e.to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })?;
        let table = |name: &str, rules: &RulesText| {
            Rules::parse(rules).map_err(|e| format!("[{name}] {e}"))
        };
        Ok(Self {
            anonymous: table("anonymous", &file.anonymous)?,
            authenticated: table("authenticated", &file.authenticated)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Capability, Grants};

    const FILE: &str = r#"
        [anonymous]
        sub = ["public.>"]

        [authenticated]
        sub = ["user.{sub}.>"]
        pub = ["user.{sub}.outbox", "chat.*"]
        history = ["public.>"]
    "#;

    #[test]
    fn merges_claim_authenticated_and_anonymous() {
        let p = Permissions::parse(FILE).unwrap();
        let claim = Rules::parse(&RulesText {
            presence: vec!["room.1".into()],
            ..RulesText::default()
        })
        .unwrap();
        let g = Grants::compile(Some("7"), &[&claim, &p.authenticated, &p.anonymous]);
        assert!(g.allows(Capability::Subscribe, "public.news"));
        assert!(g.allows(Capability::Subscribe, "user.7.inbox"));
        assert!(g.allows(Capability::Publish, "user.7.outbox"));
        assert!(g.allows(Capability::Publish, "chat.lobby"));
        assert!(g.allows(Capability::History, "public.news"));
        assert!(g.allows(Capability::Presence, "room.1"));
        assert!(!g.allows(Capability::Publish, "public.news"));
        assert!(!g.allows(Capability::Subscribe, "user.8.inbox"));

        let anon = Grants::compile(None, &[&p.anonymous]);
        assert!(anon.allows(Capability::Subscribe, "public.news"));
        assert!(!anon.allows(Capability::Publish, "chat.lobby"));
        assert!(!anon.allows(Capability::History, "public.news"));
    }

    #[test]
    fn empty_file_grants_nothing() {
        let p = Permissions::parse("").unwrap();
        assert_eq!(p, Permissions::default());
        assert!(Grants::compile(None, &[&p.anonymous]).is_empty());
    }

    #[test]
    fn errors_say_table_field_and_problem() {
        let cases = [
            (
                "[anonymous]\nsub = [\"a.>.b\"]",
                "[anonymous] sub[0] `a.>.b`",
            ),
            (
                "[authenticated]\npub = [\"ok\", \"*x\"]",
                "[authenticated] pub[1] `*x`",
            ),
            ("[authenticated]\npublish = [\"a\"]", "publish"),
            ("[authenticaed]\nsub = [\"a\"]", "authenticaed"),
            ("[anonymous]\nsub = \"a\"", "sub"),
            ("[anonymous]\nadmin = \"yes\"", "admin"),
            ("not toml at all", "not toml"),
        ];
        for (text, expected) in cases {
            let err = Permissions::parse(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn load_names_the_file() {
        let dir = std::env::temp_dir().join(format!("herald-perm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "[anonymous]\nsub = [\"\"]\n").unwrap();
        let err = Permissions::load(&bad).unwrap_err();
        assert!(err.starts_with(&format!("PERMISSIONS_FILE {}: ", bad.display())));
        assert!(err.contains("[anonymous] sub[0]") && err.contains("empty pattern"));
        let missing = dir.join("missing.toml");
        let err = Permissions::load(&missing).unwrap_err();
        assert!(err.contains("missing.toml") && err.contains("cannot read"));
        let good = dir.join("good.toml");
        std::fs::write(&good, FILE).unwrap();
        assert!(Permissions::load(&good).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
