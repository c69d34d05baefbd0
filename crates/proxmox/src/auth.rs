//! Credentials: an API token header, or a ticket login whose cookie and CSRF token are
//! renewed before they expire and after PVE refuses them. Header values are marked sensitive
//! and no type here prints a secret.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use serde_json::Value;

use crate::client::Client;
use crate::error::Error;
use crate::settings::Auth;

/// A ticket session. Tickets live two hours; we renew well before.
pub(crate) struct Session {
    cookie: HeaderValue,
    csrf: HeaderValue,
    at: Instant,
}

const TICKET_RENEW: Duration = Duration::from_secs(90 * 60);

pub(crate) enum Credentials {
    Token {
        id: String,
        header: HeaderValue,
    },
    Ticket {
        username: String,
        password: String,
        session: tokio::sync::Mutex<Option<Arc<Session>>>,
    },
}

impl Credentials {
    pub(crate) fn new(auth: &Auth) -> Result<Self, Error> {
        Ok(match auth {
            Auth::Token { id, secret } => Credentials::Token {
                id: id.clone(),
                header: sensitive(&format!("PVEAPIToken={id}={secret}"), "API token")?,
            },
            Auth::Ticket { username, password } => Credentials::Ticket {
                username: username.clone(),
                password: password.clone(),
                session: tokio::sync::Mutex::new(None),
            },
        })
    }

    pub(crate) fn is_ticket(&self) -> bool {
        matches!(self, Credentials::Ticket { .. })
    }

    pub(crate) fn who(&self) -> &str {
        match self {
            Credentials::Token { id, .. } => id,
            Credentials::Ticket { username, .. } => username,
        }
    }
}

fn sensitive(s: &str, what: &str) -> Result<HeaderValue, Error> {
    let mut h = HeaderValue::from_str(s).map_err(|_| {
        Error::Config(format!(
            "the {what} contains characters not allowed in an HTTP header"
        ))
    })?;
    h.set_sensitive(true);
    Ok(h)
}

impl Client {
    pub(crate) async fn authorize(
        &self,
        rb: reqwest::RequestBuilder,
        write: bool,
    ) -> Result<reqwest::RequestBuilder, Error> {
        match &self.inner.creds {
            Credentials::Token { header, .. } => Ok(rb.header("Authorization", header.clone())),
            Credentials::Ticket { .. } => {
                let s = self.session().await?;
                let rb = rb.header("Cookie", s.cookie.clone());
                // CSRF protection applies to writes only.
                Ok(if write {
                    rb.header("CSRFPreventionToken", s.csrf.clone())
                } else {
                    rb
                })
            }
        }
    }

    pub(crate) async fn drop_session(&self) {
        if let Credentials::Ticket { session, .. } = &self.inner.creds {
            *session.lock().await = None;
        }
    }

    /// The current ticket, logging in if there is none or it is old.
    async fn session(&self) -> Result<Arc<Session>, Error> {
        let Credentials::Ticket {
            username,
            password,
            session,
        } = &self.inner.creds
        else {
            return Err(Error::Config("no ticket credentials".into()));
        };
        let mut slot = session.lock().await;
        if let Some(s) = slot.as_ref().filter(|s| s.at.elapsed() < TICKET_RENEW) {
            return Ok(s.clone());
        }
        let action = "POST /access/ticket";
        let form = [
            ("username", username.as_str()),
            ("password", password.as_str()),
        ];
        let resp = self
            .inner
            .http
            .post(format!("{}/access/ticket", self.inner.base))
            .form(&form)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let data = self.decode(resp, action).await.map_err(|(e, _)| e)?;
        let field = |k: &str| data.get(k).and_then(Value::as_str).map(str::to_owned);
        let (Some(ticket), Some(csrf)) = (field("ticket"), field("CSRFPreventionToken")) else {
            return Err(Error::Protocol {
                action: action.into(),
                reason: "no ticket in the answer".into(),
            });
        };
        let s = Arc::new(Session {
            cookie: sensitive(&format!("PVEAuthCookie={ticket}"), "ticket")?,
            csrf: sensitive(&csrf, "CSRF token")?,
            at: Instant::now(),
        });
        *slot = Some(s.clone());
        Ok(s)
    }
}

#[cfg(test)]
impl Client {
    /// Replace the ticket with one PVE will refuse, as after expiry or a restart of the realm.
    pub(crate) async fn spoil_ticket(&self) {
        if let Credentials::Ticket { session, .. } = &self.inner.creds {
            let bad = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("x"));
            *session.lock().await = Some(Arc::new(Session {
                cookie: bad("PVEAuthCookie=PVE:root@pam:00000000::expired"),
                csrf: bad("00000000:expired"),
                at: Instant::now(),
            }));
        }
    }
}
