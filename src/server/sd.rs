//! Service discovery answered from HostDB: `GET /v1/sd/prometheus` is a Prometheus
//! `http_sd_configs` endpoint listing every container the integrations converge (the same
//! target groups and labels as the file_sd file `kloud sync prometheus` writes).
//!
//! The query parameters are parsed here; the route itself lives with the others in `api.rs`.

use kloud_provider_prometheus::{http_sd_body, DEFAULT_PORT};

use super::error::ApiError;
use crate::hostdb::error::StoreError;
use crate::hostdb::store::Store;

/// The query parameters `GET /v1/sd/prometheus` accepts (besides `index` and `wait`).
pub const PROMETHEUS_PARAMS: [&str; 2] = ["port", "owner"];

/// What to list: the exporter port every target gets, and optionally one owner's hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrometheusQuery {
    pub port: u16,
    pub owner: Option<String>,
}

impl PrometheusQuery {
    /// From the already split `port` and `owner` values.
    pub fn parse(port: Option<&str>, owner: Option<&str>) -> Result<PrometheusQuery, ApiError> {
        let port = match port {
            None => DEFAULT_PORT,
            Some(s) => match s.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "`port` must be an integer from 1 to 65535, got `{s}`"
                    )))
                }
            },
        };
        Ok(PrometheusQuery {
            port,
            owner: owner.map(str::to_string),
        })
    }
}

/// The http_sd JSON body: one target group per container with an address.
pub fn prometheus_body(store: &dyn Store, q: &PrometheusQuery) -> Result<String, StoreError> {
    let hosts = crate::hostdb::records::host_records(store, q.owner.as_deref())?;
    Ok(http_sd_body(&hosts, q.port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_defaults_to_node_exporter_and_rejects_out_of_range() {
        assert_eq!(
            PrometheusQuery::parse(None, None).unwrap(),
            PrometheusQuery {
                port: 9100,
                owner: None
            }
        );
        assert_eq!(
            PrometheusQuery::parse(Some("9"), Some("dc1")).unwrap(),
            PrometheusQuery {
                port: 9,
                owner: Some("dc1".into())
            }
        );
        for bad in ["0", "65536", "-1", "x", ""] {
            let e = PrometheusQuery::parse(Some(bad), None).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{bad}");
        }
    }
}
