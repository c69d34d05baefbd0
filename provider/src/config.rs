//! The provider block: `proxmox { ... }` with an environment-variable fallback for every
//! setting, checked at validate time (known values) and at configure time (with env values),
//! each error naming the attribute — and the variable, when the value came from one.

use infraflux_proxmox::{self as proxmox, Auth, TlsTrust};
use tfplugin::framework::validate::int_between;
use tfplugin::{Attribute, AttributePath, Block, Diagnostics, NestedBlock, Nesting, Schema, Value};

/// Attribute → environment variable, in schema order.
const ENV: &[(&str, &str)] = &[
    ("endpoint", "PROXMOX_VE_ENDPOINT"),
    ("api_token", "PROXMOX_VE_API_TOKEN"),
    ("username", "PROXMOX_VE_USERNAME"),
    ("password", "PROXMOX_VE_PASSWORD"),
    ("ca_cert_pem", "PROXMOX_VE_CA_CERT"),
    ("tls_fingerprint_sha256", "PROXMOX_VE_TLS_FINGERPRINT"),
    ("insecure", "PROXMOX_VE_INSECURE"),
    (
        "max_parallel_tasks_per_node",
        "PROXMOX_VE_MAX_PARALLEL_TASKS",
    ),
];

const DEFAULT_PARALLEL_TASKS: i64 = 4;
const VMID_MIN: i64 = 100;
const VMID_MAX: i64 = 999_999_999;

pub fn schema() -> Schema {
    let env = |attr: &str| ENV.iter().find(|(a, _)| *a == attr).map_or("", |(_, e)| e);
    let d = |attr: &str, text: &str| format!("{text} Environment variable: `{}`.", env(attr));
    let proxmox =
        Block::new()
            .description("How to reach the Proxmox VE API. Needed only by `infraflux_proxmox_vm`.")
            .attr(
                Attribute::string("endpoint")
                    .optional()
                    .description(d("endpoint", "API URL, e.g. `https://pve.example.com:8006`. Must be `https://`.")),
            )
            .attr(Attribute::string("api_token").optional().sensitive().description(d(
                "api_token",
                "API token as `user@realm!tokenid=secret`. Excludes `username`/`password`.",
            )))
            .attr(
                Attribute::string("username")
                    .optional()
                    .description(d("username", "User for ticket login, as `user@realm`; needs `password`.")),
            )
            .attr(
                Attribute::string("password")
                    .optional()
                    .sensitive()
                    .description(d("password", "Password for ticket login.")),
            )
            .attr(Attribute::string("ca_cert_pem").optional().description(d(
                "ca_cert_pem",
                "PEM of the CA that signed the API's certificate (for a self-signed Proxmox VE).",
            )))
            .attr(Attribute::string("tls_fingerprint_sha256").optional().description(d(
                "tls_fingerprint_sha256",
                "SHA-256 fingerprint of the API's certificate, as 32 hex bytes (`AB:CD:…`); pins it instead of a CA.",
            )))
            .attr(
                Attribute::bool("insecure").optional().description(d(
                    "insecure",
                    "Skip TLS verification. Prefer `ca_cert_pem` or `tls_fingerprint_sha256`.",
                )),
            )
            .attr(Attribute::number("max_parallel_tasks_per_node").optional().validate(int_between(1, 64)).description(
                d("max_parallel_tasks_per_node", "Concurrent clone/create tasks per node within one run. Default 4."),
            ))
            .block(NestedBlock::new(
                "vm_id_range",
                Nesting::Single,
                Block::new()
                    .description("Range new VM ids are allocated from.")
                    .attr(
                        Attribute::number("min")
                            .required()
                            .validate(int_between(VMID_MIN, VMID_MAX))
                            .description("Lowest id."),
                    )
                    .attr(
                        Attribute::number("max")
                            .required()
                            .validate(int_between(VMID_MIN, VMID_MAX))
                            .description("Highest id."),
                    ),
            ));
    Schema::new(
        Block::new()
            .description(
                "The InfraFlux provider: Proxmox VE virtual machines, a Talos Linux cluster, Cilium and Argo CD.",
            )
            .block(NestedBlock::new("proxmox", Nesting::Single, proxmox)),
    )
}

