//! What an identity may do: [`Rules`] as written (a token's `herald` claim, a table of
//! `PERMISSIONS_FILE`) and the [`Grants`] compiled from them once per identity.

use serde::{Deserialize, Serialize};

use super::matcher::Matcher;
use super::pattern::PatternTemplate;

/// An operation that needs a right on a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Subscribe, with or without replay (`sub`).
    Subscribe,
    /// Publish over WebSocket or REST (`pub`).
    Publish,
    /// `GET /topics/{t}/history` (`history`).
    History,
    /// See who is on a topic (`presence`).
    Presence,
}

/// The four pattern lists and the admin flag as they appear on the wire and in the file: the
/// `herald` claim of a token and each table of `PERMISSIONS_FILE`. Unknown fields are refused so
/// a misspelt list (`publish = [...]`) is an error, not a silently missing right.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesText {
    /// Patterns the identity may subscribe to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sub: Vec<String>,
    /// Patterns the identity may publish to.
    #[serde(default, rename = "pub", skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<String>,
    /// Patterns whose history the identity may read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<String>,
    /// Patterns whose presence the identity may see.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub presence: Vec<String>,
    /// Every right on every topic, like `API_KEY`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
}

/// [`RulesText`] with every pattern checked; `{sub}` not yet replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// `sub` patterns.
    sub: Vec<PatternTemplate>,
    /// `pub` patterns.
    publish: Vec<PatternTemplate>,
    /// `history` patterns.
    history: Vec<PatternTemplate>,
    /// `presence` patterns.
    presence: Vec<PatternTemplate>,
    /// The admin flag.
    admin: bool,
}

impl Rules {
    /// Checks every pattern; the error names the list, the index and the pattern, e.g.
    /// ``pub[1] `a.>.b`: `>` may only be the last token``.
    pub fn parse(text: &RulesText) -> Result<Self, String> {
        let list = |name: &str, patterns: &[String]| {
            patterns
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    PatternTemplate::parse(p).map_err(|e| format!("{name}[{i}] `{p}`: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            sub: list("sub", &text.sub)?,
            publish: list("pub", &text.publish)?,
            history: list("history", &text.history)?,
            presence: list("presence", &text.presence)?,
            admin: text.admin,
        })
    }

    /// Whether any pattern contains `{sub}`, i.e. the grants differ per identity.
    pub fn uses_sub(&self) -> bool {
        [&self.sub, &self.publish, &self.history, &self.presence]
            .into_iter()
            .flatten()
            .any(PatternTemplate::uses_sub)
    }
}

/// The rights of one identity, compiled once (at authentication) and shared by `Arc`; every
/// permission check is [`Grants::allows`].
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Every right on every topic, plus the admin-only operations.
    admin: bool,
    /// Where it may subscribe.
    sub: Matcher,
    /// Where it may publish.
    publish: Matcher,
    /// Whose history it may read.
    history: Matcher,
    /// Whose presence it may see.
    presence: Matcher,
}

impl Grants {
    /// Everything, like `API_KEY`.
    pub fn admin() -> Self {
        Self {
            admin: true,
            sub: Matcher::everything(),
            publish: Matcher::everything(),
            history: Matcher::everything(),
            presence: Matcher::everything(),
        }
    }

    /// Nothing at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// The union of `rules` for subject `sub` (`None` for anonymous): `{sub}` is replaced here,
    /// and a pattern whose substitution is unsafe is left out (it grants nothing).
    pub fn compile(sub: Option<&str>, rules: &[&Rules]) -> Self {
        if rules.iter().any(|r| r.admin) {
            return Self::admin();
        }
        let matcher = |pick: fn(&Rules) -> &[PatternTemplate]| {
            let concrete: Vec<String> = rules
                .iter()
                .flat_map(|r| pick(r))
                .filter_map(|p| p.instantiate(sub))
                .collect();
            Matcher::new(concrete.iter().map(String::as_str))
        };
        Self {
            admin: false,
            sub: matcher(|r| &r.sub),
            publish: matcher(|r| &r.publish),
            history: matcher(|r| &r.history),
            presence: matcher(|r| &r.presence),
        }
    }

    /// Whether `capability` is granted on `topic`.
    pub fn allows(&self, capability: Capability, topic: &str) -> bool {
        self.admin || self.matcher(capability).matches(topic)
    }

    /// The patterns granting `capability`.
    fn matcher(&self, capability: Capability) -> &Matcher {
        match capability {
            Capability::Subscribe => &self.sub,
            Capability::Publish => &self.publish,
            Capability::History => &self.history,
            Capability::Presence => &self.presence,
        }
    }

