//! Bindings: which hosts a secret goes to, and where in the request. A
//! binding is data a person wrote (CLI, REST, a policy file), so every
//! part is checked here once and refused with a reason that names it.

use serde::{Deserialize, Serialize};

use crate::VaultError;

/// Where the value is put in a request to a bound host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inject {
    /// A header from a template holding `{secret}` once:
    /// `Authorization: Bearer {secret}`, `x-api-key: {secret}`.
    Header { name: String, template: String },
    /// HTTP Basic with this user and the secret as password (a forge's
    /// token over git's HTTPS, `x-access-token`); a user of `{secret}`
    /// sends the secret as the user, with no password (forges that take
    /// the token as the user name).
    Basic { user: String },
    /// A query parameter carrying the secret.
    Query { param: String },
}

/// A host pattern: `api.example.com`, `*.example.com` (names under it,
/// not itself), each with an optional `:port` (443 when none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundHost {
    /// Lower case, no trailing dot; for a wildcard, the suffix with its dot.
    name: String,
    wildcard: bool,
    pub port: u16,
}

impl BoundHost {
    pub fn parse(text: &str) -> Result<Self, VaultError> {
        let bad = |why: &str| VaultError::Invalid(format!("binding host {text:?}: {why}"));
        let text = text.trim();
        let (name, port) = match text.rsplit_once(':') {
            Some((name, port)) => (
                name,
                port.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad("the port is not a port"))?,
            ),
            None => (text, 443),
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let (wildcard, bare) = match name.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, name.as_str()),
        };
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        let numeric_tld = bare
            .rsplit('.')
            .next()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
        if bare.is_empty() || bare.len() > 253 || !bare.split('.').all(label_ok) || numeric_tld {
            return Err(bad(
                "not a host name (names only: a secret is bound to a name, never an address)",
            ));
        }
        if wildcard && !bare.contains('.') {
            return Err(bad(
                "a wildcard must keep at least two labels (*.example.com)",
            ));
        }
        Ok(Self {
            name: if wildcard {
                format!(".{bare}")
            } else {
                bare.to_owned()
            },
            wildcard,
            port,
        })
    }

    /// Whether a connection to `host:port` (host lower case) is bound.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        port == self.port
            && if self.wildcard {
                host.len() > self.name.len() && host.ends_with(&self.name)
            } else {
                host == self.name
            }
    }
}

impl std::fmt::Display for BoundHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.wildcard {
            write!(f, "*{}", self.name)?;
        } else {
            f.write_str(&self.name)?;
        }
        if self.port != 443 {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

/// One binding of a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub hosts: Vec<BoundHost>,
    pub inject: Inject,
}

/// A binding as written in JSON, TOML and REST bodies: `hosts` and exactly
/// one of `header`, `basic`, `query`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingSpec {
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// Headers a binding may not write: they frame the request or belong to
/// the proxy hop, and a secret there would be lost or misread.
const RESERVED_HEADERS: [&str; 11] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "cookie",
];

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn visible(s: &str) -> bool {
    s.bytes()
        .all(|b| b == b' ' || b == b'\t' || (0x21..0x7f).contains(&b))
}

impl TryFrom<&BindingSpec> for Binding {
    type Error = VaultError;