/// A setting's value from the block, else from its variable; with where it came from.
struct Field {
    value: Value,
    path: AttributePath,
    env: Option<&'static str>,
}

impl Field {
    fn place(&self) -> String {
        match self.env {
            Some(e) => format!("{} (from {e})", self.path),
            None => self.path.to_string(),
        }
    }
    fn str(&self) -> Option<&str> {
        self.value.as_str()
    }
}

fn field(block: &Value, attr: &'static str, env: &dyn Fn(&str) -> Option<String>) -> Field {
    let path = AttributePath::attr("proxmox").push_attr(attr);
    let v = block.attr(attr);
    if !v.is_null() {
        return Field {
            value: v.clone(),
            path,
            env: None,
        };
    }
    let var = ENV.iter().find(|(a, _)| *a == attr).map(|(_, e)| *e);
    match var.and_then(|e| env(e).filter(|s| !s.is_empty()).map(|s| (e, s))) {
        Some((e, s)) => {
            let value = match attr {
                "insecure" => Value::Bool(matches!(s.as_str(), "1" | "true" | "TRUE" | "True")),
                "max_parallel_tasks_per_node" => {
                    s.parse::<i64>().map(Value::int).unwrap_or(Value::String(s))
                }
                _ => Value::String(s),
            };
            Field {
                value,
                path,
                env: Some(e),
            }
        }
        None => Field {
            value: Value::Null,
            path,
            env: None,
        },
    }
}

/// Checks at `terraform validate`: only what the block itself says (env is read at configure).
pub fn validate(config: &Value, diags: &mut Diagnostics) {
    let _ = check(config, &|_| None, diags);
}

/// Resolve the block plus environment into settings. `Ok(None)` means no Proxmox endpoint is
/// configured at all (fine until a Proxmox resource needs one).
pub fn resolve(
    config: &Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Option<proxmox::Settings>, Diagnostics), Diagnostics> {
    let mut diags = Diagnostics::new();
    let settings = check(config, env, &mut diags);
    if diags.has_errors() {
        Err(diags)
    } else {
        Ok((settings, diags))
    }
}

