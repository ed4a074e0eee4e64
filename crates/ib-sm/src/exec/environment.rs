//! What an exec plugin inherits from the daemon's environment: what it needs to run and to reach its
//! subnet manager, nothing else. The daemon's own environment holds the Kubernetes API address and may
//! hold a kubeconfig path; a plugin has no business with either. `docs/plugins.md` lists the rules.

/// Variables inherited by exact name: running a program (`PATH`, `HOME`, locale, time zone, temporary
/// directory), TLS roots, and the proxies the built-in UFM client honours too.
pub const INHERITED_NAMES: [&str; 16] = [
    "PATH",
    "HOME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
];

/// Variables inherited by prefix: the locale categories, the UFM settings (the `ufm` plugin reads the
/// same variables as the built-in), and a prefix for any plugin's own settings.
pub const INHERITED_PREFIXES: [&str; 3] = ["LC_", "UFM_", "IB_PLUGIN_"];

/// Never inherited, whatever a prefix says (a plugin named `kubernetes` included): the daemon's
/// Kubernetes credentials and API address.
const NEVER_NAMES: [&str; 1] = ["KUBECONFIG"];
const NEVER_PREFIXES: [&str; 1] = ["KUBERNETES_"];

/// The prefix of a plugin's own variables: its name in upper case, characters other than letters and
/// digits as `_`, then `_` (`acme-sm` → `ACME_SM_`). `None` for a name without letters or digits.
pub fn plugin_prefix(plugin: &str) -> Option<String> {
    if !plugin.chars().any(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let mut prefix: String =
        plugin.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    prefix.push('_');
    Some(prefix)
}

/// Whether the plugin called `plugin` inherits the variable `name`.
pub fn is_inherited(plugin: &str, name: &str) -> bool {
    if NEVER_NAMES.contains(&name) || NEVER_PREFIXES.iter().any(|p| name.starts_with(p)) {
        return false;
    }
    INHERITED_NAMES.contains(&name)
        || INHERITED_PREFIXES.iter().any(|p| name.starts_with(p))
        || plugin_prefix(plugin).is_some_and(|p| name.starts_with(&p))
}

/// The variables of `vars` the plugin called `plugin` inherits, in their order.
pub fn inherited(plugin: &str, vars: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    vars.into_iter().filter(|(name, _)| is_inherited(plugin, name)).collect()
}

/// The daemon's own environment, as UTF-8 pairs: a variable whose name or value is not UTF-8 is not
/// passed on (none that a plugin needs can be).
pub fn process_vars() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}

#[cfg(test)]
mod tests;