    fn try_from(spec: &BindingSpec) -> Result<Self, VaultError> {
        let bad = |why: String| VaultError::Invalid(format!("binding: {why}"));
        if spec.hosts.is_empty() {
            return Err(bad("names no host".into()));
        }
        let hosts = spec
            .hosts
            .iter()
            .map(|h| BoundHost::parse(h))
            .collect::<Result<Vec<_>, _>>()?;
        let inject = match (&spec.header, &spec.basic, &spec.query) {
            (Some(header), None, None) => {
                let (name, template) = header
                    .split_once(':')
                    .ok_or_else(|| bad(format!("header {header:?} is not `Name: value`")))?;
                let (name, template) = (name.trim().to_ascii_lowercase(), template.trim());
                if !is_token(&name) {
                    return Err(bad(format!("{name:?} is not a header name")));
                }
                if RESERVED_HEADERS.contains(&name.as_str()) {
                    return Err(bad(format!("the {name} header cannot carry a secret")));
                }
                if template.matches("{secret}").count() != 1 || !visible(template) {
                    return Err(bad(format!(
                        "the header's value must hold {{secret}} exactly once, in visible characters: {template:?}"
                    )));
                }
                Inject::Header {
                    name,
                    template: template.to_owned(),
                }
            }
            (None, Some(user), None) => {
                if user.contains(':')
                    || !visible(user)
                    || (user.contains("{secret}") && user != "{secret}")
                {
                    return Err(bad(format!(
                        "the Basic user {user:?} may not hold ':' or control characters"
                    )));
                }
                Inject::Basic { user: user.clone() }
            }
            (None, None, Some(param)) => {
                if param.is_empty()
                    || !param
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
                {
                    return Err(bad(format!("{param:?} is not a query parameter name")));
                }
                Inject::Query {
                    param: param.clone(),
                }
            }
            _ => {
                return Err(bad("needs exactly one of header, basic or query".into()));
            }
        };
        Ok(Self { hosts, inject })
    }
}

impl From<&Binding> for BindingSpec {
    fn from(b: &Binding) -> Self {
        let mut spec = BindingSpec {
            hosts: b.hosts.iter().map(ToString::to_string).collect(),
            ..BindingSpec::default()
        };
        match &b.inject {
            Inject::Header { name, template } => spec.header = Some(format!("{name}: {template}")),
            Inject::Basic { user } => spec.basic = Some(user.clone()),
            Inject::Query { param } => spec.query = Some(param.clone()),
        }
        spec
    }
}

impl BindingSpec {
    /// The CLI's form: `HOST[,HOST…]=header:Name: value {secret}`,
    /// `…=basic:USER`, `…=query:PARAM`.
    pub fn parse_cli(text: &str) -> Result<Self, VaultError> {
        let bad = || {
            VaultError::Invalid(format!(
                "binding {text:?}: write HOSTS=header:NAME: VALUE-WITH-{{secret}}, HOSTS=basic:USER or HOSTS=query:PARAM"
            ))
        };
        let (hosts, how) = text.split_once('=').ok_or_else(bad)?;
        let (kind, arg) = how.split_once(':').ok_or_else(bad)?;
        let mut spec = BindingSpec {
            hosts: hosts.split(',').map(|h| h.trim().to_owned()).collect(),
            ..BindingSpec::default()
        };
        match kind.trim() {
            "header" => spec.header = Some(arg.trim().to_owned()),
            "basic" => spec.basic = Some(arg.trim().to_owned()),
            "query" => spec.query = Some(arg.trim().to_owned()),
            _ => return Err(bad()),
        }
        Binding::try_from(&spec)?;
        Ok(spec)
    }
}

/// A secret's name: what `secret set` and bindings call it.
pub fn check_name(name: &str) -> Result<(), VaultError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(VaultError::Invalid(format!(
            "secret name {name:?}: 1-64 letters, digits, '_', '.' or '-'"
        )))
    }
}

/// The environment variable a box finds a placeholder in.
pub fn check_env(name: &str) -> Result<(), VaultError> {
    let mut bytes = name.bytes();
    let ok = name.len() <= 128
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !ok {
        return Err(VaultError::Invalid(format!(
            "environment variable {name:?}: a letter or '_', then letters, digits or '_'"
        )));
    }
    // paddock's own variables point the box at the gateway and its CA;
    // a secret's placeholder must not replace them.
    let taken = name.starts_with("PADDOCK_")
        || [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "NO_PROXY",
            "SSL_CERT_FILE",
            "NODE_EXTRA_CA_CERTS",
            "REQUESTS_CA_BUNDLE",
            "CURL_CA_BUNDLE",
            "GIT_SSL_CAINFO",
            "PATH",
            "HOME",
        ]
        .iter()
        .any(|t| t.eq_ignore_ascii_case(name));
    if taken {
        return Err(VaultError::Invalid(format!(
            "environment variable {name:?} is paddock's own"
        )));
    }
    Ok(())
}