fn check(
    config: &Value,
    env: &dyn Fn(&str) -> Option<String>,
    diags: &mut Diagnostics,
) -> Option<proxmox::Settings> {
    let block = config.attr("proxmox");
    let f = |a| field(block, a, env);
    let (endpoint, token, user, pass) =
        (f("endpoint"), f("api_token"), f("username"), f("password"));
    let (ca, fp, insecure, par) = (
        f("ca_cert_pem"),
        f("tls_fingerprint_sha256"),
        f("insecure"),
        f("max_parallel_tasks_per_node"),
    );
    let any_unknown = [&endpoint, &token, &user, &pass, &ca, &fp, &insecure, &par]
        .iter()
        .any(|x| x.value.is_unknown());

    if let Some(e) = endpoint.str()
        && let Err(why) = check_endpoint(e)
    {
        diags.error_at(
            endpoint.path.clone(),
            "Invalid Proxmox VE endpoint",
            format!("{}: {why}", endpoint.place()),
        );
    }
    let token_parts = token.str().map(|t| (t, parse_token(t)));
    if let Some((_, Err(why))) = &token_parts {
        diags.error_at(
            token.path.clone(),
            "Invalid Proxmox VE API token",
            format!("{}: {why}", token.place()),
        );
    }
    if token.str().is_some() && (user.str().is_some() || pass.str().is_some()) {
        diags.error_at(
            token.path.clone(),
            "Conflicting Proxmox VE credentials",
            format!(
                "{} and {} are both set: use an API token or a username and password, not both.",
                token.place(),
                user.place()
            ),
        );
    }
    if user.str().is_some() != pass.str().is_some() && token.str().is_none() && !any_unknown {
        let missing = if user.str().is_some() { &pass } else { &user };
        diags.error_at(
            missing.path.clone(),
            "Incomplete Proxmox VE login",
            format!(
                "Ticket login needs both username and password; set {}.",
                missing.path
            ),
        );
    }
    if let Some(u) = user.str()
        && !u.contains('@')
    {
        diags.error_at(
            user.path.clone(),
            "Invalid Proxmox VE user",
            format!(
                "{}: {u:?} has no realm; write it as `root@pam` or `terraform@pve`.",
                user.place()
            ),
        );
    }
    let trust_set: Vec<&Field> = [&ca, &fp]
        .into_iter()
        .filter(|x| x.str().is_some())
        .chain((insecure.value.as_bool() == Some(true)).then_some(&insecure))
        .collect();
    if trust_set.len() > 1 {
        diags.error_at(
            trust_set[1].path.clone(),
            "Conflicting TLS settings",
            format!(
                "Set only one of ca_cert_pem, tls_fingerprint_sha256 and insecure (found {}).",
                trust_set
                    .iter()
                    .map(|x| x.place())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    let fingerprint = fp.str().map(|s| (s, parse_fingerprint(s)));
    if let Some((_, Err(why))) = &fingerprint {
        diags.error_at(
            fp.path.clone(),
            "Invalid TLS fingerprint",
            format!("{}: {why}", fp.place()),
        );
    }
    if let Some(pem) = ca.str()
        && !pem.contains("-----BEGIN CERTIFICATE-----")
    {
        diags.error_at(
            ca.path.clone(),
            "Invalid CA certificate",
            format!(
                "{}: expected a PEM certificate (-----BEGIN CERTIFICATE-----).",
                ca.place()
            ),
        );
    }
    if insecure.value.as_bool() == Some(true) {
        diags.warning_at(
            insecure.path.clone(),
            "TLS verification disabled",
            "insecure = true accepts any certificate, so credentials can be intercepted. Pin the certificate with ca_cert_pem or tls_fingerprint_sha256 instead.",
        );
    }
    if let (Value::String(s), Some(e)) = (&par.value, par.env) {
        diags.error_at(
            par.path.clone(),
            "Invalid number",
            format!("{e}={s:?} is not a whole number."),
        );
    }
    let range = block.attr("vm_id_range");
    let (lo, hi) = (range.attr("min").as_i64(), range.attr("max").as_i64());
    if let (Some(lo), Some(hi)) = (lo, hi)
        && lo > hi
    {
        diags.error_at(
            AttributePath::attr("proxmox")
                .push_attr("vm_id_range")
                .push_attr("min"),
            "Empty VM id range",
            format!("min ({lo}) is greater than max ({hi}); swap them."),
        );
    }

    if diags.has_errors() || any_unknown {
        return None;
    }
    let endpoint = endpoint.str()?.trim_end_matches('/').to_owned();
    let auth = match (&token_parts, user.str(), pass.str()) {
        (Some((_, Ok((id, secret)))), _, _) => Auth::Token {
            id: id.clone(),
            secret: secret.clone(),
        },
        (None, Some(u), Some(p)) => Auth::Ticket {
            username: u.to_owned(),
            password: p.to_owned(),
        },
        _ => {
            diags.error_at(
                AttributePath::attr("proxmox").push_attr("api_token"),
                "Missing Proxmox VE credentials",
                "Set proxmox.api_token (or PROXMOX_VE_API_TOKEN), or proxmox.username and proxmox.password.",
            );
            return None;
        }
    };
    let tls = match (ca.str(), fingerprint, insecure.value.as_bool()) {
        (Some(pem), _, _) => TlsTrust::CaPem(pem.to_owned()),
        (_, Some((_, Ok(bytes))), _) => TlsTrust::Fingerprint(bytes),
        (_, _, Some(true)) => TlsTrust::Insecure,
        _ => TlsTrust::SystemRoots,
    };
    let clamp = |x: i64| u32::try_from(x).unwrap_or(u32::MAX);
    Some(proxmox::Settings {
        endpoint,
        auth,
        tls,
        max_parallel_tasks_per_node: usize::try_from(
            par.value.as_i64().unwrap_or(DEFAULT_PARALLEL_TASKS),
        )
        .unwrap_or(4),
        vm_id_range: (clamp(lo.unwrap_or(VMID_MIN)), clamp(hi.unwrap_or(VMID_MAX))),
    })
}

fn check_endpoint(e: &str) -> Result<(), String> {
    let rest = e.strip_prefix("https://").ok_or_else(|| {
        format!("{e:?} must start with https:// (Proxmox VE serves its API over TLS only).")
    })?;
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    if host.is_empty() {
        return Err(format!(
            "{e:?} has no host; write it like https://pve.example.com:8006."
        ));
    }
    Ok(())
}

/// `user@realm!tokenid=secret` → (`user@realm!tokenid`, `secret`).
fn parse_token(t: &str) -> Result<(String, String), String> {
    let shape = "write it as user@realm!tokenid=secret (as shown when the token was created)";
    let (id, secret) = t
        .split_once('=')
        .ok_or_else(|| format!("no '=' before the secret; {shape}."))?;
    let (user, tokenid) = id
        .split_once('!')
        .ok_or_else(|| format!("no '!' before the token id; {shape}."))?;
    if !user.contains('@') || tokenid.is_empty() || secret.is_empty() {
        return Err(format!("incomplete token; {shape}."));
    }
    Ok((id.to_owned(), secret.to_owned()))
}

fn parse_fingerprint(s: &str) -> Result<[u8; 32], String> {
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    let bad = || {
        format!(
            "{s:?} is not a SHA-256 fingerprint; write 32 hex bytes like AB:CD:… (shown in the Proxmox VE web UI under Certificates)."
        )
    };
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, Value)]) -> Value {
        Value::object([(
            "proxmox",
            Value::object(pairs.iter().map(|(k, v)| (*k, v.clone()))),
        )])
    }
    fn no_env(_: &str) -> Option<String> {
        None
    }
    fn paths(d: &Diagnostics) -> Vec<String> {
        d.iter()
            .filter_map(|d| d.path.as_ref().map(ToString::to_string))
            .collect()
    }

    #[test]
    fn token_config_resolves() {
        let c = cfg(&[
            ("endpoint", "https://pve:8006/".into()),
            ("api_token", "tf@pve!ci=abc".into()),
        ]);
        let (s, w) = resolve(&c, &no_env).unwrap();
        let s = s.unwrap();
        assert_eq!(s.endpoint, "https://pve:8006");
        assert_eq!(
            s.auth,
            Auth::Token {
                id: "tf@pve!ci".into(),
                secret: "abc".into()
            }
        );
        assert_eq!(s.tls, TlsTrust::SystemRoots);
        assert!(w.is_empty());
        assert!(!format!("{s:?}").contains("abc"), "secrets never in Debug");
    }

    #[test]
    fn env_fallback_and_its_errors_name_the_variable() {
        let env = |k: &str| match k {
            "PROXMOX_VE_ENDPOINT" => Some("http://pve:8006".to_owned()),
            "PROXMOX_VE_USERNAME" => Some("root@pam".to_owned()),
            "PROXMOX_VE_PASSWORD" => Some("pw".to_owned()),
            _ => None,
        };
        let d = resolve(&cfg(&[]), &env).unwrap_err();
        let e = d.iter().next().unwrap();
        assert_eq!(e.path.as_ref().unwrap().to_string(), "proxmox.endpoint");
        assert!(
            e.detail.contains("PROXMOX_VE_ENDPOINT") && e.detail.contains("https://"),
            "{}",
            e.detail
        );
        // The block wins over the environment.
        let (s, _) = resolve(&cfg(&[("endpoint", "https://x".into())]), &env).unwrap();
        assert_eq!(
            s.unwrap().auth,
            Auth::Ticket {
                username: "root@pam".into(),
                password: "pw".into()
            }
        );
    }

    #[test]
    fn bad_input_names_the_attribute() {
        let cases: &[(&[(&str, Value)], &str)] = &[
            (&[("api_token", "nonsense".into())], "proxmox.api_token"),
            (
                &[
                    ("api_token", "a@pve!t=s".into()),
                    ("username", "root@pam".into()),
                ],
                "proxmox.api_token",
            ),
            (&[("username", "root@pam".into())], "proxmox.password"),
            (
                &[("username", "root".into()), ("password", "x".into())],
                "proxmox.username",
            ),
            (
                &[("tls_fingerprint_sha256", "AB:CD".into())],
                "proxmox.tls_fingerprint_sha256",
            ),
            (
                &[("ca_cert_pem", "x".into()), ("insecure", true.into())],
                "proxmox.insecure",
            ),
            (
                &[("ca_cert_pem", "not a cert".into())],
                "proxmox.ca_cert_pem",
            ),
        ];
        for (pairs, want) in cases {
            let mut d = Diagnostics::new();
            validate(&cfg(pairs), &mut d);
            assert!(d.has_errors(), "{pairs:?}");
            assert!(
                paths(&d).iter().any(|p| p == want),
                "{pairs:?}: {:?}",
                paths(&d)
            );
        }
        let mut d = Diagnostics::new();
        let range = Value::object([("min", Value::int(500)), ("max", Value::int(200))]);
        validate(&cfg(&[("vm_id_range", range)]), &mut d);
        assert_eq!(paths(&d), vec!["proxmox.vm_id_range.min"]);
    }

    #[test]
    fn fingerprint_and_insecure() {
        let fp = (0..32)
            .map(|i| format!("{i:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        let c = cfg(&[
            ("endpoint", "https://x".into()),
            ("api_token", "a@pve!t=s".into()),
            ("tls_fingerprint_sha256", fp.into()),
        ]);
        let s = resolve(&c, &no_env).unwrap().0.unwrap();
        assert!(matches!(s.tls, TlsTrust::Fingerprint(b) if b[31] == 31));
        let c = cfg(&[
            ("endpoint", "https://x".into()),
            ("api_token", "a@pve!t=s".into()),
            ("insecure", true.into()),
        ]);
        let (s, w) = resolve(&c, &no_env).unwrap();
        assert_eq!(s.unwrap().tls, TlsTrust::Insecure);
        assert_eq!(w.iter().count(), 1, "insecure warns");
    }

    #[test]
    fn nothing_configured_is_fine_until_needed() {
        assert_eq!(resolve(&Value::Null, &no_env).unwrap().0, None);
        let unknown = cfg(&[("endpoint", Value::Unknown)]);
        let mut d = Diagnostics::new();
        validate(&unknown, &mut d);
        assert!(!d.has_errors());
    }

    #[test]
    fn docs_cover_every_setting() {
        let docs = include_str!("../../docs/index.md");
        for (attr, env) in ENV {
            assert!(
                docs.contains(&format!("`{attr}`")) && docs.contains(env),
                "docs/index.md misses {attr} / {env}"
            );
        }
        for attr in ["vm_id_range", "`min`", "`max`"] {
            assert!(docs.contains(attr), "docs/index.md misses {attr}");
        }
    }

    #[test]
    fn schema_is_well_formed() {
        assert_eq!(
            tfplugin::framework::schema::check_schema(&schema().block, ""),
            Vec::<String>::new()
        );
    }
}
