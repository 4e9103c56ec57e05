//! The authorizer: parses `WWW-Authenticate` challenges, answers basic ones with the stored
//! credentials, and gets bearer tokens from the realm the registry names, cached per scope.
//! With credentials a token is asked for the OAuth2 way first (distribution's token spec: a POST
//! with `grant_type=password`, or `refresh_token` for an identity token), falling back to the
//! GET with basic auth for token servers without OAuth, as containerd does.

use base64::Engine as _;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::credentials::Credentials;
use crate::error::{network, Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lower-case: "basic" or "bearer".
    pub scheme: String,
    pub params: HashMap<String, String>,
}

/// Parses a `WWW-Authenticate` value: `Bearer realm="https://a/token",service="reg",scope="x"`.
/// Several challenges may be listed; each starts with a scheme token.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let s = header.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && (s[*i] == b' ' || s[*i] == b'\t' || s[*i] == b',') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| -> String {
        let st = *i;
        while *i < s.len() && !matches!(s[*i], b' ' | b'\t' | b',' | b'=') {
            *i += 1;
        }
        header[st..*i].to_string()
    };
    loop {
        skip_ws(&mut i);
        if i >= s.len() {
            break;
        }
        let t = token(&mut i);
        if t.is_empty() {
            i += 1;
            continue;
        }
        // "key=value" belongs to the current challenge; a bare token starts a new one.
        let mut j = i;
        while j < s.len() && s[j] == b' ' {
            j += 1;
        }
        if j < s.len() && s[j] == b'=' && !out.is_empty() {
            i = j + 1;
            while i < s.len() && s[i] == b' ' {
                i += 1;
            }
            let value = if i < s.len() && s[i] == b'"' {
                i += 1;
                let mut v = String::new();
                while i < s.len() && s[i] != b'"' {
                    if s[i] == b'\\' && i + 1 < s.len() {
                        i += 1;
                    }
                    let ch = header[i..].chars().next().unwrap_or(' ');
                    v.push(ch);
                    i += ch.len_utf8();
                }
                i += 1;
                v
            } else {
                token(&mut i)
            };
            out.last_mut()
                .expect("challenge")
                .params
                .insert(t.to_ascii_lowercase(), value);
        } else {
            out.push(Challenge {
                scheme: t.to_ascii_lowercase(),
                params: HashMap::new(),
            });
        }
    }
    out
}

