//! What a request asks for, checked before anything touches the disk.

use std::path::{Path, PathBuf};

use base64::Engine as _;

/// The three smart-HTTP endpoints; nothing else is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    InfoRefs,
    UploadPack,
    ReceivePack,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GitRequest {
    pub project: String,
    pub endpoint: Endpoint,
    /// For `info/refs`: which service's refs.
    pub service: Option<Endpoint>,
}

impl GitRequest {
    pub fn is_push(&self) -> bool {
        self.endpoint == Endpoint::ReceivePack || self.service == Some(Endpoint::ReceivePack)
    }

    pub fn path_info(&self) -> String {
        let rest = match self.endpoint {
            Endpoint::InfoRefs => "info/refs",
            Endpoint::UploadPack => "git-upload-pack",
            Endpoint::ReceivePack => "git-receive-pack",
        };
        format!("/{}.git/{rest}", self.project)
    }
}

/// Project names: the same rule as paddock's projects, so a name can never
/// be `..`, contain a slash, or start with a dash.
pub(crate) fn valid_project(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// None for anything that is not exactly a smart-HTTP request for a
/// well-named repository. Percent-escapes are not decoded: no valid name
/// or endpoint contains one.
pub(crate) fn parse(method: &str, path: &str, query: Option<&str>) -> Option<GitRequest> {
    let rest = path.strip_prefix('/')?;
    let (repo, endpoint) = rest.split_once(".git/")?;
    if !valid_project(repo) {
        return None;
    }
    let (endpoint, service) = match (method, endpoint) {
        ("GET", "info/refs") => {
            let service = query?
                .split('&')
                .find_map(|kv| kv.strip_prefix("service="))?;
            let service = match service {
                "git-upload-pack" => Endpoint::UploadPack,
                "git-receive-pack" => Endpoint::ReceivePack,
                _ => return None,
            };
            (Endpoint::InfoRefs, Some(service))
        }
        ("POST", "git-upload-pack") => (Endpoint::UploadPack, None),
        ("POST", "git-receive-pack") => (Endpoint::ReceivePack, None),
        _ => return None,
    };
    Some(GitRequest {
        project: repo.to_owned(),
        endpoint,
        service,
    })
}

/// The token from `Authorization: Basic base64(token:anything)`.
pub(crate) fn basic_token(header: Option<&str>) -> Option<String> {
    let encoded = header?.strip_prefix("Basic ")?.trim();
    if encoded.len() > 4096 {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split(':').next()?;
    (!user.is_empty()).then(|| user.to_owned())
}

/// The repository directory, if it is a real directory inside `base` (a
/// symlink may point only to somewhere inside `base` too).
pub(crate) fn repository(base: &Path, project: &str) -> Option<PathBuf> {
    let candidate = base.join(format!("{project}.git"));
    let real = candidate.canonicalize().ok()?;
    (real.starts_with(base) && real.is_dir() && real.join("HEAD").is_file()).then_some(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_smart_http_for_clean_names() {
        let ok = parse(
            "GET",
            "/alpha.git/info/refs",
            Some("service=git-upload-pack"),
        )
        .unwrap();
        assert_eq!(ok.project, "alpha");
        assert!(!ok.is_push());
        assert!(
            parse("POST", "/alpha.git/git-receive-pack", None)
                .unwrap()
                .is_push()
        );
        for (m, p, q) in [
            ("GET", "/alpha.git/info/refs", None),
            ("GET", "/alpha.git/info/refs", Some("service=git-foo")),
            ("GET", "/alpha.git/HEAD", None),
            ("GET", "/alpha.git/objects/info/packs", None),
            ("GET", "/alpha.git/git-upload-pack", None),
            ("POST", "/../alpha.git/git-upload-pack", None),
            ("POST", "/a/../alpha.git/git-upload-pack", None),
            ("POST", "/%2e%2e.git/git-upload-pack", None),
            ("POST", "//etc/passwd.git/git-upload-pack", None),
            ("POST", "/Alpha.git/git-upload-pack", None),
            ("POST", "/-x.git/git-upload-pack", None),
            ("POST", "/a b.git/git-upload-pack", None),
            ("POST", "/alpha.git/git-upload-pack/extra", None),
            ("DELETE", "/alpha.git/git-upload-pack", None),
        ] {
            assert_eq!(parse(m, p, q), None, "{m} {p} {q:?}");
        }
    }

    #[test]
    fn basic_auth_username_is_the_token() {
        let h = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("tok:ignored")
        );
        assert_eq!(basic_token(Some(&h)).as_deref(), Some("tok"));
        let h = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("tok")
        );
        assert_eq!(basic_token(Some(&h)).as_deref(), Some("tok"));
        assert_eq!(basic_token(Some("Bearer x")), None);
        assert_eq!(basic_token(Some("Basic !!!")), None);
        assert_eq!(basic_token(None), None);
    }

    #[test]
    fn repositories_must_stay_inside_the_base() {
        let base = tempfile::tempdir().unwrap();
        let base = base.path().canonicalize().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(outside.path().join("evil.git")).unwrap();
        std::fs::write(
            outside.path().join("evil.git/HEAD"),
            "ref: refs/heads/main\n",
        )
        .unwrap();
        std::os::unix::fs::symlink(outside.path().join("evil.git"), base.join("evil.git")).unwrap();
        std::fs::create_dir(base.join("good.git")).unwrap();
        std::fs::write(base.join("good.git/HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::create_dir(base.join("empty.git")).unwrap();
        assert!(repository(&base, "good").is_some());
        assert!(
            repository(&base, "evil").is_none(),
            "symlink out of the base"
        );
        assert!(repository(&base, "empty").is_none(), "not a repository");
        assert!(repository(&base, "missing").is_none());
    }
}
