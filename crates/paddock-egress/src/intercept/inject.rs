//! What happens to one request towards a host the gateway reads: every
//! placeholder of the box is looked for outside the places its bindings
//! name (found there, the request is refused and reported), then the
//! bindings' values are put where they say. Pure: no I/O, so every case
//! is a unit test.

use base64::Engine as _;
use hyper::header::{AUTHORIZATION, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use paddock_vault::{Binding, BoxSecret, BoxSecrets, Inject};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Why a request is refused rather than sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A placeholder where no binding of this host puts it: an attempt to
    /// send the secret somewhere it does not go.
    Misuse { secret: String, place: String },
    /// The placeholder of a secret removed since: worthless, said so.
    Removed { secret: String },
    /// The secret is bound here but cannot be opened (its key changed).
    Unavailable { secret: String },
}

impl Refusal {
    pub fn is_misuse(&self) -> bool {
        matches!(self, Self::Misuse { .. })
    }

    /// One line for the box, the log and the event; never a value.
    pub fn reason(&self, host: &str) -> String {
        match self {
            Self::Misuse { secret, place } => format!(
                "the placeholder of secret {secret} is in {place}, where no binding of {host} puts it; sent there it would carry the secret somewhere it does not go"
            ),
            Self::Removed { secret } => {
                format!("secret {secret} was removed; its placeholder is worthless")
            }
            Self::Unavailable { secret } => format!(
                "secret {secret} cannot be opened with this paddock's secrets key; a person must set it again"
            ),
        }
    }
}

/// Unreserved characters stay; everything else in a value is encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn found(secret: &BoxSecret, place: impl Into<String>) -> Refusal {
    if secret.removed {
        Refusal::Removed {
            secret: secret.name.clone(),
        }
    } else {
        Refusal::Misuse {
            secret: secret.name.clone(),
            place: place.into(),
        }
    }
}

/// Where the bindings of this host write, and whose placeholder may be
/// there: a header or query parameter a binding replaces may carry that
/// secret's placeholder, and no other.
#[derive(Default)]
pub(crate) struct Targets<'a> {
    headers: Vec<(&'a str, &'a str)>,
    params: Vec<(&'a str, &'a str)>,
}

impl<'a> Targets<'a> {
    fn of(bound: &[(&'a BoxSecret, &'a Binding)]) -> Self {
        let mut t = Self::default();
        for (secret, binding) in bound {
            let name = secret.name.as_str();
            match &binding.inject {
                Inject::Header { name: header, .. } => t.headers.push((header, name)),
                Inject::Basic { .. } => t.headers.push(("authorization", name)),
                Inject::Query { param } => t.params.push((param, name)),
            }
        }
        t
    }

    fn allowed(list: &[(&str, &'a str)], place: &str) -> Vec<&'a str> {
        list.iter()
            .filter(|(p, _)| *p == place)
            .map(|(_, s)| *s)
            .collect()
    }
}

/// Refuses a request that carries any of the box's placeholders outside
/// the targets; the plain-HTTP path calls this with none at all.
pub(crate) fn scan_head(
    parts: &Parts,
    secrets: &BoxSecrets,
    targets: &Targets<'_>,
) -> Result<(), Refusal> {
    if secrets.is_empty() {
        return Ok(());
    }
    for (name, value) in &parts.headers {
        let allowed = Targets::allowed(&targets.headers, name.as_str());
        if let Some(secret) = secrets.find_except(value.as_bytes(), &allowed) {
            return Err(found(secret, format!("the {name} header")));
        }
    }
    if let Some(secret) = secrets.find(parts.uri.path().as_bytes()) {
        return Err(found(secret, "the path"));
    }
    for pair in parts.uri.query().unwrap_or("").split('&') {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        let allowed = Targets::allowed(&targets.params, key);
        if let Some(secret) = secrets.find_except(pair.as_bytes(), &allowed) {
            return Err(found(secret, "the query"));
        }
    }
    Ok(())
}

/// Checks the request's head and puts the bound values in. Returns the
/// secrets used (for the decision log and `last_used_ms`).
pub(crate) fn prepare(
    parts: &mut Parts,
    secrets: &BoxSecrets,
    host: &str,
    port: u16,
) -> Result<Vec<String>, Refusal> {
    let bound: Vec<_> = secrets.bound_to(host, port).collect();
    scan_head(parts, secrets, &Targets::of(&bound))?;
    let mut used = Vec::new();
    for (secret, binding) in bound {
        let Some(value) = secret.value() else {
            return Err(Refusal::Unavailable {
                secret: secret.name.clone(),
            });
        };
        // Checked visible ASCII when set, so every form below is a valid
        // header value; a failure here is refused, never sent half-done.
        let value = std::str::from_utf8(value.expose()).map_err(|_| Refusal::Unavailable {
            secret: secret.name.clone(),
        })?;
        let unavailable = || Refusal::Unavailable {
            secret: secret.name.clone(),
        };
        match &binding.inject {
            Inject::Header { name, template } => {
                let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| unavailable())?;
                let mut header = HeaderValue::from_str(&template.replace("{secret}", value))
                    .map_err(|_| unavailable())?;
                header.set_sensitive(true);
                parts.headers.insert(name, header);
            }
            Inject::Basic { user } => {
                let pair = if user == "{secret}" {
                    format!("{value}:")
                } else {
                    format!("{user}:{value}")
                };
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                let mut header = HeaderValue::from_str(&format!("Basic {encoded}"))
                    .map_err(|_| unavailable())?;
                header.set_sensitive(true);
                parts.headers.insert(AUTHORIZATION, header);
            }
            Inject::Query { param } => {
                let encoded = utf8_percent_encode(value, QUERY_VALUE).to_string();
                parts.uri = with_param(&parts.uri, param, &encoded).ok_or_else(unavailable)?;
            }
        }
        if !used.contains(&secret.name) {
            used.push(secret.name.clone());
        }
    }
    Ok(used)
}

/// `uri` with `param` set to `value` (replacing any it had).
fn with_param(uri: &hyper::Uri, param: &str, value: &str) -> Option<hyper::Uri> {
    let mut pairs: Vec<String> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && p.split_once('=').map_or(*p, |(k, _)| k) != param)
        .map(str::to_owned)
        .collect();
    pairs.push(format!("{param}={value}"));
    let path_and_query = format!("{}?{}", uri.path(), pairs.join("&"));
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    hyper::Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests;
