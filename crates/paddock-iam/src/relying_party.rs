//! paddock as an OIDC relying party, on the `openidconnect` crate:
//! discovery (the document and its key set, checked against the configured
//! issuer), the authorization URL with PKCE (S256), state and nonce, the
//! code exchange, and the ID token's signature, issuer, audience, expiry
//! and nonce. Its HTTP goes through paddock's own client (rustls, no
//! redirects followed, bounded bodies).
//!
//! The provider is discovered on first use and again when an ID token
//! names a key it does not know (rotation) — the first time at once, then
//! at most once per `REDISCOVER_MIN`, so forged key ids cannot hammer the
//! provider.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AsyncHttpClient, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, IssuerUrl, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    SignatureVerificationError, TokenResponse,
};
use tokio::sync::Mutex;

use crate::remote;

/// A rotated key is looked for again no sooner than this.
const REDISCOVER_MIN: Duration = Duration::from_secs(10);

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why a sign-in step failed: the provider could not be asked, or it (or
/// its token) said no. Neither names a secret or an endpoint's URL.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RelyingPartyError {
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Refused(String),
}

/// A failed exchange with the provider, said without its URL.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct HttpFailure(String);

/// What the browser is sent to, and what must come back with it.
pub(crate) struct Authorization {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// The claims a sign-in acts on, from a verified ID token.
pub(crate) struct Verified {
    pub email: Option<String>,
    pub email_verified: bool,
}

struct Discovered {
    client: Arc<Client>,
    /// When an unknown key last made us discover again.
    last_forced: Option<Instant>,
}

pub(crate) struct RelyingParty {
    issuer: IssuerUrl,
    client_id: ClientId,
    secret: Option<ClientSecret>,
    redirect: RedirectUrl,
    http: Http,
    discovered: Mutex<Option<Discovered>>,
}

/// The futures `openidconnect` builds borrow the client; boxing them as
/// `Send` here, where every lifetime is named, is what lets a web
/// handler await them.
type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, RelyingPartyError>> + Send + 'a>>;

/// The algorithms an ID token may be signed with: asymmetric only (an
/// HMAC keyed with the client secret would let anyone holding it mint).
const ALLOWED: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

impl RelyingParty {
    pub(crate) fn new(
        issuer: &str,
        client_id: &str,
        secret: Option<String>,
        redirect_uri: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        Ok(Self {
            issuer: IssuerUrl::new(issuer.to_owned())
                .map_err(|e| format!("iam.signin.issuer: {e}"))?,
            client_id: ClientId::new(client_id.to_owned()),
            secret: secret.map(ClientSecret::new),
            redirect: RedirectUrl::new(redirect_uri.to_owned())
                .map_err(|e| format!("the sign-in callback URL: {e}"))?,
            http: Http(remote::client(timeout)?),
            discovered: Mutex::new(None),
        })
    }

    /// The client for the provider as last discovered; discovers again
    /// when `stale` and no forced discovery happened in `REDISCOVER_MIN`.
    async fn client(&self, stale: bool) -> Result<Arc<Client>, RelyingPartyError> {
        let mut discovered = self.discovered.lock().await;
        let last_forced = discovered.as_ref().and_then(|d| d.last_forced);
        if let Some(d) = discovered.as_ref()
            && (!stale || last_forced.is_some_and(|at| at.elapsed() < REDISCOVER_MIN))
        {
            return Ok(d.client.clone());
        }
        let metadata = CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| RelyingPartyError::Unavailable(format!("OIDC discovery: {e}")))?;
        let client = Arc::new(
            CoreClient::from_provider_metadata(
                metadata,
                self.client_id.clone(),
                self.secret.clone(),
            )
            .set_redirect_uri(self.redirect.clone()),
        );
        *discovered = Some(Discovered {
            client: client.clone(),
            last_forced: if stale {
                Some(Instant::now())
            } else {
                last_forced
            },
        });
        Ok(client)
    }

    /// A fresh authorization request: state, nonce and PKCE verifier are
    /// minted here and must be kept by the caller until the browser is back.
    pub(crate) fn authorize(&self) -> Boxed<'_, Authorization> {
        Box::pin(self.authorize_inner())
    }

    async fn authorize_inner(&self) -> Result<Authorization, RelyingPartyError> {
        let client = self.client(false).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                || CsrfToken::new(paddock_secret::mint()),
                || Nonce::new(paddock_secret::mint()),
            )
            .add_scope(Scope::new("email".into()))
            .set_pkce_challenge(challenge)
            .url();
        Ok(Authorization {
            url: url.into(),
            state: state.into_secret(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.into_secret(),
        })
    }

    /// Trades the code for tokens and verifies the ID token against
    /// `nonce`.
    pub(crate) fn exchange<'a>(
        &'a self,
        code: &'a str,
        pkce_verifier: String,
        nonce: &'a str,
    ) -> Boxed<'a, Verified> {
        Box::pin(self.exchange_inner(code, pkce_verifier, nonce))
    }

    async fn exchange_inner(
        &self,
        code: &str,
        pkce_verifier: String,
        nonce: &str,
    ) -> Result<Verified, RelyingPartyError> {
        let client = self.client(false).await?;
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| RelyingPartyError::Unavailable(format!("token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(_) => RelyingPartyError::Refused(
                    "the identity provider refused the sign-in code".into(),
                ),
                other => RelyingPartyError::Unavailable(format!("token endpoint: {other}")),
            })?;
        let id_token = tokens.id_token().ok_or_else(|| {
            RelyingPartyError::Unavailable("the token endpoint sent no id_token".into())
        })?;
        let nonce = Nonce::new(nonce.to_owned());
        let verify = |client: &Client| {
            let verifier = client.id_token_verifier().set_allowed_algs(ALLOWED);
            id_token.claims(&verifier, &nonce).map(|claims| Verified {
                email: claims.email().map(|e| e.as_str().to_lowercase()),
                email_verified: claims.email_verified() == Some(true),
            })
        };
        let unknown_key = ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        );
        match verify(&client) {
            Err(e) if e == unknown_key => verify(&*self.client(true).await?),
            other => other,
        }
        .map_err(|e| match e {
            ClaimsVerificationError::InvalidNonce(_) => {
                RelyingPartyError::Refused("the ID token is not for this sign-in".into())
            }
            other => RelyingPartyError::Refused(format!("the ID token is not valid: {other}")),
        })
    }
}

/// paddock's HTTP client, as `openidconnect` calls it.
struct Http(reqwest::Client);

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = HttpFailure;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpFailure>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        send(self.0.clone(), request)
    }
}

/// One HTTP exchange for `openidconnect`, on paddock's client.
fn send(
    client: reqwest::Client,
    request: HttpRequest,
) -> Pin<Box<dyn Future<Output = Result<HttpResponse, HttpFailure>> + Send>> {
    Box::pin(async move {
        let request = reqwest::Request::try_from(request)
            .map_err(|e| HttpFailure(format!("cannot form the request: {e}")))?;
        let response = client
            .execute(request)
            .await
            .map_err(|e| HttpFailure(remote::without_url(&e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = remote::bounded_body(response)
            .await
            .map_err(|e| HttpFailure(e.to_string()))?;
        let mut out = HttpResponse::new(body);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    })
}