/// A value that can go on the wire in a header: visible characters, no
/// line breaks (a header split in two would be a request smuggled).
pub fn check_value(value: &[u8]) -> Result<(), VaultError> {
    if value.is_empty() || value.len() > 8192 {
        return Err(VaultError::Invalid(
            "a secret's value must be 1 to 8192 bytes".into(),
        ));
    }
    if !value.iter().all(|b| (0x21..0x7f).contains(b)) {
        return Err(VaultError::Invalid(
            "a secret's value must be visible ASCII without spaces or line breaks (a trailing newline from a file is removed)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_by_name_and_port() {
        let exact = BoundHost::parse("API.Example.com.").unwrap();
        assert!(exact.matches("api.example.com", 443));
        assert!(!exact.matches("api.example.com", 80));
        assert!(!exact.matches("x.api.example.com", 443));
        let wild = BoundHost::parse("*.example.com:8443").unwrap();
        assert!(wild.matches("a.example.com", 8443));
        assert!(!wild.matches("example.com", 8443));
        assert!(!wild.matches("badexample.com", 8443));
        assert_eq!(wild.to_string(), "*.example.com:8443");
        for bad in ["10.0.0.1", "*.com", "a..b", "a.b:0", "a.b:x", "", "-a.b"] {
            assert!(BoundHost::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_cli_form_round_trips_and_bad_ones_say_why() {
        let spec = BindingSpec::parse_cli(
            "api.github.com,uploads.github.com=header:Authorization: Bearer {secret}",
        )
        .unwrap();
        let binding = Binding::try_from(&spec).unwrap();
        assert_eq!(
            binding.inject,
            Inject::Header {
                name: "authorization".into(),
                template: "Bearer {secret}".into()
            }
        );
        assert_eq!(BindingSpec::from(&binding).hosts, spec.hosts);
        assert!(BindingSpec::parse_cli("github.com=basic:x-access-token").is_ok());
        assert!(BindingSpec::parse_cli("gitea.example=basic:{secret}").is_ok());
        assert!(BindingSpec::parse_cli("gitea.example=basic:u{secret}").is_err());
        assert!(BindingSpec::parse_cli("maps.example.com=query:key").is_ok());
        for bad in [
            "github.com",
            "github.com=cookie:x",
            "a.b=header:Host: {secret}",
            "a.b=header:X-Key: none",
            "a.b=header:X-Key: {secret}{secret}",
            "a.b=basic:a:b",
            "a.b=query:a b",
        ] {
            assert!(BindingSpec::parse_cli(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_spec_needs_exactly_one_way() {
        let both = BindingSpec {
            hosts: vec!["a.example".into()],
            header: Some("x: {secret}".into()),
            basic: Some("u".into()),
            query: None,
        };
        assert!(Binding::try_from(&both).is_err());
        let none = BindingSpec {
            hosts: vec!["a.example".into()],
            ..BindingSpec::default()
        };
        assert!(Binding::try_from(&none).is_err());
    }

    #[test]
    fn names_variables_and_values_are_checked() {
        assert!(check_name("GITHUB_TOKEN").is_ok());
        assert!(check_name("a/b").is_err());
        assert!(check_env("ANTHROPIC_API_KEY").is_ok());
        assert!(check_env("1X").is_err());
        assert!(check_env("https_proxy").is_err());
        assert!(check_env("PADDOCK_GIT_TOKEN").is_err());
        assert!(check_value(b"sk-123").is_ok());
        assert!(check_value(b"a\r\nX-Evil: 1").is_err());
        assert!(check_value(b"").is_err());
    }
}
