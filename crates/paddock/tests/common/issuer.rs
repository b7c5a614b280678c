//! The loopback identity provider of `fixtures/oidc_issuer.py` (built on
//! joserfc): OIDC discovery and keys, introspection, and a sign-in page.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use super::python;

pub struct Issuer {
    child: Child,
    pub base: String,
}

impl Issuer {
    pub fn start() -> Self {
        let mut child = Command::new(python())
            .arg(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/oidc_issuer.py"),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = serde_json::from_str::<Value>(&line).unwrap()["port"]
            .as_u64()
            .unwrap_or_else(|| panic!("the issuer printed {line:?}"));
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    pub async fn control(&self, body: Value) -> Value {
        super::http()
            .post(format!("{}/control", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn mint(&self, claims: Value, extra: Value) -> String {
        let mut body = json!({"op": "mint", "claims": claims});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        self.control(body).await["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn stat(&self, name: &str) -> u64 {
        self.control(json!({"op": "stats"})).await[name]
            .as_u64()
            .unwrap()
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