enum Mode {
    /// Not challenged yet (or the registry wants no auth).
    Unknown,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

pub struct Authorizer {
    creds: Option<Credentials>,
    /// The identity token, or the refresh token a token server issued for the password.
    refresh: Mutex<Option<String>>,
    mode: Mutex<Mode>,
    /// Scope string → (token, expiry).
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl Authorizer {
    pub fn new(creds: Option<Credentials>) -> Authorizer {
        Authorizer {
            refresh: Mutex::new(creds.as_ref().and_then(|c| c.identity_token.clone())),
            creds,
            mode: Mutex::new(Mode::Unknown),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    fn basic_value(&self) -> Option<String> {
        self.creds
            .as_ref()
            .filter(|c| !c.password.is_empty())
            .map(|c| {
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD
                        .encode(format!("{}:{}", c.username, c.password))
                )
            })
    }

    /// The Authorization header for a request needing `scopes`, from what is known so far.
    pub fn header(
        &self,
        http: &reqwest::blocking::Client,
        scopes: &[String],
    ) -> Result<Option<String>> {
        let (realm, service) = match &*self.mode.lock().unwrap() {
            Mode::Unknown => return Ok(None),
            Mode::Basic => return Ok(self.basic_value()),
            Mode::Bearer { realm, service } => (realm.clone(), service.clone()),
        };
        let key = scopes.join(" ");
        if let Some((t, exp)) = self.tokens.lock().unwrap().get(&key) {
            if *exp > Instant::now() {
                return Ok(Some(format!("Bearer {t}")));
            }
        }
        let (token, ttl) = self.fetch_token(http, &realm, service.as_deref(), scopes)?;
        self.tokens
            .lock()
            .unwrap()
            .insert(key, (token.clone(), Instant::now() + ttl));
        Ok(Some(format!("Bearer {token}")))
    }

    /// Learns from a 401's challenges. Returns false when nothing new can be tried.
    pub fn challenged(&self, header: Option<&str>) -> Result<bool> {
        let challenges = header.map(parse_challenges).unwrap_or_default();
        let mut mode = self.mode.lock().unwrap();
        if let Some(c) = challenges.iter().find(|c| c.scheme == "bearer") {
            let realm = c
                .params
                .get("realm")
                .cloned()
                .ok_or_else(|| Error::Protocol("bearer challenge without a realm".into()))?;
            let was_bearer = matches!(&*mode, Mode::Bearer { .. });
            *mode = Mode::Bearer {
                realm,
                service: c.params.get("service").cloned(),
            };
            if was_bearer {
                // Our token was refused (expired or too narrow): fetch a fresh one once.
                self.tokens.lock().unwrap().clear();
            }
            return Ok(!was_bearer || c.params.contains_key("error"));
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            let was_basic = matches!(&*mode, Mode::Basic);
            *mode = Mode::Basic;
            return Ok(!was_basic && self.creds.is_some());
        }
        Ok(false)
    }

    pub fn has_credentials(&self) -> bool {
        self.creds.is_some()
    }

    /// A refresh token the token server issued for our password (docker keeps it as the
    /// login's identity token).
    pub fn refresh_token(&self) -> Option<String> {
        let t = self.refresh.lock().unwrap().clone();
        t.filter(|t| self.creds.as_ref().and_then(|c| c.identity_token.as_ref()) != Some(t))
    }

    fn fetch_token(
        &self,
        http: &reqwest::blocking::Client,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<(String, Duration)> {
        let realm = reqwest::Url::parse(realm)
            .map_err(|e| Error::Protocol(format!("token realm {realm:?}: {e}")))?;
        if self.creds.is_some() {
            if let Some(t) = self.oauth_token(http, &realm, service, scopes)? {
                return Ok(t);
            }
        }
        let mut url = realm;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scopes {
                q.append_pair("scope", s);
            }
        }
        let mut req = http.get(url);
        if let Some(b) = self.basic_value() {
            req = req.header(reqwest::header::AUTHORIZATION, b);
        }
        let resp = req.send().map_err(|e| network("token request", e))?;
        self.token_response(resp)
    }

    /// The OAuth2 POST; `None` when the token server does not take it and a password can still
    /// go the GET way (GCR answers 404, Artifactory 401, ACR 400, others 405).
    fn oauth_token(
        &self,
        http: &reqwest::blocking::Client,
        realm: &reqwest::Url,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<Option<(String, Duration)>> {
        let Some(c) = &self.creds else {
            return Ok(None);
        };
        let refresh = self.refresh.lock().unwrap().clone();
        let scope = scopes.join(" ");
        let mut form: Vec<(&str, &str)> = vec![("client_id", "berth"), ("scope", &scope)];
        if let Some(s) = service {
            form.push(("service", s));
        }
        match &refresh {
            Some(t) => form.extend([
                ("grant_type", "refresh_token"),
                ("refresh_token", t.as_str()),
            ]),
            None => form.extend([
                ("grant_type", "password"),
                ("username", c.username.as_str()),
                ("password", c.password.as_str()),
                ("access_type", "offline"),
            ]),
        }
        let resp = http
            .post(realm.clone())
            .form(&form)
            .send()
            .map_err(|e| network("token request", e))?;
        let status = resp.status().as_u16();
        if matches!(status, 400 | 401 | 404 | 405) && !c.password.is_empty() {
            return Ok(None);
        }
        self.token_response(resp).map(Some)
    }

    /// A token server's answer: `token` or `access_token`, its lifetime, a refresh token.
    fn token_response(&self, resp: reqwest::blocking::Response) -> Result<(String, Duration)> {
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(Error::Unauthorized(match &self.creds {
                Some(c) if c.password.is_empty() => {
                    "unauthorized: the stored identity token was refused (log in again)".into()
                }
                Some(_) => "unauthorized: incorrect username or password".into(),
                None => "unauthorized: authentication required".into(),
            }));
        }
        if !status.is_success() {
            return Err(Error::Protocol(format!("token server answered {status}")));
        }
        let body = crate::client::read_limited(resp, 1 << 20, "token response")?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| Error::Protocol(format!("token response: {e}")))?;
        let token = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Protocol("token response holds no token".into()))?;
        if let Some(r) = v
            .get("refresh_token")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
        {
            *self.refresh.lock().unwrap() = Some(r.to_string());
        }
        // Docker's minimum lifetime is 60 s; refresh a little early.
        let secs = v
            .get("expires_in")
            .and_then(|e| e.as_u64())
            .unwrap_or(60)
            .max(60);
        Ok((token.to_string(), Duration::from_secs(secs - 10)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let v = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        );
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].scheme, "bearer");
        assert_eq!(v[0].params["realm"], "https://auth.docker.io/token");
        assert_eq!(v[0].params["scope"], "repository:library/busybox:pull,push");
        let v = parse_challenges(
            r#"Basic realm="Registry Realm", Bearer realm="x",error="insufficient_scope""#,
        );
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].params["realm"], "Registry Realm");
        assert_eq!(v[1].scheme, "bearer");
        assert_eq!(v[1].params["error"], "insufficient_scope");
        assert_eq!(parse_challenges("Basic").len(), 1);
    }
}
