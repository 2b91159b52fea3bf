//! PostgreSQL over TLS against the test cluster (scripts/setup/postgres.sh gives it a server
//! certificate from a test CA): `require` and `verify-full` connect and work; `verify-full`
//! against a wrong host name or a wrong CA fails with a clear error; passwords never show.

use kloud::hostdb::{Store, StoreError};

/// (URL with `sslmode=verify-full&sslrootcert=CA`, the CA, another CA), or `None` (skip).
fn tls_env() -> Option<(String, String, String)> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        get("KLOUD_TEST_PG_TLS_URL"),
        get("KLOUD_TEST_PG_CA"),
        get("KLOUD_TEST_PG_OTHER_CA"),
    ) {
        (Some(u), Some(ca), Some(other)) => Some((u, ca, other)),
        _ if kloud_provider_api::under_ci() => {
            panic!("CI=true but KLOUD_TEST_PG_TLS_URL is not set: source scripts/setup/postgres.sh")
        }
        _ => {
            eprintln!("skipping: KLOUD_TEST_PG_TLS_URL not set (source scripts/setup/postgres.sh)");
            None
        }
    }
}

/// The URL's host:port and database, rebuilt with other query parameters.
fn with_query(url: &str, host: &str, query: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let (authority, path) = rest.split_once('/').unwrap();
    let (user, hostport) = authority.split_once('@').unwrap();
    let port = hostport.rsplit_once(':').unwrap().1;
    let db = path.split_once('?').map(|(d, _)| d).unwrap_or(path);
    format!("postgres://{user}@{host}:{port}/{db}?{query}")
}

#[test]
fn verify_full_and_require_connect_and_work() {
    let Some((url, ca, _)) = tls_env() else {
        return;
    };
    for u in [
        url.clone(),
        with_query(&url, "127.0.0.1", "sslmode=require"),
        with_query(
            &url,
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        with_query(
            &url,
            "127.0.0.1",
            &format!("sslmode=verify-ca&sslrootcert={ca}"),
        ),
    ] {
        let store = kloud::hostdb::postgres::open(&u).unwrap_or_else(|e| panic!("{u}: {e}"));
        store.index().unwrap_or_else(|e| panic!("{u}: {e}"));
    }
}

#[test]
fn the_server_sees_tls_on_a_verify_full_connection() {
    let Some((url, ca, _)) = tls_env() else {
        return;
    };
    let s = kloud::hostdb::pg_tls::settings(&url).unwrap();
    let (mode, tls) = kloud::hostdb::pg_tls::connector(&s).unwrap();
    let mut config: postgres::Config = s.url.parse().unwrap();
    config.ssl_mode(mode);
    let mut c = config.connect(tls.unwrap()).unwrap();
    let row = c
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap();
    assert!(row.get::<_, bool>(0), "connection is not TLS (CA {ca})");
}

#[test]
fn verify_full_against_a_wrong_host_name_fails_clearly() {
    let Some((url, ca, _)) = tls_env() else {
        return;
    };
    // Connect to 127.0.0.1 but expect the certificate to name `wrong.example`.
    let u = with_query(
        &url,
        "wrong.example",
        &format!("sslmode=verify-full&sslrootcert={ca}&hostaddr=127.0.0.1"),
    );
    let err = kloud::hostdb::postgres::open(&u)
        .err()
        .expect("connected to a wrong name");
    let msg = err.to_string();
    assert!(msg.contains("TLS") || msg.contains("tls"), "{msg}");
    assert!(msg.to_lowercase().contains("name"), "{msg}");
    // verify-ca does not compare the name: the same connection is accepted.
    let u = u.replace("verify-full", "verify-ca");
    kloud::hostdb::postgres::open(&u).unwrap_or_else(|e| panic!("{u}: {e}"));
}

#[test]
fn verify_full_against_a_wrong_ca_fails_clearly() {
    let Some((url, _, other)) = tls_env() else {
        return;
    };
    let u = with_query(
        &url,
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={other}"),
    );
    let err = kloud::hostdb::postgres::open(&u)
        .err()
        .expect("trusted a wrong CA");
    let msg = err.to_string();
    assert!(msg.contains("TLS") || msg.contains("tls"), "{msg}");
    assert!(
        msg.contains("UnknownIssuer") || msg.to_lowercase().contains("issuer"),
        "{msg}"
    );
}

#[test]
fn verify_full_without_a_ca_file_says_so() {
    let Some((url, _, _)) = tls_env() else { return };
    let u = with_query(
        &url,
        "127.0.0.1",
        "sslmode=verify-full&sslrootcert=/nonexistent/kloud-ca.pem",
    );
    let err = kloud::hostdb::postgres::open(&u)
        .err()
        .expect("no CA, yet connected");
    assert!(matches!(err, StoreError::Url { .. }), "{err:?}");
    assert!(err.to_string().contains("sslrootcert"), "{err}");
}

#[test]
fn a_password_never_shows_in_errors_or_the_url() {
    let Some((url, _, other)) = tls_env() else {
        return;
    };
    let with_pw = with_query(
        &url,
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={other}"),
    )
    .replacen("postgres@", "postgres:s3cret-pw@", 1);
    let err = kloud::hostdb::postgres::open(&with_pw)
        .err()
        .expect("wrong CA");
    assert!(!format!("{err} {err:?}").contains("s3cret-pw"), "{err:?}");
    let bad_mode = format!("{with_pw}&password=s3cret-pw&sslmode=sometimes");
    let err = kloud::hostdb::postgres::open(&bad_mode)
        .err()
        .expect("bad sslmode");
    assert!(!format!("{err} {err:?}").contains("s3cret-pw"), "{err:?}");
    // A store that opens shows its URL masked.
    let ok = kloud::hostdb::postgres::open(&format!("{url}&password=s3cret-pw")).unwrap();
    assert!(!ok.url().contains("s3cret-pw"), "{}", ok.url());
}
