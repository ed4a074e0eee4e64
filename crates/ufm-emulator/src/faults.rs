//! Injected misbehaviour: answer a chosen status, add latency, or hang, for the next N
//! requests whose method and path match a rule. This is how tests reproduce UFM outages,
//! slow sweeps and requests that never return.

use std::time::Duration;

use axum::http::Method;

/// What a matching request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer at once with this status and body; the request has no effect.
    Respond { status: u16, body: String },
    /// Wait, then handle the request normally.
    Delay(Duration),
    /// Wait until [`crate::UfmHandle::release_hung`] is called, `max` elapses, or the emulator
    /// shuts down; then handle the request normally (a client that gave up meanwhile sees
    /// nothing, but the change is applied, as with a real UFM behind a slow sweep).
    Hang { max: Option<Duration> },
}

/// Matches requests by method (any if `None`) and a path glob where `*` stands for any run of
/// characters, `/` included (`/ufmRest/resources/pkeys*`). The query is not part of the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    pub method: Option<Method>,
    pub path: String,
    /// How many requests the rule still applies to; `None` means every one.
    pub times: Option<u32>,
    pub action: FaultAction,
}

impl FaultRule {
    /// Answer matching requests with `status` and `body`.
    pub fn respond(method: Option<Method>, path: impl Into<String>, status: u16, body: impl Into<String>) -> Self {
        FaultRule { method, path: path.into(), times: None, action: FaultAction::Respond { status, body: body.into() } }
    }

    /// Add `latency` before handling matching requests.
    pub fn delay(method: Option<Method>, path: impl Into<String>, latency: Duration) -> Self {
        FaultRule { method, path: path.into(), times: None, action: FaultAction::Delay(latency) }
    }

    /// Hold matching requests until released.
    pub fn hang(method: Option<Method>, path: impl Into<String>) -> Self {
        FaultRule { method, path: path.into(), times: None, action: FaultAction::Hang { max: None } }
    }

    /// Limit the rule to the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// For a hang: let the request go on by itself after `max`.
    pub fn at_most(mut self, max: Duration) -> Self {
        if let FaultAction::Hang { max: m } = &mut self.action {
            *m = Some(max);
        }
        self
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        self.method.as_ref().is_none_or(|m| m == method) && glob_match(&self.path, path)
    }
}

/// Identifies an injected rule so it can be withdrawn alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FaultId(u64);

/// The active rules, in injection order; the first live match wins.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Vec<(FaultId, FaultRule)>,
    next_id: u64,
}

impl Faults {
    pub fn inject(&mut self, rule: FaultRule) -> FaultId {
        self.next_id += 1;
        let id = FaultId(self.next_id);
        self.rules.push((id, rule));
        id
    }

    pub fn remove(&mut self, id: FaultId) -> bool {
        let before = self.rules.len();
        self.rules.retain(|(rid, _)| *rid != id);
        self.rules.len() != before
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    pub fn active(&self) -> Vec<(FaultId, FaultRule)> {
        self.rules.clone()
    }

    /// Takes one use of the first matching rule and returns its action; spent rules go.
    pub fn take(&mut self, method: &Method, path: &str) -> Option<FaultAction> {
        let index = self.rules.iter().position(|(_, rule)| rule.matches(method, path))?;
        let (_, rule) = &mut self.rules[index];
        let action = rule.action.clone();
        if let Some(left) = &mut rule.times {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.rules.remove(index);
            }
        }
        Some(action)
    }
}

/// `*` matches any run of characters; everything else matches itself. Iterative with
/// backtracking to the last star, so no pattern can blow up.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|b| *b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_shell_stars() {
        assert!(glob_match("*", "/anything/at/all"));
        assert!(glob_match("/ufmRest/resources/pkeys*", "/ufmRest/resources/pkeys/"));
        assert!(glob_match("/ufmRest/resources/pkeys*", "/ufmRest/resources/pkeys"));
        assert!(glob_match("*/pkeys/*/guids/*", "/ufmRestV3/resources/pkeys/0x5/guids/a,b"));
        assert!(!glob_match("/ufmRest/app/*", "/ufmRestV3/app/ufm_version"));
        assert!(!glob_match("/a", "/a/b"));
        assert!(glob_match("", ""));
    }

    #[test]
    fn limited_rules_are_spent_after_n_matches() {
        let mut faults = Faults::default();
        faults.inject(FaultRule::respond(Some(Method::POST), "/x", 503, "down").times(2));
        assert_eq!(faults.take(&Method::GET, "/x"), None);
        assert!(faults.take(&Method::POST, "/x").is_some());
        assert!(faults.take(&Method::POST, "/x").is_some());
        assert_eq!(faults.take(&Method::POST, "/x"), None);
        assert!(faults.active().is_empty());
    }

    #[test]
    fn rules_apply_in_injection_order_and_can_be_withdrawn() {
        let mut faults = Faults::default();
        let first = faults.inject(FaultRule::respond(None, "*", 500, ""));
        faults.inject(FaultRule::delay(None, "*", Duration::from_millis(1)));
        assert!(matches!(faults.take(&Method::GET, "/a"), Some(FaultAction::Respond { status: 500, .. })));
        assert!(faults.remove(first));
        assert!(!faults.remove(first));
        assert!(matches!(faults.take(&Method::GET, "/a"), Some(FaultAction::Delay(_))));
    }

    #[test]
    fn at_most_only_bounds_hangs() {
        let hang = FaultRule::hang(None, "*").at_most(Duration::from_secs(1));
        assert_eq!(hang.action, FaultAction::Hang { max: Some(Duration::from_secs(1)) });
        let delay = FaultRule::delay(None, "*", Duration::from_secs(2)).at_most(Duration::ZERO);
        assert_eq!(delay.action, FaultAction::Delay(Duration::from_secs(2)));
    }
}