    /// Whether `capability` is granted on every topic the wildcard `pattern` matches.
    pub fn covers(&self, capability: Capability, pattern: &str) -> bool {
        self.admin || self.matcher(capability).covers(pattern)
    }

    /// Whether the admin-only operations (topic create/delete, `GET /topics`, `/stats`,
    /// `/metrics`, `/dashboard`) are granted.
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// Whether no right at all is granted (a connection holding this must authenticate in time).
    pub fn is_empty(&self) -> bool {
        !self.admin
            && self.sub.is_empty()
            && self.publish.is_empty()
            && self.history.is_empty()
            && self.presence.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(sub: &[&str], publish: &[&str]) -> Rules {
        Rules::parse(&RulesText {
            sub: sub.iter().map(|s| s.to_string()).collect(),
            publish: publish.iter().map(|s| s.to_string()).collect(),
            ..RulesText::default()
        })
        .expect("valid rules")
    }

    #[test]
    fn admin_allows_everything_and_none_nothing() {
        let all = Grants::admin();
        let none = Grants::none();
        for cap in [
            Capability::Subscribe,
            Capability::Publish,
            Capability::History,
            Capability::Presence,
        ] {
            assert!(all.allows(cap, "any.topic"));
            assert!(!none.allows(cap, "any.topic"));
        }
        assert!(all.is_admin() && !all.is_empty());
        assert!(!none.is_admin() && none.is_empty());
    }

    #[test]
    fn capabilities_are_separate() {
        let g = Grants::compile(None, &[&rules(&["news.>"], &["chat.*"])]);
        assert!(g.allows(Capability::Subscribe, "news.eu"));
        assert!(!g.allows(Capability::Publish, "news.eu"));
        assert!(g.allows(Capability::Publish, "chat.room"));
        assert!(!g.allows(Capability::Subscribe, "chat.room"));
        assert!(!g.allows(Capability::History, "news.eu"));
        assert!(!g.allows(Capability::Presence, "news.eu"));
        assert!(!g.is_admin() && !g.is_empty());
    }

    #[test]
    fn union_of_rules_with_sub_substituted() {
        let own = rules(&["team.7.>"], &[]);
        let authenticated = rules(&["user.{sub}.>"], &["user.{sub}.out"]);
        let anonymous = rules(&["public.>"], &[]);
        let g = Grants::compile(Some("42"), &[&own, &authenticated, &anonymous]);
        assert!(g.allows(Capability::Subscribe, "team.7.x"));
        assert!(g.allows(Capability::Subscribe, "user.42.inbox"));
        assert!(g.allows(Capability::Subscribe, "public.news"));
        assert!(g.allows(Capability::Publish, "user.42.out"));
        assert!(!g.allows(Capability::Subscribe, "user.43.inbox"));
        assert!(!g.allows(Capability::Publish, "user.43.out"));
        assert!(authenticated.uses_sub() && !anonymous.uses_sub());
    }

    #[test]
    fn hostile_sub_grants_nothing_extra() {
        let authenticated = rules(&["user.{sub}.>", "{sub}"], &["inbox.{sub}"]);
        for sub in ["", "*", ">", "a.b", "x.>", "*.*", "a b"] {
            let g = Grants::compile(Some(sub), &[&authenticated]);
            assert!(g.is_empty(), "sub {sub:?} was granted something: {g:?}");
            for topic in ["user.a.b", "user.x.y.z", "a.b", "inbox.a.b", "x", "inbox.x"] {
                assert!(!g.allows(Capability::Subscribe, topic), "{sub:?} {topic}");
                assert!(!g.allows(Capability::Publish, topic), "{sub:?} {topic}");
            }
        }
    }

    #[test]
    fn any_admin_rule_makes_admin() {
        let admin = Rules::parse(&RulesText {
            admin: true,
            ..RulesText::default()
        })
        .unwrap();
        let g = Grants::compile(Some("x"), &[&rules(&["a"], &[]), &admin]);
        assert!(g.is_admin());
        assert!(g.allows(Capability::Presence, "anything"));
    }

    #[test]
    fn parse_errors_name_list_index_and_pattern() {
        let err = Rules::parse(&RulesText {
            publish: vec!["ok".into(), "a.>.b".into()],
            ..RulesText::default()
        })
        .unwrap_err();
        assert!(err.starts_with("pub[1] `a.>.b`: "), "{err}");
        assert!(err.contains("last token"), "{err}");
    }
}
