//! The `provider "dns" { … }` block: which attributes it takes and how they become a
//! [`DnsConfig`]. The TSIG secret is kept out of `Debug` output.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::Name;
use kloud_provider_api::integration::{check_attributes, Attrs, ConfigError};
use kloud_provider_api::registry::{Attr, AttrType};
use serde_json::Value;

/// The provider name as written in the config.
pub const PROVIDER: &str = "dns";

/// Attributes of a `provider "dns"` block.
pub const ATTRIBUTES: &[Attr] = &[
    Attr::required("server", AttrType::String),
    Attr::required("zone", AttrType::String),
    Attr::required("key_name", AttrType::String),
    Attr::required("secret", AttrType::String),
    Attr::optional("algorithm", AttrType::String),
    Attr::optional("reverse_zone", AttrType::String),
    Attr::optional("ttl", AttrType::Number),
];

/// Default record TTL in seconds.
pub const DEFAULT_TTL: u32 = 300;

/// A TSIG secret (raw key bytes). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Decode a base64 secret, as BIND's `tsig-keygen` prints it.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = data_encoding::BASE64
            .decode(text.trim().as_bytes())
            .map_err(|_| "not valid base64".to_string())?;
        if bytes.is_empty() {
            return Err("empty".to_string());
        }
        Ok(Self(bytes))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Everything the DNS integration needs to talk to the primary server.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// `host:port` (port 53 when omitted) of the primary server that accepts updates.
    pub server: String,
    /// The forward zone, e.g. `dc1.example.internal.`.
    pub zone: Name,
    /// Reverse zone for PTR records (`40.10.in-addr.arpa.`); no PTRs are managed without it.
    pub reverse_zone: Option<Name>,
    pub key_name: Name,
    pub secret: Secret,
    pub algorithm: TsigAlgorithm,
    pub ttl: u32,
}

fn parse_zone(attrs: &Attrs<'_>, attr: &str, text: &str) -> Result<Name, ConfigError> {
    let mut name = Name::from_ascii(text.trim())
        .map_err(|e| attrs.invalid(attr, format!("not a DNS name: {e}")))?;
    if name.is_root() {
        return Err(attrs.invalid(attr, "the root zone cannot be managed"));
    }
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

/// Parse an algorithm name as BIND writes it (`hmac-sha256`).
pub fn parse_algorithm(text: &str) -> Option<TsigAlgorithm> {
    match text.trim().to_ascii_lowercase().as_str() {
        "hmac-sha256" => Some(TsigAlgorithm::HmacSha256),
        "hmac-sha384" => Some(TsigAlgorithm::HmacSha384),
        "hmac-sha512" => Some(TsigAlgorithm::HmacSha512),
        _ => None,
    }
}

impl DnsConfig {
    /// Build from a provider block's evaluated attributes. `base_dir` is unused (no paths) but
    /// kept so every integration is constructed the same way.
    pub fn from_block(
        attrs: &BTreeMap<String, Value>,
        _base_dir: &Path,
    ) -> Result<Self, Vec<ConfigError>> {
        check_attributes(PROVIDER, ATTRIBUTES, attrs)?;
        let a = Attrs::new(PROVIDER, attrs);
        let one = |e: ConfigError| vec![e];
        let server = a.str("server").map_err(one)?;
        if server.trim().is_empty() {
            return Err(vec![a.invalid("server", "empty")]);
        }
        let zone = parse_zone(&a, "zone", &a.str("zone").map_err(one)?).map_err(one)?;
        let reverse_zone = match a.opt_str("reverse_zone").map_err(one)? {
            Some(z) => {
                let z = parse_zone(&a, "reverse_zone", &z).map_err(one)?;
                let arpa = Name::from_ascii("arpa.")
                    .map_err(|e| one(a.invalid("reverse_zone", e.to_string())))?;
                if !arpa.zone_of(&z) {
                    return Err(vec![a.invalid(
                        "reverse_zone",
                        "must be under `in-addr.arpa` or `ip6.arpa`",
                    )]);
                }
                Some(z)
            }
            None => None,
        };
        let key_name = Name::from_ascii(a.str("key_name").map_err(one)?.trim())
            .map_err(|e| vec![a.invalid("key_name", format!("not a DNS name: {e}"))])?;
        let secret = Secret::from_base64(&a.str("secret").map_err(one)?)
            .map_err(|e| vec![a.invalid("secret", format!("the TSIG secret is {e}"))])?;
        let algorithm = match a.opt_str("algorithm").map_err(one)? {
            None => TsigAlgorithm::HmacSha256,
            Some(text) => parse_algorithm(&text).ok_or_else(|| {
                vec![a.invalid(
                    "algorithm",
                    format!("`{text}` is not one of hmac-sha256, hmac-sha384, hmac-sha512"),
                )]
            })?,
        };
        let ttl = match a.opt_u64("ttl").map_err(one)? {
            None => DEFAULT_TTL,
            Some(t) if t > 0 && t <= i32::MAX as u64 => t as u32,
            Some(_) => return Err(vec![a.invalid("ttl", "must be between 1 and 2147483647")]),
        };
        Ok(Self {
            server,
            zone,
            reverse_zone,
            key_name,
            secret,
            algorithm,
            ttl,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn block(v: Value) -> BTreeMap<String, Value> {
        v.as_object()
            .map(|m| m.clone().into_iter().collect())
            .unwrap_or_default()
    }

    #[test]
    fn parses_a_full_block_and_hides_the_secret() {
        let cfg = DnsConfig::from_block(
            &block(json!({
                "server": "127.0.0.1:5353", "zone": "Dc1.Example.Internal",
                "key_name": "kloud", "secret": "c2VjcmV0LWtleS1ieXRlcw==",
                "reverse_zone": "40.10.in-addr.arpa", "ttl": 60
            })),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(cfg.zone.to_string(), "dc1.example.internal.");
        assert_eq!(cfg.ttl, 60);
        assert_eq!(cfg.algorithm, TsigAlgorithm::HmacSha256);
        assert_eq!(cfg.secret.bytes(), b"secret-key-bytes");
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("c2VjcmV0"), "{dbg}");
        assert!(!dbg.contains("secret-key-bytes"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
    }

    #[test]
    fn rejects_bad_values() {
        let base = json!({"server": "s:53", "zone": "z.test", "key_name": "k", "secret": "a2V5"});
        let with = |k: &str, v: Value| {
            let mut b = block(base.clone());
            b.insert(k.to_string(), v);
            DnsConfig::from_block(&b, Path::new(".")).unwrap_err()
        };
        assert!(matches!(
            with("secret", json!("%%%"))[0],
            ConfigError::Invalid { .. }
        ));
        assert!(matches!(
            with("algorithm", json!("hmac-md5"))[0],
            ConfigError::Invalid { .. }
        ));
        assert!(matches!(
            with("reverse_zone", json!("example.com"))[0],
            ConfigError::Invalid { .. }
        ));
        assert!(matches!(
            with("ttl", json!(0))[0],
            ConfigError::Invalid { .. }
        ));
        assert!(matches!(
            with("colour", json!("red"))[0],
            ConfigError::UnknownAttribute { .. }
        ));
        let mut missing = block(base);
        missing.remove("zone");
        assert!(matches!(
            DnsConfig::from_block(&missing, Path::new(".")).unwrap_err()[0],
            ConfigError::MissingAttribute { .. }
        ));
    }
}
